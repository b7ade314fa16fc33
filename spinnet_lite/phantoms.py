"""Samples: the seed's random training phantoms, a parabolic Be lens and an insect-like "bug".

Every phantom returns ``(phase, transmission, support)`` as float64 arrays (H, W):
phase in radians (the sample's phase shift, ``-k * delta * thickness``), transmission the
intensity transmission (1 = no absorption) and support 1 where the sample is, 0 outside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as draw_polygon

from .geometry import Geometry

# Refractive index decrements and absorption indices at 14 keV (n = 1 - delta + i beta).
# Be: from the Henke tables (delta ~ 1.74e-6, beta ~ 4.6e-10 at 14 keV).
BE_DELTA_14KEV = 1.74e-6
BE_BETA_14KEV = 4.6e-10
#: Insect tissue (water-like, density ~1.1 g/cm3) and denser cuticle at 14 keV.
MATERIALS_14KEV = {
    "tissue": (1.25e-6, 1.2e-9),
    "cuticle": (1.7e-6, 2.4e-9),
}


def scale_to_energy(delta: float, beta: float, energy_kev: float) -> tuple[float, float]:
    """Scale 14 keV optical constants to another energy: delta ~ E^-2, beta ~ E^-4 (away from edges)."""
    r = 14.0 / energy_kev
    return delta * r**2, beta * r**4


# ---------------------------------------------------------------------------------------
# The seed's random training phantom (section 2.3)
# ---------------------------------------------------------------------------------------
def smooth_texture(shape, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1].

    The filter is applied in Fourier space (periodic, as ``gaussian_filter(mode="wrap")``):
    for sigma of 10-25 px that is ~10x faster than a spatial kernel of 8 sigma.
    """
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * np.exp(-2 * (np.pi * sigma_px) ** 2 * (fy**2 + fx**2))
    t = np.fft.irfft2(spectrum, s=shape)
    t -= t.min()
    return t / max(t.max(), 1e-12)


def bezier_contour(shape, rng: np.random.Generator, n_points: int | None = None, radius=(0.25, 0.45), samples: int = 8):
    """A filled closed curve of quadratic Bezier segments through random control points.

    Control points lie at sorted random angles around a random centre, at radii drawn in
    ``radius`` (fractions of the image size); the curve passes through the midpoints of
    consecutive control points, so it is smooth (C1) and closed.

    Returns:
        float64 array (H, W): 1 inside, 0 outside.
    """
    h, w = shape
    size = min(h, w)
    n = n_points or int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(radius[0], radius[1], n) * size
    cy = h / 2 + rng.uniform(-0.12, 0.12) * h
    cx = w / 2 + rng.uniform(-0.12, 0.12) * w
    ctrl = np.stack([cy + radii * np.sin(angles), cx + radii * np.cos(angles)], axis=1)
    nxt = np.roll(ctrl, -1, axis=0)
    mids = 0.5 * (ctrl + nxt)
    start = np.roll(mids, 1, axis=0)  # segment i: mid(i-1,i) -> ctrl i -> mid(i,i+1)
    t = np.linspace(0, 1, samples, endpoint=False)[:, None, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * mids
    curve = curve.transpose(1, 0, 2).reshape(-1, 2)
    mask = np.zeros(shape)
    rr, cc = draw_polygon(curve[:, 0], curve[:, 1], shape)
    mask[rr, cc] = 1.0
    return mask


@dataclass(frozen=True)
class RandomPhantomRanges:
    """Parameter ranges of the random phantoms (seed section 2.3 where it gives them)."""

    phase_amplitude: tuple[float, float] = (math.pi, 20 * math.pi)  # V_phi, rad
    transmission_amplitude: tuple[float, float] = (0.02, 0.2)  # V_T
    shared_texture_probability: float = 0.4
    texture_sigma_px: tuple[float, float] = (12.0, 24.0)  # correlation length of the texture
    edge_sigma_px: float = 6.0  # the contour's soft edge, so phase gradients stay finite


def random_phantom(shape, rng: np.random.Generator, ranges: RandomPhantomRanges = RandomPhantomRanges(),
                   phase_amplitude: float | None = None, transmission_amplitude: float | None = None):
    """The seed's training sample: smooth texture x closed Bezier contour.

    phase = -V_phi * texture * contour, transmission = 1 - V_T * texture' * contour, where
    texture' is the phase's texture with probability 0.4, else an independent one.
    """
    contour = ndimage.gaussian_filter(bezier_contour(shape, rng), ranges.edge_sigma_px)
    sigma = rng.uniform(*ranges.texture_sigma_px)
    tex_phase = smooth_texture(shape, sigma, rng)
    if rng.random() < ranges.shared_texture_probability:
        tex_t = tex_phase
    else:
        tex_t = smooth_texture(shape, rng.uniform(*ranges.texture_sigma_px), rng)
    v_phi = rng.uniform(*ranges.phase_amplitude) if phase_amplitude is None else phase_amplitude
    v_t = rng.uniform(*ranges.transmission_amplitude) if transmission_amplitude is None else transmission_amplitude
    phase = -v_phi * tex_phase * contour
    transmission = 1.0 - v_t * tex_t * contour
    support = (contour > 0.01).astype(np.float64)
    return phase, transmission, support


# ---------------------------------------------------------------------------------------
# Parabolic beryllium lens (seed section 3.2.1)
# ---------------------------------------------------------------------------------------
def lens_phantom(shape, geometry: Geometry, apex_radius_um: float = 200.0, aperture_fraction: float = 0.42,
                 delta: float | None = None, beta: float | None = None, rim_sigma_px: float = 1.5):
    """A bi-concave parabolic Be lens seen along its axis.

    Thickness ``t(r) = r^2 / R`` inside the aperture (R the apex radius; two parabolic
    surfaces of r^2/(2R) each); outside the aperture the frame is as thick as the rim, so the
    phase is continuous and the displacement drops to 0 there.  The phase is
    ``-k delta t`` (n < 1 for X-rays, so the concave lens focuses: speckles move towards the axis), the transmission ``exp(-2 k beta t)``.
    """
    h, w = shape
    p = geometry.pixel_size_um
    y = (np.arange(h) - (h - 1) / 2) * p
    x = (np.arange(w) - (w - 1) / 2) * p
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    r_ap = aperture_fraction * min(h, w) * p
    thickness_um = np.minimum(r2, r_ap**2) / apex_radius_um
    thickness_um = ndimage.gaussian_filter(thickness_um, rim_sigma_px) if rim_sigma_px else thickness_um
    if delta is None or beta is None:
        d0, b0 = scale_to_energy(BE_DELTA_14KEV, BE_BETA_14KEV, geometry.energy_kev)
        delta = d0 if delta is None else delta
        beta = b0 if beta is None else beta
    k = 2 * np.pi / geometry.wavelength_m
    t_m = thickness_um * 1e-6
    phase = -k * delta * t_m
    phase -= phase.max()  # only relative phase matters; 0 at the apex
    transmission = np.exp(-2 * k * beta * (t_m - t_m.min()))
    support = (r2 <= r_ap**2).astype(np.float64)
    return phase, transmission, support


# ---------------------------------------------------------------------------------------
# Insect-like "bug": ellipsoids with analytic projections (seed sections 3.2.2-3.2.3)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in object coordinates (x, y, z) in units of the field of view (-0.5..0.5).

    ``y`` is the rotation axis of the tomography (image rows), ``x`` the image columns and
    ``z`` the beam direction at angle 0.  ``axes`` are semi-axes, ``tilt`` rotates the
    ellipsoid in the x-y plane and ``yaw`` about y (radians).
    """

    center: tuple[float, float, float]
    axes: tuple[float, float, float]
    material: str = "tissue"
    tilt: float = 0.0
    yaw: float = 0.0

    def matrix(self) -> np.ndarray:
        """Symmetric A with (p - c)^T A (p - c) <= 1 inside."""
        ct, st = math.cos(self.tilt), math.sin(self.tilt)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        rz = np.array([[ct, -st, 0], [st, ct, 0], [0, 0, 1]])  # tilt in the x-y plane
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rot = ry @ rz
        return rot @ np.diag(1.0 / np.asarray(self.axes) ** 2) @ rot.T


def bug_parts() -> list[Ellipsoid]:
    """A flour-beetle-like body: head, thorax, abdomen segments, six legs, two antennae, eyes."""
    parts = [
        Ellipsoid((0.0, -0.27, 0.0), (0.085, 0.075, 0.07), "cuticle"),  # head
        Ellipsoid((0.0, -0.13, 0.0), (0.12, 0.085, 0.09), "tissue"),  # thorax
        Ellipsoid((0.0, 0.02, 0.0), (0.14, 0.07, 0.1), "tissue"),  # abdomen segments
        Ellipsoid((0.0, 0.13, 0.0), (0.13, 0.065, 0.095), "tissue"),
        Ellipsoid((0.0, 0.23, 0.0), (0.1, 0.06, 0.075), "tissue"),
        Ellipsoid((0.0, 0.05, 0.03), (0.09, 0.2, 0.02), "cuticle"),  # wing cases (elytra) on the back
        Ellipsoid((-0.05, -0.3, 0.05), (0.02, 0.02, 0.02), "cuticle"),  # eyes
        Ellipsoid((0.05, -0.3, 0.05), (0.02, 0.02, 0.02), "cuticle"),
    ]
    for side in (-1, 1):
        for i, yy in enumerate((-0.13, -0.02, 0.1)):
            tilt = side * (0.9 - 0.45 * i)
            parts.append(Ellipsoid((side * 0.2, yy + 0.03 * (i - 1), -0.02), (0.1, 0.014, 0.014), "cuticle", tilt=tilt))
        parts.append(Ellipsoid((side * 0.07, -0.4, 0.02), (0.012, 0.08, 0.012), "cuticle", tilt=side * 0.45))
    return parts


def material_rank(material: str) -> float:
    """Where ellipsoids of different materials overlap, the one with the larger ``delta`` (the
    denser: cuticle over tissue) fills the overlap; this is its rank (its ``delta`` at 14 keV)."""
    return MATERIALS_14KEV[material][0]


def _union_length(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Length of the union of the intervals ``[lo[i], hi[i]]`` (arrays ``(n, H, W)``) per pixel.

    Empty intervals must have ``lo == hi`` far below every real one (they add nothing)."""
    if lo.shape[0] == 0:
        return np.zeros(lo.shape[1:])
    order = np.argsort(lo, axis=0)
    lo, hi = np.take_along_axis(lo, order, 0), np.take_along_axis(hi, order, 0)
    total = np.zeros(lo.shape[1:])
    end = np.full(lo.shape[1:], -np.inf)
    for a, b in zip(lo, hi):  # sweep along the ray: count only what lies beyond the covered part
        total += np.clip(b - np.maximum(a, end), 0, None)
        end = np.maximum(end, b)
    return total


def project_ellipsoids(parts, shape, angle_rad: float = 0.0, fov: float = 1.0) -> dict[str, np.ndarray]:
    """Path length (in field-of-view units) through each material along z after rotating by ``angle_rad`` about y.

    Exact chord lengths: for a ray p = o + t u, (p - c)^T A (p - c) = 1 is a quadratic in t.
    Where parts overlap, each point of the ray counts once, for the densest material there
    (:func:`material_rank`), as in :func:`bug_volume`: overlapping parts are one body, not two
    layers of matter.
    """
    h, w = shape
    n = max(h, w)
    ys = (np.arange(h) - (h - 1) / 2) / n * fov
    xs = (np.arange(w) - (w - 1) / 2) / n * fov
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    rot = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])  # rotates the object about y
    u = np.array([0.0, 0.0, 1.0])
    far = -1e6  # empty chords: a point interval far before the object
    chords = {}  # material -> list of (t_in, t_out) per pixel
    for part in parts:
        a = rot @ part.matrix() @ rot.T
        c = rot @ np.asarray(part.center)
        # ray origin o = (x, y, 0); d = o - c
        dx, dy, dz = xx - c[0], yy - c[1], -c[2]
        au = a @ u
        qa = u @ au
        qb = 2 * (dx * au[0] + dy * au[1] + dz * au[2])
        qc = a[0, 0] * dx**2 + a[1, 1] * dy**2 + a[2, 2] * dz**2 + 2 * (a[0, 1] * dx * dy + a[0, 2] * dx * dz + a[1, 2] * dy * dz) - 1
        disc = qb**2 - 4 * qa * qc
        hit = disc > 0
        root = np.sqrt(np.where(hit, disc, 0.0))
        t_in = np.where(hit, (-qb - root) / (2 * qa), far)
        t_out = np.where(hit, (-qb + root) / (2 * qa), far)
        chords.setdefault(part.material, []).append((t_in, t_out))
    # the length owned by material m: the union of all parts at least as dense as m, minus the
    # union of the denser ones
    ranks = sorted({material_rank(m) for m in chords})
    union = {}
    for r in ranks:
        ivs = [iv for m, lst in chords.items() if material_rank(m) >= r for iv in lst]
        union[r] = _union_length(np.stack([a for a, _ in ivs]), np.stack([b for _, b in ivs]))
    out: dict[str, np.ndarray] = {}
    for m in chords:
        r = material_rank(m)
        denser = [q for q in ranks if q > r]
        out[m] = union[r] - (union[denser[0]] if denser else 0.0)
    return out


def bug_phantom(shape, geometry: Geometry, angle_rad: float = 0.0, body_length_um: float | None = None,
                smooth_px: float = 2.0):
    """Projection of the insect-like bug at ``angle_rad`` (rotation about the image's y axis).

    The field of view is ``max(shape) * pixel size``; by default the bug spans about 85 % of it.
    Phase ``-k sum(delta_m t_m)``, transmission ``exp(-2 k sum(beta_m t_m))`` per material.
    """
    n = max(shape)
    fov_um = n * geometry.pixel_size_um if body_length_um is None else body_length_um / 0.85
    paths = project_ellipsoids(bug_parts(), shape, angle_rad)
    k = 2 * np.pi / geometry.wavelength_m
    opd = np.zeros(shape)
    att = np.zeros(shape)
    for material, length in paths.items():
        delta, beta = scale_to_energy(*MATERIALS_14KEV[material], geometry.energy_kev)
        t_m = length * fov_um * 1e-6
        opd += delta * t_m
        att += beta * t_m
    if smooth_px:  # finite resolution of the sample's edges (keeps the rim gradients finite)
        opd = ndimage.gaussian_filter(opd, smooth_px)
        att = ndimage.gaussian_filter(att, smooth_px)
    support = (opd > 1e-3 * opd.max()).astype(np.float64) if opd.max() > 0 else np.zeros(shape)
    return -k * opd, np.exp(-2 * k * att), support


def bug_volume(n: int, geometry: Geometry, fov_um: float | None = None) -> dict[str, np.ndarray]:
    """Voxelised bug, arrays (n, n, n) indexed ``[y, z, x]``: delta and beta per voxel.

    ``y`` is the rotation axis, ``x`` the image columns, ``z`` the beam direction at angle 0,
    as in :func:`project_ellipsoids`; a slice ``[iy]`` is the (z, x) plane a tomographic
    reconstruction of row ``iy`` recovers.  Ground truth for the tomography notebook.
    """
    fov_um = n * geometry.pixel_size_um if fov_um is None else fov_um
    c = (np.arange(n) - (n - 1) / 2) / n
    delta = np.zeros((n, n, n))
    beta = np.zeros((n, n, n))
    rank = np.zeros((n, n, n))
    for part in bug_parts():
        a = part.matrix()
        r = max(part.axes)  # the part lies within r of its centre: evaluate only that block
        sx, sy, sz = (slice(int(np.searchsorted(c, m - r)), int(np.searchsorted(c, m + r, side="right")))
                      for m in part.center)
        px = c[sx][None, None, :] - part.center[0]
        py = c[sy][:, None, None] - part.center[1]
        pz = c[sz][None, :, None] - part.center[2]
        q = (a[0, 0] * px**2 + a[1, 1] * py**2 + a[2, 2] * pz**2
             + 2 * (a[0, 1] * px * py + a[0, 2] * px * pz + a[1, 2] * py * pz))
        # a voxel inside several parts is of the densest material there, never the sum
        fill = (q <= 1) & (rank[sy, sz, sx] < material_rank(part.material))
        d, b = scale_to_energy(*MATERIALS_14KEV[part.material], geometry.energy_kev)
        delta[sy, sz, sx][fill] = d
        beta[sy, sz, sx][fill] = b
        rank[sy, sz, sx][fill] = material_rank(part.material)
    return {"delta": delta, "beta": beta}


# ---------------------------------------------------------------------------------------
# Smooth displacement fields for training and for measuring the operating range (issue 8)
# ---------------------------------------------------------------------------------------
# These phantoms give a phase of arbitrary amplitude; the simulator scales it so that the
# largest displacement is ``max_shift_px`` (:func:`spinnet_lite.simulate.scale_phase_to_shift`).
def _grid(shape):
    h, w = shape
    y = np.arange(h, dtype=np.float64)[:, None] - (h - 1) / 2
    x = np.arange(w, dtype=np.float64)[None, :] - (w - 1) / 2
    return y, x


def blob_phantom(shape, rng: np.random.Generator, count: tuple[int, int] = (1, 5),
                 width_fraction: tuple[float, float] = (0.08, 0.3), transmission_amplitude: tuple[float, float] = (0.0, 0.15)):
    """A few Gaussian phase bumps and dips (smooth, wide displacement fields: bubbles, fibres seen end-on).

    Each blob ``a exp(-r^2 / 2 s^2)`` has a random sign, centre (anywhere in the image), and
    width ``s`` (a fraction of the image size); the transmission falls where the phase is
    large, by up to ``transmission_amplitude``.
    """
    y, x = _grid(shape)
    size = min(shape)
    phase = np.zeros(shape)
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        cy, cx = rng.uniform(-0.5, 0.5, 2) * np.array(shape)
        s = rng.uniform(*width_fraction) * size
        ratio = rng.uniform(0.6, 1.6)  # elliptical blobs
        a = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.0)
        phase += a * np.exp(-0.5 * (((y - cy) / (s * ratio)) ** 2 + ((x - cx) / (s / ratio)) ** 2))
    weight = np.abs(phase) / max(np.abs(phase).max(), 1e-12)
    transmission = 1.0 - rng.uniform(*transmission_amplitude) * weight
    support = (weight > 0.01).astype(np.float64)
    return phase, transmission, support


def quadratic_phantom(shape, rng: np.random.Generator, aperture: float | None = None, rim_sigma_px: float = 1.5):
    """A random quadratic phase: lens (both curvatures of one sign), cylinder lens or saddle, off centre.

    Its displacement grows linearly from the centre, like the seed's Be lens (and a
    focusing or defocusing lens of any strength once scaled).  Transmission 1.

    With ``aperture`` (0 < aperture <= 1, the share of the frame inside it) the phase is held
    at its value on the aperture's edge outside it, as a real lens is as thick as its rim
    beyond its aperture: ``sign(q) * min(|q|, level)``, ``level`` the ``aperture`` quantile of
    ``|q|`` over the frame, then a Gaussian of ``rim_sigma_px`` (px; 0 for none). The phase
    stays continuous and the displacement drops to 0 across the rim within a few pixels, the
    step of the field that the seed's lens shows at its rim. The support is the aperture.
    ``aperture=None`` (the default) draws exactly what it always did.
    """
    y, x = _grid(shape)
    cy, cx = rng.uniform(-0.3, 0.3, 2) * np.array(shape)
    theta = rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    u = c * (x - cx) + s * (y - cy)
    v = -s * (x - cx) + c * (y - cy)
    kind = rng.random()
    k1 = rng.choice([-1.0, 1.0])
    k2 = k1 * rng.uniform(0.5, 1.0) if kind < 0.6 else (0.0 if kind < 0.8 else -k1 * rng.uniform(0.3, 1.0))
    phase = k1 * u**2 + k2 * v**2
    if aperture is None:
        return phase, np.ones(shape), np.ones(shape)
    if not 0 < aperture <= 1:
        raise ValueError(f"quadratic phantom: aperture must be a share of the frame in (0, 1], got {aperture!r}")
    if not rim_sigma_px >= 0:
        raise ValueError(f"quadratic phantom: rim_sigma_px must be >= 0, got {rim_sigma_px!r}")
    level = float(np.quantile(np.abs(phase), aperture))
    support = (np.abs(phase) <= level).astype(np.float64)
    phase = np.sign(phase) * np.minimum(np.abs(phase), level)
    if rim_sigma_px > 0:
        phase = ndimage.gaussian_filter(phase, rim_sigma_px, mode="nearest")
    return phase, np.ones(shape), support


def uniform_phantom(shape, rng: np.random.Generator):
    """A phase ramp (a wedge or a tilted flat sample): one uniform displacement everywhere.

    Its direction is random; transmission 1.
    """
    y, x = _grid(shape)
    angle = rng.uniform(0, 2 * np.pi)
    phase = np.cos(angle) * x + np.sin(angle) * y
    return phase, np.ones(shape), np.ones(shape)


def absorbing_texture(shape, rng: np.random.Generator, strength: float, grain_px: tuple[float, float] = (1.5, 8.0)) -> np.ndarray:
    """Multiplicative absorption that is not speckle: ``exp(-strength * t)``, t in [0, 1] a
    thresholded random texture (particles, fibres) with grain of a few pixels."""
    t = smooth_texture(shape, rng.uniform(*grain_px), rng)
    t = np.clip((t - rng.uniform(0.4, 0.7)) / 0.3, 0, 1)
    return np.exp(-float(strength) * t)
