"""Experimental geometry and the displacement <-> differential-phase conversion.

Conventions (DESIGN.md section 1): arrays are ``(y, x)``; displacements ``dx``, ``dy`` are in
detector pixels; the phase gradient ``dphi_dx`` is in radians per pixel.  In the near field

    delta = (wavelength * z / (2 pi)) * grad(phi)

so in pixels ``dx_px = wavelength * z / (2 pi p**2) * dphi/dx_px`` with ``p`` the pixel size
and ``z`` the distance over which the refraction turns into a speckle shift:

* mask upstream of the sample (the seed's order, Fig. 1: source -> mask -> sample -> detector,
  ``mask_detector_mm >= sample_detector_mm``): the speckle already exists when the sample
  deflects it, so ``z`` is the **sample**-to-detector distance;
* sample upstream of the mask (``sample_detector_mm > mask_detector_mm``, also a valid set-up):
  the sample tilts the wave that illuminates the mask, and the near-field pattern made by the
  mask moves with that tilt over the **mask**-to-detector distance, so ``z = mask_detector_mm``.

:attr:`Geometry.effective_distance_mm` is that ``z``, i.e. the smaller of the two distances.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

#: h * c in keV * metre: wavelength [m] = HC_KEV_M / energy [keV].
HC_KEV_M = 1.239841984e-9
#: Accepted range and unit of each field: wide enough for any X-ray set-up, narrow enough that
#: ``shift_per_gradient`` and the simulator's Fresnel grids stay finite (no 1e-200 um pixels).
_LIMITS = {
    "energy_kev": (0.01, 10_000.0, "keV"),
    "pixel_size_um": (1e-3, 1e5, "um"),
    "sample_detector_mm": (1e-3, 1e7, "mm"),
    "mask_detector_mm": (1e-3, 1e7, "mm"),
    "mask_pitch_px": (1.0, 1e5, "px"),
}


@dataclass(frozen=True)
class Geometry:
    """One speckle-imaging set-up.

    ``Geometry()`` is the seed's beryllium-lens experiment: 14 keV, 0.65 um pixels,
    500 mm sample-to-detector distance, with the mask upstream of the sample as in the seed's
    Fig. 1.  The seed does not give this experiment's mask-to-detector distance here; 800 mm is
    this project's assumption (any value >= 500 mm keeps the seed's order and does not change the
    displacement-phase conversion).  The mask pitch of 4 px (2.6 um cells at 0.65 um) is a
    project choice too, not the seed's: its 2 um mask would be 3.1 px, 5 um cells 7.7 px.

    Attributes:
        energy_kev: photon energy in keV.
        pixel_size_um: detector pixel size in micrometres.
        sample_detector_mm: sample-to-detector distance in millimetres.
        mask_detector_mm: mask-to-detector distance d in millimetres (speckle propagation).
            ``>= sample_detector_mm`` means the mask is upstream of the sample (the seed's order).
        mask_pitch_px: size of one mask cell in detector pixels (it may be fractional: the
            simulator draws the mask on a grid finer than the pixel).
    """

    energy_kev: float = 14.0
    pixel_size_um: float = 0.65
    sample_detector_mm: float = 500.0
    mask_detector_mm: float = 800.0
    mask_pitch_px: float = 4

    def __post_init__(self):
        # Python or numpy numbers (h5py returns numpy scalars for metadata), never bools or
        # strings; ranges that keep every conversion finite and the simulator's grids sane.
        for name, (low, high, unit) in _LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise ValueError(f"Geometry.{name} must be a number ({unit}), got {type(value).__name__} {value!r}")
            if isinstance(value, np.generic):
                value = value.item()
                object.__setattr__(self, name, value)
            try:
                in_range = math.isfinite(value) and low <= value <= high
            except OverflowError:  # an int beyond float range
                in_range = False
            if not in_range:
                raise ValueError(f"Geometry.{name} must be a number from {low:g} to {high:g} {unit}, got {value!r}")

    # ---- constructors and units -------------------------------------------------------
    @classmethod
    def from_wavelength(cls, wavelength_m: float, **kwargs) -> "Geometry":
        """A geometry given the wavelength in metres instead of the energy."""
        if isinstance(wavelength_m, (bool, np.bool_)) or not isinstance(wavelength_m, numbers.Real) \
                or not (wavelength_m > 0 and math.isfinite(wavelength_m)):
            raise ValueError(f"wavelength must be a positive finite number, got {wavelength_m!r}")
        return cls(energy_kev=HC_KEV_M / wavelength_m, **kwargs)

    @classmethod
    def seed_simulation(cls, **kwargs) -> "Geometry":
        """The seed's simulation set-up (section 2.3): lambda = 0.06 nm, d = 0.3 m."""
        kwargs.setdefault("mask_detector_mm", 300.0)
        kwargs.setdefault("sample_detector_mm", 300.0)
        return cls.from_wavelength(0.06e-9, **kwargs)

    @classmethod
    def training(cls, **kwargs) -> "Geometry":
        """The set-up of the random training phantoms.

        The seed's simulation wavelength (0.06 nm), pixel size 0.65 um, mask 300 mm from the
        detector, and a sample-to-detector distance of 60 mm, chosen so that the seed's phase
        amplitudes (V_phi in [pi, 20 pi]) give displacements the network and a 7x7 XST with a
        +-6 px search both cover: per-pair maxima 0.75-5.5 px (median 2.75 px, measured
        over 60 pairs of 256 px).  1 rad/px of phase gradient is 1.36 px of displacement.
        """
        kwargs.setdefault("pixel_size_um", 0.65)
        kwargs.setdefault("sample_detector_mm", 60.0)
        kwargs.setdefault("mask_detector_mm", 300.0)
        return cls.from_wavelength(0.06e-9, **kwargs)

    @property
    def wavelength_m(self) -> float:
        """Wavelength in metres."""
        return HC_KEV_M / self.energy_kev

    @property
    def pixel_size_m(self) -> float:
        return self.pixel_size_um * 1e-6

    @property
    def mask_upstream(self) -> bool:
        """True when the mask is upstream of the sample (the seed's order, Fig. 1)."""
        return self.mask_detector_mm >= self.sample_detector_mm

    @property
    def effective_distance_mm(self) -> float:
        """The distance ``z`` that turns refraction into speckle shift (module docstring):
        sample-to-detector when the mask is upstream, mask-to-detector when the sample is."""
        return self.sample_detector_mm if self.mask_upstream else self.mask_detector_mm

    @property
    def shift_per_gradient(self) -> float:
        """Displacement in pixels produced by a phase gradient of 1 rad per pixel.

        ``wavelength * z / (2 pi p**2)`` with ``z`` = :attr:`effective_distance_mm`; about
        16.7 px for ``Geometry()``.
        """
        z = self.effective_distance_mm * 1e-3
        return self.wavelength_m * z / (2 * math.pi * self.pixel_size_m**2)

    # ---- conversions ------------------------------------------------------------------
    def dphi_to_displacement(self, dphi):
        """Phase gradient (rad/px, any array) -> displacement (px)."""
        return dphi * self.shift_per_gradient

    def displacement_to_dphi(self, displacement):
        """Displacement (px, any array) -> phase gradient (rad/px)."""
        return displacement / self.shift_per_gradient

    # ---- serialisation (netCDF attrs accept str/number only) ----------------------------
    def to_attrs(self, prefix: str = "geometry_") -> dict:
        return {prefix + f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_attrs(cls, attrs: dict, prefix: str = "geometry_") -> "Geometry | None":
        """Rebuild from :meth:`to_attrs` output; None when the attrs hold no geometry."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if prefix + f.name in attrs:
                v = attrs[prefix + f.name]
                if isinstance(v, np.ndarray) and v.size == 1:  # netCDF attributes may come back as 1-element arrays
                    v = v.reshape(()).item()
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                    raise ValueError(f"attribute {prefix + f.name!r} must be a number, got {type(v).__name__} {v!r}")
                kwargs[f.name] = float(v)
        return cls(**kwargs) if kwargs else None
