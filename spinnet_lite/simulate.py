"""The coded-mask speckle simulator (seed section 2.3) and the forward model (Eq. 1).

    I_s(y, x) = T(y, x) * I_r(y - dy(y, x), x - dx(y, x))

Reference: a plane wave through a random binary phase mask (amplitude ``A0 + t0 (1 - R)``,
phase ``phi0 R``, R = 1 on the gold), Fresnel-propagated over the mask-to-detector distance,
intensity taken and blurred by the detector.  Sample: the reference displaced by the sample's
phase gradients (in pixels, via :class:`~spinnet_lite.geometry.Geometry`) and attenuated by
its transmission.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr
from scipy import ndimage

from . import phantoms
from .geometry import Geometry
from .propagate import fresnel_propagate, fresnel_spread_px

PHANTOMS = ("random", "lens", "bug")
#: Mask parameters of the seed (section 2.3).
MASK_AMPLITUDE = 0.7  # A0: amplitude through the gold
MASK_TRANSMISSION_GAIN = 0.3  # t0: extra amplitude where there is no gold
MASK_PHASE = np.pi  # phi0


def coded_mask(shape, pitch: int, rng: np.random.Generator) -> np.ndarray:
    """Random binary mask: cells of ``pitch x pitch`` pixels, exactly half of them gold (1).

    The mask is drawn on ``ceil(H / pitch) x ceil(W / pitch)`` cells (half of them 1; when
    the count is odd the extra cell is 0), upsampled by the pitch without interpolation and
    cropped to ``shape``.
    """
    if isinstance(pitch, bool) or int(pitch) != pitch or pitch < 1:
        raise ValueError(f"pitch must be a positive integer number of pixels, got {pitch!r}")
    pitch = int(pitch)
    cells = (-(-shape[0] // pitch), -(-shape[1] // pitch))
    n = cells[0] * cells[1]
    flat = np.zeros(n, dtype=np.float64)
    flat[: n // 2] = 1.0
    rng.shuffle(flat)
    mask = np.repeat(np.repeat(flat.reshape(cells), pitch, axis=0), pitch, axis=1)
    return mask[: shape[0], : shape[1]]


def reference_image(shape, geometry: Geometry, rng: np.random.Generator, pitch: int | None = None,
                    mask_phase: float = MASK_PHASE, amplitude: float = MASK_AMPLITUDE,
                    gain: float = MASK_TRANSMISSION_GAIN, blur_px: float = 0.6,
                    distance_mm: float | None = None) -> np.ndarray:
    """Speckle reference (H, W): the coded mask propagated to the detector, intensity, blurred.

    The mask is drawn larger than the image by the Fresnel spread on every side, propagated
    periodically and cropped, so no wrapped light reaches the image.  The incident intensity
    is 1.
    """
    pitch = geometry.mask_pitch_px if pitch is None else pitch
    distance_m = (geometry.mask_detector_mm if distance_mm is None else distance_mm) * 1e-3
    margin = fresnel_spread_px(distance_m, geometry.wavelength_m, geometry.pixel_size_m) + 2
    big = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    r = coded_mask(big, pitch, rng)
    field = (amplitude + gain * (1.0 - r)) * np.exp(1j * mask_phase * r)
    u = fresnel_propagate(field, distance_m, geometry.wavelength_m, geometry.pixel_size_m, pad=0)
    intensity = np.abs(u[margin : margin + shape[0], margin : margin + shape[1]]) ** 2
    if blur_px:
        intensity = ndimage.gaussian_filter(intensity, blur_px, mode="nearest")
    return intensity


def warp(image, dx, dy) -> np.ndarray:
    """``image(y - dy, x - dx)`` by cubic B-spline interpolation (``scipy.ndimage.map_coordinates``).

    A cubic spline reproduces sub-pixel shifts of speckle without bias (a 0.25 px shift comes
    out at 0.2496 px; torch's bicubic ``grid_sample`` gave 0.268 px).

    Args:
        image: (H, W) array.
        dx, dy: (H, W) displacements in pixels (positive dx moves the content to larger x).

    Returns:
        float64 array (H, W). Outside the image the edge value is repeated.
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return ndimage.map_coordinates(image, [ys - dy, xs - dx], order=3, mode="nearest")


def apply_sample(reference, dx, dy, transmission) -> np.ndarray:
    """Eq. 1: the sample image ``T * I_r(y - dy, x - dx)``."""
    return np.asarray(transmission) * warp(reference, dx, dy)


def displacement_from_phase(phase, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) in pixels from a phase map (rad): ``wavelength z / (2 pi p^2) * grad(phi)``."""
    dphi_dy, dphi_dx = np.gradient(phase)
    return geometry.dphi_to_displacement(dphi_dx), geometry.dphi_to_displacement(dphi_dy)


def add_poisson_noise(image, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise at ``photons`` per pixel for unit intensity; returned in intensity units."""
    if not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number of photons per pixel, got {photons!r}")
    return rng.poisson(np.clip(image, 0, None) * photons) / photons


def default_geometry(phantom: str) -> Geometry:
    """The set-up a phantom is simulated in when none is given.

    Random phantoms: :meth:`Geometry.training` (the seed's simulation wavelength, 60 mm to the
    detector: displacements up to ~5.5 px).  The lens and the bug: ``Geometry()``, the seed's
    lens experiment (14 keV, 0.65 um pixels, 500 mm).
    """
    return Geometry.training() if phantom == "random" else Geometry()


def make_phantom(phantom: str, shape, geometry: Geometry, rng: np.random.Generator, **kwargs):
    """Dispatch to the named phantom; returns ``(phase, transmission, support)``."""
    if phantom == "random":
        return phantoms.random_phantom(shape, rng, **kwargs)
    if phantom == "lens":
        return phantoms.lens_phantom(shape, geometry, **kwargs)
    if phantom == "bug":
        return phantoms.bug_phantom(shape, geometry, **kwargs)
    raise ValueError(f"unknown phantom {phantom!r}; expected one of {', '.join(map(repr, PHANTOMS))}")


def _check_args(size, pitch, photons, geometry):
    if isinstance(size, (tuple, list)):
        shape = tuple(int(s) for s in size)
        if len(shape) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        shape = (int(size), int(size))
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(shape) < 64:
        raise ValueError(f"size must be at least 64 px, got {shape[0]}x{shape[1]}")
    if max(shape) > 8192:
        raise ValueError(f"size must be at most 8192 px, got {shape[0]}x{shape[1]}")
    if isinstance(pitch, bool) or not isinstance(pitch, (int, np.integer)) or pitch < 1 or pitch > min(shape) // 4:
        raise ValueError(f"pitch must be an integer from 1 to size/4 pixels, got {pitch!r}")
    if photons is not None and not (isinstance(photons, (int, float, np.number)) and np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be None or a positive number per pixel, got {photons!r}")
    if geometry is not None and not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a spinnet_lite.Geometry, got {type(geometry).__name__}")
    return shape


def simulate_arrays(size=256, pitch: int = 4, seed=None, phantom: str = "random", photons=None,
                    geometry: Geometry | None = None, mask_phase: float = MASK_PHASE, blur_px: float = 0.6,
                    distance_mm: float | None = None, **phantom_kwargs) -> dict[str, np.ndarray]:
    """As :func:`simulate_pair` but returns plain float32 numpy arrays (the training data path)."""
    shape = _check_args(size, pitch, photons, geometry)
    geometry = geometry or default_geometry(phantom)
    rng = np.random.default_rng(seed)
    reference = reference_image(shape, geometry, rng, pitch=pitch, mask_phase=mask_phase, blur_px=blur_px,
                                distance_mm=distance_mm)
    phase, transmission, support = make_phantom(phantom, shape, geometry, rng, **phantom_kwargs)
    dx, dy = displacement_from_phase(phase, geometry)
    sample = apply_sample(reference, dx, dy, transmission)
    if photons is not None:
        reference = add_poisson_noise(reference, photons, rng)
        sample = add_poisson_noise(sample, photons, rng)
    out = dict(reference=reference, sample=sample, dx=dx, dy=dy, transmission=transmission, phase=phase,
               support=support)
    return {k: v.astype(np.float32) for k, v in out.items()}


_VARIABLES = {
    "reference": ("1", "reference speckle intensity (no sample)"),
    "sample": ("1", "sample speckle intensity"),
    "dx": ("px", "horizontal speckle displacement"),
    "dy": ("px", "vertical speckle displacement"),
    "transmission": ("1", "sample intensity transmission"),
    "phase": ("rad", "sample phase shift"),
    "support": ("1", "1 where the sample is, 0 in sample-free regions"),
}


def to_dataset(arrays: dict, geometry: Geometry, attrs: dict | None = None) -> xr.Dataset:
    """Wrap (H, W) arrays into a Dataset with (y, x) coordinates in micrometres and units."""
    any_arr = next(iter(arrays.values()))
    h, w = any_arr.shape
    p = geometry.pixel_size_um
    coords = {
        "y": ("y", np.arange(h) * p, {"units": "um", "long_name": "y"}),
        "x": ("x", np.arange(w) * p, {"units": "um", "long_name": "x"}),
    }
    data_vars = {}
    for name, arr in arrays.items():
        units, long_name = _VARIABLES.get(name, ("1", name))
        data_vars[name] = (("y", "x"), arr, {"units": units, "long_name": long_name})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(geometry.to_attrs())
    ds.attrs.update(attrs or {})
    return ds


def simulate_pair(size=256, pitch: int = 4, seed=None, phantom: str = "random", photons=None,
                  geometry: Geometry | None = None, **kwargs) -> xr.Dataset:
    """Simulate one reference/sample speckle pair with its ground truth.

    Args:
        size: image size in pixels (int or (height, width)), at least 64.
        pitch: mask cell size in pixels.
        seed: random seed; the same seed gives the same pair.
        phantom: "random" (the seed's training phantoms), "lens" (parabolic Be lens) or "bug".
        photons: Poisson noise at this many photons per pixel (None: noiseless).
        geometry: the set-up; default :func:`default_geometry` (the training set-up for
            "random", ``Geometry()`` -- 14 keV, 0.65 um, 500 mm -- for "lens" and "bug").
        **kwargs: ``mask_phase`` (rad), ``blur_px`` (detector blur sigma), ``distance_mm``
            (mask-to-detector, overrides the geometry's) and the phantom's own options
            (e.g. ``phase_amplitude``, ``transmission_amplitude`` for "random",
            ``angle_rad`` for "bug").

    Returns:
        xarray.Dataset with ``reference``, ``sample``, ``dx``, ``dy`` (px), ``transmission``,
        ``phase`` (rad) and ``support``, dims ``(y, x)``, coordinates in micrometres, the
        geometry and the simulation parameters in ``attrs``.
    """
    if not isinstance(phantom, str) or phantom not in PHANTOMS:
        raise ValueError(f"unknown phantom {phantom!r}; expected one of {', '.join(map(repr, PHANTOMS))}")
    _check_args(size, pitch, photons, geometry)
    geometry = dataclasses.replace(geometry or default_geometry(phantom), mask_pitch_px=int(pitch))
    arrays = simulate_arrays(size, pitch, seed, phantom, photons, geometry, **kwargs)
    attrs = {"phantom": phantom, "pitch_px": int(pitch), "seed": -1 if seed is None else int(seed),
             "photons_per_px": 0.0 if photons is None else float(photons),
             "title": f"spinnet_lite simulated {phantom} pair"}
    for k, v in kwargs.items():
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            attrs[k] = v
    return to_dataset(arrays, geometry, attrs)
