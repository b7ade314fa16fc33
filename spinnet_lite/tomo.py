"""Speckle tomography: projections of the bug, reconstruction of a stack, filtered back-projection.

The pipeline of the seed's sections 3.2.2-3.2.3 (Figs. 7-8):

1. :func:`simulate_projections`: one reference speckle image and the bug
   (:func:`spinnet_lite.phantoms.bug_phantom`) rotated about the image's ``y`` axis to
   ``n_angles`` angles over 180 degrees, each projection through the forward model (Eq. 1).
2. :func:`reconstruct_stack`: :func:`spinnet_lite.reconstruct` on every angle, through
   ``xarray.apply_ufunc(..., dask="parallelized")`` with the stack chunked along ``angle``
   and ``y``/``x`` in one chunk: the same call runs serially, on a laptop's threads, or on a
   ``dask.distributed`` cluster (whatever scheduler is active when it computes).
3. :func:`reconstruct_volume`: every detector row's sinogram (``angle``, ``x``) through
   :func:`fbp` into a ``(y, z, x)`` volume, indexed as :func:`spinnet_lite.phantoms.bug_volume`.

Units.  The projected phase is ``phi = -k * integral(delta dz)`` (rad) and the attenuation
``-ln T = 2 k * integral(beta dz)``.  Back-projecting sinograms whose detector pixels are the
unit of length gives ``-k delta p`` (rad per voxel) and ``2 k beta p`` per voxel, ``p`` the
pixel size; :func:`phantom_volume` gives the phantom's ground truth in the same units, so a
reconstruction and its truth compare directly (:func:`correlation`).

Geometry of the rotation (as in :func:`spinnet_lite.phantoms.project_ellipsoids`): at angle
``a`` the detector column ``x`` sees the object line ``x_obj cos a + z_obj sin a = x``.
"""
from __future__ import annotations

import math
import time

import numpy as np
import xarray as xr

from .checks import check_choice
from .geometry import Geometry

FBP_BACKENDS = ("auto", "astra", "skimage")
FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")
_ASTRA_FILTERS = {"ramp": "ram-lak", "shepp-logan": "shepp-logan", "cosine": "cosine", "hamming": "hamming",
                  "hann": "hann"}
#: Variables of a reconstructed stack, in the order the per-angle function returns them.
STACK_VARIABLES = ("dx", "dy", "transmission", "dphi_dx", "dphi_dy", "phase")
_UNITS = {
    "reference": ("1", "reference speckle intensity (no sample)"),
    "sample": ("1", "sample speckle intensity"),
    "dx": ("px", "horizontal speckle displacement"),
    "dy": ("px", "vertical speckle displacement"),
    "transmission": ("1", "sample intensity transmission"),
    "dphi_dx": ("rad/px", "horizontal phase gradient"),
    "dphi_dy": ("rad/px", "vertical phase gradient"),
    "phase": ("rad", "sample phase shift"),
    "support": ("1", "1 where the sample is, 0 in sample-free regions"),
}


# ---------------------------------------------------------------------------------------
# 1. Projections
# ---------------------------------------------------------------------------------------
def projection_angles(n_angles: int, span_deg: float = 180.0) -> np.ndarray:
    """``n_angles`` equally spaced angles in degrees over ``[0, span_deg)``."""
    return np.arange(int(n_angles)) * (float(span_deg) / int(n_angles))


def simulate_projections(n_angles: int, size, geometry: Geometry | None = None, photons=None, seed=0,
                         span_deg: float = 180.0, pitch: int | None = None) -> xr.Dataset:
    """Speckle projections of the bug over ``n_angles`` angles, with their ground truth.

    Args:
        n_angles: number of projections (>= 2), equally spaced over ``[0, span_deg)``.
        size: image size in pixels, int or ``(height, width)``, at least 64.
        geometry: the set-up (default ``Geometry()``: 14 keV, 0.65 um, 500 mm).
        photons: Poisson noise at this many photons per pixel (None: noiseless); the
            reference is drawn once, each projection gets its own noise.
        seed: random seed of the mask and the noise.
        span_deg: angular range (180 degrees suffices for parallel-beam tomography).
        pitch: mask cell size in px (default ``geometry.mask_pitch_px``).

    Returns:
        xarray.Dataset with ``reference`` ``(y, x)`` shared by all angles and ``sample``,
        ``phase``, ``transmission``, ``dx``, ``dy``, ``support`` ``(angle, y, x)``; ``angle`` in
        degrees, ``y``/``x`` in micrometres; the geometry in ``attrs``.

    Raises:
        ValueError: fewer than 2 angles, a bad size, photons or geometry.
    """
    from .simulate import _check_args, add_poisson_noise, apply_sample, displacement_from_phase, reference_image
    from .phantoms import bug_phantom

    if isinstance(n_angles, bool) or int(n_angles) != n_angles or n_angles < 2:
        raise ValueError(f"n_angles must be an integer >= 2, got {n_angles!r}")
    geometry = geometry or Geometry()
    pitch = geometry.mask_pitch_px if pitch is None else pitch
    shape = _check_args(size, pitch, photons, geometry)
    rng = np.random.default_rng(seed)
    reference = reference_image(shape, geometry, rng, pitch=pitch)
    angles = projection_angles(n_angles, span_deg)
    stacks = {name: np.empty((len(angles),) + shape, np.float32)
              for name in ("sample", "phase", "transmission", "dx", "dy", "support")}
    for i, angle in enumerate(angles):
        phase, transmission, support = bug_phantom(shape, geometry, angle_rad=math.radians(angle))
        dx, dy = displacement_from_phase(phase, geometry)
        sample = apply_sample(reference, dx, dy, transmission)
        if photons is not None:
            sample = add_poisson_noise(sample, photons, rng)
        for name, value in zip(("sample", "phase", "transmission", "dx", "dy", "support"),
                               (sample, phase, transmission, dx, dy, support)):
            stacks[name][i] = value
    if photons is not None:
        reference = add_poisson_noise(reference, photons, rng)
    p = geometry.pixel_size_um
    coords = {
        "angle": ("angle", angles, {"units": "deg", "long_name": "rotation angle"}),
        "y": ("y", np.arange(shape[0]) * p, {"units": "um", "long_name": "y"}),
        "x": ("x", np.arange(shape[1]) * p, {"units": "um", "long_name": "x"}),
    }
    data_vars = {"reference": (("y", "x"), reference.astype(np.float32), _attrs("reference"))}
    for name, value in stacks.items():
        data_vars[name] = (("angle", "y", "x"), value, _attrs(name))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(geometry.to_attrs())
    ds.attrs.update({"phantom": "bug", "pitch_px": int(pitch), "seed": int(seed),
                     "photons_per_px": 0.0 if photons is None else float(photons),
                     "title": "spinnet_lite simulated bug projections"})
    return ds


def _attrs(name: str) -> dict:
    units, long_name = _UNITS.get(name, ("1", name))
    return {"units": units, "long_name": long_name}


# ---------------------------------------------------------------------------------------
# 2. A stack through reconstruct, chunked along angle
# ---------------------------------------------------------------------------------------
def _reconstruct_block(reference, sample, method, model, geometry, integration, options) -> np.ndarray:
    """(..., y, x) reference and (..., y, x) samples -> (..., variable, y, x) results, angle by angle."""
    from .reconstruct import reconstruct

    names = STACK_VARIABLES if geometry is not None else STACK_VARIABLES[:3]
    sample = np.asarray(sample)
    reference = np.broadcast_to(np.asarray(reference), sample.shape)
    lead = sample.shape[:-2]
    out = np.empty(lead + (len(names),) + sample.shape[-2:], np.float64)
    for index in np.ndindex(*lead):
        result = reconstruct(reference[index], sample[index], method=method, model=model, geometry=geometry,
                             integration=integration, **options)
        for c, name in enumerate(names):
            out[index + (c,)] = result[name].values
    return out


def reconstruct_stack(ds: xr.Dataset, method: str = "spinnet", geometry: Geometry | None = None, chunks: int = 4,
                      model=None, integration: str = "fc", compute: bool = True, **options) -> xr.Dataset:
    """:func:`spinnet_lite.reconstruct` on every angle of a projection stack.

    Implemented with ``xarray.apply_ufunc(..., dask="parallelized")``: ``sample`` is chunked
    along ``angle`` (``chunks`` angles per task) with ``y`` and ``x`` in one chunk, and each
    task reconstructs its angles one by one.  When computed, the work runs on the active dask
    scheduler: threads on a laptop, or the workers of a ``dask.distributed.Client`` if one
    was created (``Client()`` for a local cluster, ``Client("tcp://scheduler:8786")`` for a
    real one); nothing in this function changes.

    Args:
        ds: Dataset with ``reference`` ``(y, x)`` (or ``(angle, y, x)``) and ``sample``
            ``(angle, y, x)``, e.g. from :func:`simulate_projections`.
        method: ``"spinnet"`` or ``"xst"``.
        geometry: the set-up; default the one in ``ds.attrs`` (``geometry_*``).  Without one
            the result has no phase.
        chunks: angles per dask task (>= 1).
        model: the SPINNet (``method="spinnet"``); None loads the bundled weights (once per
            worker process).
        integration: phase integrator, ``"fc"`` or ``"ls"``.
        compute: compute now (default) or return the lazy, dask-backed Dataset.
        **options: passed to :func:`spinnet_lite.reconstruct` (e.g. ``window``, ``search`` for XST).

    Returns:
        xarray.Dataset ``(angle, y, x)`` with ``dx``, ``dy``, ``transmission`` and, with a
        geometry, ``dphi_dx``, ``dphi_dy``, ``phase`` (rad, zero mean per projection); the
        coordinates of ``ds``; ``attrs``: method, options, geometry, ``elapsed_s``.

    Raises:
        ValueError: missing variables or wrong dims, bad chunks, an unknown method.
    """
    from .reconstruct import METHODS

    start = time.perf_counter()
    check_choice(method, METHODS, "method")
    if not isinstance(ds, xr.Dataset) or "reference" not in ds or "sample" not in ds:
        raise ValueError("reconstruct_stack: expected an xarray.Dataset with 'reference' and 'sample'")
    sample, reference = ds["sample"], ds["reference"]
    if sample.dims != ("angle", "y", "x"):
        raise ValueError(f"reconstruct_stack: sample must have dims ('angle', 'y', 'x'), got {sample.dims}")
    if reference.dims not in (("y", "x"), ("angle", "y", "x")):
        raise ValueError(f"reconstruct_stack: reference must have dims ('y', 'x') or ('angle', 'y', 'x'), "
                         f"got {reference.dims}")
    if isinstance(chunks, bool) or int(chunks) != chunks or chunks < 1:
        raise ValueError(f"reconstruct_stack: chunks must be a positive number of angles per task, got {chunks!r}")
    if geometry is None:
        geometry = Geometry.from_attrs(ds.attrs)
    elif not isinstance(geometry, Geometry):
        raise ValueError(f"geometry must be a spinnet_lite.Geometry or None, got {type(geometry).__name__}")
    names = STACK_VARIABLES if geometry is not None else STACK_VARIABLES[:3]
    sample = sample.chunk({"angle": int(chunks), "y": -1, "x": -1})
    reference = reference.chunk({d: (int(chunks) if d == "angle" else -1) for d in reference.dims})
    stacked = xr.apply_ufunc(
        _reconstruct_block, reference, sample,
        kwargs=dict(method=method, model=model, geometry=geometry, integration=integration, options=options),
        input_core_dims=[["y", "x"], ["y", "x"]],
        output_core_dims=[["variable", "y", "x"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"variable": len(names)}},
    )
    out = xr.Dataset({name: stacked.isel(variable=i, drop=True).assign_attrs(_attrs(name))
                      for i, name in enumerate(names)})
    out = out.transpose("angle", "y", "x")
    if compute:
        out = out.compute()
    out.attrs.update({"method": method, "options": repr(dict(sorted(options.items()))), "integration": integration,
                      "chunks": int(chunks)})
    if geometry is not None:
        out.attrs.update(geometry.to_attrs())
    out.attrs["elapsed_s"] = float(time.perf_counter() - start) if compute else math.nan
    return out


# ---------------------------------------------------------------------------------------
# 3. Filtered back-projection
# ---------------------------------------------------------------------------------------
def astra_available() -> bool:
    """Whether the ASTRA toolbox imports (its CPU FBP is then :func:`fbp`'s default)."""
    try:
        import astra  # noqa: F401
    except Exception:  # ImportError, or OSError from a missing CUDA runtime library
        return False
    return True


def _fbp_astra(sinogram: np.ndarray, angles_deg: np.ndarray, filter: str) -> np.ndarray:
    import astra

    n_angles, n_det = sinogram.shape
    vol_geom = astra.create_vol_geom(n_det, n_det)
    # ASTRA's parallel geometry rotates the other way round and its detector runs the other
    # way: -angle and a reversed detector give the (z, x) orientation of project_ellipsoids.
    proj_geom = astra.create_proj_geom("parallel", 1.0, n_det, -np.deg2rad(angles_deg))
    projector = astra.create_projector("linear", proj_geom, vol_geom)
    sino_id = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(sinogram[:, ::-1], dtype=np.float32))
    rec_id = astra.data2d.create("-vol", vol_geom, 0.0)
    cfg = astra.astra_dict("FBP")
    cfg["ProjectorId"] = projector
    cfg["ProjectionDataId"] = sino_id
    cfg["ReconstructionDataId"] = rec_id
    cfg["FilterType"] = _ASTRA_FILTERS[filter]
    alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg)
        rec = astra.data2d.get(rec_id)
    finally:
        astra.algorithm.delete(alg)
        astra.data2d.delete([sino_id, rec_id])
        astra.projector.delete(projector)
    rec = _orient_astra(np.asarray(rec, dtype=np.float64))
    rec[~circle_mask(n_det)] = 0.0  # as iradon(circle=True): only the inscribed disc is seen at every angle
    return rec


def _orient_astra(rec: np.ndarray) -> np.ndarray:
    """ASTRA's volume ``[row, col]`` -> the ``[z, x]`` slice of :func:`spinnet_lite.phantoms.bug_volume`."""
    return rec[::-1, ::-1]


def _fbp_skimage(sinogram: np.ndarray, angles_deg: np.ndarray, filter: str) -> np.ndarray:
    from skimage.transform import iradon

    n_det = sinogram.shape[1]
    if n_det % 2:
        rec = iradon(sinogram.T, theta=angles_deg, filter_name=filter, circle=True, output_size=n_det,
                     preserve_range=True)
    else:
        # iradon puts the rotation axis on pixel n // 2, the projections have it at (n - 1) / 2
        # (between the two middle pixels).  Resample the sinogram half a pixel over onto n + 1
        # pixels (axis on the middle one), reconstruct on n + 1, and average 2 x 2 neighbours
        # back onto the n x n grid: otherwise the slice is smeared by half a pixel per angle.
        padded = np.pad(sinogram, ((0, 0), (1, 1)), mode="edge")
        shifted = 0.5 * (padded[:, :-1] + padded[:, 1:])  # (angle, n + 1): s(k - 1/2)
        shifted[:, 0] = 0.5 * sinogram[:, 0]
        shifted[:, -1] = 0.5 * sinogram[:, -1]
        big = iradon(shifted.T, theta=angles_deg, filter_name=filter, circle=True, output_size=n_det + 1,
                     preserve_range=True)
        rec = 0.25 * (big[:-1, :-1] + big[1:, :-1] + big[:-1, 1:] + big[1:, 1:])
    # iradon's rows run against z: flip them to index [z, x] as bug_volume does.
    return rec[::-1]


def fbp(sinogram, angles=None, filter: str = "ramp", backend: str = "auto") -> np.ndarray:
    """Filtered back-projection of one parallel-beam sinogram.

    Args:
        sinogram: ``(angle, x)`` array or DataArray: line integrals with the detector pixel as
            the unit of length.
        angles: projection angles in degrees, ``(n_angles,)``; default the ``angle``
            coordinate of a DataArray.
        filter: ``"ramp"`` (Ram-Lak), ``"shepp-logan"``, ``"cosine"``, ``"hamming"`` or ``"hann"``.
        backend: ``"astra"`` (the ASTRA toolbox's CPU FBP), ``"skimage"``
            (``skimage.transform.iradon``) or ``"auto"``: ASTRA when it imports, else scikit-image.

    Returns:
        ``(n, n)`` float64 slice indexed ``[z, x]`` (``n`` the detector width), in the
        sinogram's units per pixel; zero outside the inscribed circle (the region every
        projection sees).

    Raises:
        ValueError: not 2-D, angles missing or of the wrong length, an unknown filter or
            backend, ASTRA asked for but not importable.
    """
    check_choice(filter, FILTERS, "filter")
    check_choice(backend, FBP_BACKENDS, "FBP backend")
    if angles is None:
        if isinstance(sinogram, xr.DataArray) and "angle" in sinogram.coords:
            angles = sinogram["angle"].values
        else:
            raise ValueError("fbp: give the projection angles (degrees) or a DataArray with an 'angle' coordinate")
    sino = np.asarray(getattr(sinogram, "values", sinogram), dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if sino.ndim != 2:
        raise ValueError(f"fbp: expected a 2-D sinogram (angle, x), got shape {sino.shape}")
    if len(angles) != sino.shape[0]:
        raise ValueError(f"fbp: {len(angles)} angles for a sinogram of {sino.shape[0]} projections")
    if not np.all(np.isfinite(sino)):
        raise ValueError("fbp: the sinogram contains NaN or infinite values")
    if backend == "astra" and not astra_available():
        raise ValueError("fbp: backend 'astra' asked for, but the ASTRA toolbox does not import "
                         "(conda install -c astra-toolbox astra-toolbox, or pip install astra-toolbox)")
    if backend == "astra" or (backend == "auto" and astra_available()):
        return _fbp_astra(sino, angles, filter)
    return _fbp_skimage(sino, angles, filter)


def sinogram_offset(sinogram: np.ndarray, edge_px: int) -> np.ndarray:
    """Per-projection baseline: the straight line through the medians of the two edge bands.

    Integrated phase is known only up to a constant per projection (the integrators return
    zero mean), and a small bias of the displacement adds a ramp; outside the sample the
    phase must be 0 on both sides, so the line through the medians of the ``edge_px``
    outermost columns on the left and on the right (placed at the bands' centres) is the
    baseline to subtract before the FBP.  Same shape as ``sinogram`` (``(..., x)``).
    """
    n = sinogram.shape[-1]
    left = np.median(sinogram[..., :edge_px], axis=-1, keepdims=True)
    right = np.median(sinogram[..., -edge_px:], axis=-1, keepdims=True)
    x_left, x_right = (edge_px - 1) / 2, n - 1 - (edge_px - 1) / 2
    fraction = (np.arange(n) - x_left) / (x_right - x_left)
    return left + (right - left) * fraction


def reconstruct_volume(stack, variable: str = "phase", angles=None, filter: str = "ramp", backend: str = "auto",
                       edge_px: int | None = 4) -> xr.DataArray:
    """FBP of every detector row of a stack into a ``(y, z, x)`` volume.

    Args:
        stack: Dataset with ``variable`` ``(angle, y, x)`` (e.g. from :func:`reconstruct_stack`
            or :func:`simulate_projections`), or that DataArray.
        variable: ``"phase"`` (rad; the volume is ``-k delta p`` per voxel) or
            ``"transmission"`` (``-ln T`` is back-projected: ``2 k beta p`` per voxel).
        angles: degrees; default the ``angle`` coordinate.
        filter, backend: as :func:`fbp`.
        edge_px: subtract each projection's :func:`sinogram_offset` (the line through the
            medians of this many columns on each side, the sample-free edges; None or 0: no
            correction).

    Returns:
        DataArray ``(y, z, x)``, coordinates in the stack's units (``z`` as ``x``), indexed as
        :func:`spinnet_lite.phantoms.bug_volume`.
    """
    check_choice(variable, ("phase", "transmission"), "variable")
    data = stack[variable] if isinstance(stack, xr.Dataset) else stack
    if not isinstance(data, xr.DataArray) or data.dims != ("angle", "y", "x"):
        raise ValueError(f"reconstruct_volume: expected {variable!r} with dims ('angle', 'y', 'x')")
    if angles is None:
        if "angle" not in data.coords:
            raise ValueError("reconstruct_volume: give the angles (degrees) or an 'angle' coordinate")
        angles = data["angle"].values
    values = np.asarray(data.values, dtype=np.float64)
    if variable == "transmission":
        values = -np.log(np.clip(values, 1e-6, None))
    if edge_px:
        values = values - sinogram_offset(values, int(edge_px))
    n_y, n_x = values.shape[1:]
    volume = np.empty((n_y, n_x, n_x))
    for iy in range(n_y):
        volume[iy] = fbp(values[:, iy, :], angles, filter=filter, backend=backend)
    x = data["x"] if "x" in data.coords else xr.DataArray(np.arange(n_x), dims="x")
    coords = {"y": data["y"].values if "y" in data.coords else np.arange(n_y), "z": ("z", x.values, dict(x.attrs)),
              "x": ("x", x.values, dict(x.attrs))}
    units, name = ("rad/px", "-k delta p per voxel") if variable == "phase" else ("1/px", "2 k beta p per voxel")
    out = xr.DataArray(volume, dims=("y", "z", "x"), coords=coords, name=f"{variable}_volume",
                       attrs={"units": units, "long_name": name, "variable": variable, "filter": filter})
    if "y" in data.coords:
        out["y"].attrs.update(data["y"].attrs)
    return out


# ---------------------------------------------------------------------------------------
# Ground truth and comparison
# ---------------------------------------------------------------------------------------
def phantom_volume(n: int, geometry: Geometry | None = None, variable: str = "phase") -> np.ndarray:
    """The bug's volume ``(y, z, x)`` in the units :func:`reconstruct_volume` returns.

    ``-k delta p`` per voxel for ``"phase"``, ``2 k beta p`` for ``"transmission"``, from
    :func:`spinnet_lite.phantoms.bug_volume` (the same ellipsoids the projections integrate).
    """
    from .phantoms import bug_volume

    check_choice(variable, ("phase", "transmission"), "variable")
    geometry = geometry or Geometry()
    vol = bug_volume(int(n), geometry)
    k = 2 * math.pi / geometry.wavelength_m
    p = geometry.pixel_size_m
    if variable == "phase":
        return -k * vol["delta"] * p
    return 2 * k * vol["beta"] * p


def correlation(a, b, mask=None) -> float:
    """Pearson correlation coefficient of two arrays (over ``mask`` when given)."""
    a = np.asarray(getattr(a, "values", a), dtype=np.float64)
    b = np.asarray(getattr(b, "values", b), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"correlation: shapes differ: {a.shape} vs {b.shape}")
    if mask is not None:
        m = np.asarray(getattr(mask, "values", mask)) != 0
        a, b = a[m], b[m]
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = math.sqrt(float(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / denom) if denom > 0 else math.nan


def circle_mask(n: int, radius_fraction: float = 0.5) -> np.ndarray:
    """``(n, n)`` boolean disc inscribed in the slice (where the FBP is defined)."""
    c = np.arange(n) - (n - 1) / 2
    return (c[:, None] ** 2 + c[None, :] ** 2) <= (radius_fraction * n) ** 2


def slice_correlation(volume, truth, iy=None) -> float:
    """Correlation of slice ``iy`` (default: the middle row) of a reconstruction with the truth, inside the circle."""
    vol = np.asarray(getattr(volume, "values", volume))
    tru = np.asarray(getattr(truth, "values", truth))
    iy = vol.shape[0] // 2 if iy is None else int(iy)
    return correlation(vol[iy], tru[iy], circle_mask(vol.shape[-1]))
