"""Experimental geometry and the displacement <-> differential-phase conversion.

Conventions (DESIGN.md section 1): arrays are ``(y, x)``; displacements ``dx``, ``dy`` are in
detector pixels; the phase gradient ``dphi_dx`` is in radians per pixel.  In the near field

    delta = (wavelength * z / (2 pi)) * grad(phi)

so in pixels ``dx_px = wavelength * z / (2 pi p**2) * dphi/dx_px`` with ``p`` the pixel size
and ``z`` the sample-to-detector distance.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

#: h * c in keV * metre: wavelength [m] = HC_KEV_M / energy [keV].
HC_KEV_M = 1.239841984e-9


@dataclass(frozen=True)
class Geometry:
    """One speckle-imaging set-up.

    ``Geometry()`` is the seed's beryllium-lens experiment: 14 keV, 0.65 um pixels,
    500 mm sample-to-detector distance.  The mask-to-detector distance (300 mm) and the mask
    pitch (4 pixels) are those of the seed's simulations (section 2.3).

    Attributes:
        energy_kev: photon energy in keV.
        pixel_size_um: detector pixel size in micrometres.
        sample_detector_mm: sample-to-detector distance z in millimetres.
        mask_detector_mm: mask-to-detector distance d in millimetres (speckle propagation).
        mask_pitch_px: size of one mask cell in detector pixels.
    """

    energy_kev: float = 14.0
    pixel_size_um: float = 0.65
    sample_detector_mm: float = 500.0
    mask_detector_mm: float = 300.0
    mask_pitch_px: int = 4

    def __post_init__(self):
        for name in ("energy_kev", "pixel_size_um", "sample_detector_mm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Geometry.{name} must be a positive finite number, got {value!r}")
        d = self.mask_detector_mm
        if not (isinstance(d, (int, float)) and math.isfinite(d) and d >= 0):
            raise ValueError(f"Geometry.mask_detector_mm must be >= 0, got {d!r}")
        p = self.mask_pitch_px
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(f"Geometry.mask_pitch_px must be a positive integer, got {p!r}")

    # ---- constructors and units -------------------------------------------------------
    @classmethod
    def from_wavelength(cls, wavelength_m: float, **kwargs) -> "Geometry":
        """A geometry given the wavelength in metres instead of the energy."""
        if not (wavelength_m > 0 and math.isfinite(wavelength_m)):
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
    def shift_per_gradient(self) -> float:
        """Displacement in pixels produced by a phase gradient of 1 rad per pixel.

        ``wavelength * z / (2 pi p**2)``; about 16.7 px for ``Geometry()``.
        """
        z = self.sample_detector_mm * 1e-3
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
                kwargs[f.name] = int(v) if f.name == "mask_pitch_px" else float(v)
        return cls(**kwargs) if kwargs else None
