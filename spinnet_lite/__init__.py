"""spinnet_lite: speckle-based X-ray phase-contrast imaging with SPINNet.

Public API (DESIGN.md section 4)::

    simulate_pair(...)            -> xarray.Dataset (reference, sample, dx, dy, transmission, phase)
    reconstruct(ref, sample, ...) -> xarray.Dataset (dx, dy, transmission [, dphi_dx, dphi_dy, phase])
    load_pretrained()             -> the bundled SPINNet-lite in eval mode
    Geometry                      -> energy, pixel size, distances; displacement <-> phase gradient
"""
from .geometry import Geometry

# Imported eagerly (numpy/xarray, no torch): the function shares its name with the submodule
# ``spinnet_lite.reconstruct``, and a lazy import would leave the *module* bound to
# ``spinnet_lite.reconstruct`` once anything has imported the submodule.
from .reconstruct import reconstruct

__version__ = "0.1.0"

__all__ = ["Geometry", "simulate_pair", "reconstruct", "load_pretrained", "__version__"]


def __getattr__(name):  # lazy: importing the package stays cheap (no torch until needed)
    if name == "simulate_pair":
        from .simulate import simulate_pair

        return simulate_pair
    if name == "load_pretrained":
        from .pretrained import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'spinnet_lite' has no attribute {name!r}")
