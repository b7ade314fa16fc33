"""Interactive views for the notebooks: the coded-mask simulator with sliders.

:func:`simulator_view` is a plain function (parameters in, ``matplotlib`` Figure out) that
calls :func:`spinnet_lite.simulate_pair`; :func:`simulator_widget` puts sliders for its
parameters above an ``ipywidgets.Output`` that shows the figure.  A notebook calls
:func:`simulator_view` once in a plain cell, so a headless run (papermill, CI) exercises the
same code the sliders drive.

The figure is built with ``matplotlib.figure.Figure`` rather than ``pyplot``: nothing is
registered with pyplot, so moving a slider neither leaks figures nor shows the plot twice.
The widget renders it to PNG itself and replaces the ``Output``'s content in one step (its
``outputs`` trait), so it draws on first display whatever the matplotlib backend, and a
redraw swaps the image without an empty frame in between.  (``ipywidgets.interactive`` is
not used: in ipywidgets 8 it does not display the figure its function returns.)
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .geometry import Geometry

#: The training set-up (seed section 2.3): lambda = 0.06 nm (20.66 keV), 60 mm sample-to-detector.
_TRAINING = Geometry.training()
DEFAULTS = dict(
    pitch=4,
    distance_mm=300.0,
    energy_kev=round(_TRAINING.energy_kev, 2),
    mask_phase=math.pi,
    blur_px=0.6,
    photons=0.0,
    phase_amplitude=30.0,
    seed=0,
    size=256,
)


def simulator_view(pitch: float = DEFAULTS["pitch"], distance_mm: float = DEFAULTS["distance_mm"],
                   energy_kev: float = DEFAULTS["energy_kev"], mask_phase: float = DEFAULTS["mask_phase"],
                   blur_px: float = DEFAULTS["blur_px"], photons: float = DEFAULTS["photons"],
                   phase_amplitude: float = DEFAULTS["phase_amplitude"], seed: int = DEFAULTS["seed"],
                   size: int = DEFAULTS["size"], sample_distance_mm: float = _TRAINING.sample_detector_mm,
                   pixel_size_um: float = _TRAINING.pixel_size_um) -> Figure:
    """Simulate one random-phantom pair and draw it: reference, sample, dx, dy, transmission.

    Args:
        pitch: mask cell size in pixels (fractional allowed: the mask is simulated on a finer grid).
        distance_mm: mask-to-detector distance (speckle propagation) in mm.
        energy_kev: photon energy in keV (default: the seed's 0.06 nm).
        mask_phase: phase shift of the mask's gold cells in radians (phi0; pi in the seed).
        blur_px: detector blur, Gaussian sigma in pixels (0: none).
        photons: Poisson noise at this many photons per pixel; 0 means noiseless.
        phase_amplitude: the random phantom's peak phase V_phi in radians.
        seed: random seed of the mask and the phantom.
        size: image size in pixels.
        sample_distance_mm: sample-to-detector distance z in mm (sets the displacement per
            phase gradient; default that of :meth:`Geometry.training`).
        pixel_size_um: detector pixel size in micrometres.

    Returns:
        A ``matplotlib.figure.Figure`` with one row of five panels, each with a colorbar.
        The simulated ``xarray.Dataset`` is attached as ``fig.dataset``.
    """
    from .simulate import simulate_pair  # torch is imported only when a view is drawn

    geometry = Geometry(energy_kev=float(energy_kev), pixel_size_um=float(pixel_size_um),
                        sample_detector_mm=float(sample_distance_mm), mask_detector_mm=float(distance_mm),
                        mask_pitch_px=float(pitch))
    ds = simulate_pair(size=int(size), pitch=float(pitch), seed=int(seed), phantom="random",
                       photons=float(photons) if photons and photons > 0 else None, geometry=geometry,
                       mask_phase=float(mask_phase), blur_px=float(blur_px), distance_mm=float(distance_mm),
                       phase_amplitude=float(phase_amplitude))

    fig = Figure(figsize=(18, 3.9), layout="constrained")
    axes = fig.subplots(1, 5)
    ref = ds["reference"].values
    lo, hi = np.percentile(ref, [0.5, 99.5])  # same grey scale for reference and sample
    dmax = float(max(np.abs(ds["dx"]).max(), np.abs(ds["dy"]).max(), 1e-3))
    panels = [
        ("reference", dict(cmap="gray", vmin=lo, vmax=hi), "reference $I_r$"),
        ("sample", dict(cmap="gray", vmin=lo, vmax=hi), "sample $I_s$"),
        ("dx", dict(cmap="RdBu_r", vmin=-dmax, vmax=dmax), "$d_x$ [px]"),
        ("dy", dict(cmap="RdBu_r", vmin=-dmax, vmax=dmax), "$d_y$ [px]"),
        ("transmission", dict(cmap="viridis"), "transmission $T$"),
    ]
    extent = [float(ds.x[0]), float(ds.x[-1]), float(ds.y[-1]), float(ds.y[0])]
    for ax, (name, style, title) in zip(axes, panels):
        im = ax.imshow(ds[name].values, extent=extent, interpolation="nearest", **style)
        ax.set_title(title)
        ax.set_xlabel("x [um]")
        fig.colorbar(im, ax=ax, shrink=0.85)
    axes[0].set_ylabel("y [um]")
    noise = "noiseless" if not photons else f"{photons:g} photons/px"
    fig.suptitle(
        f"pitch {float(pitch):g} px, mask-detector {distance_mm:g} mm, {energy_kev:g} keV "
        f"($\\lambda$ = {geometry.wavelength_m * 1e9:.4f} nm), mask phase {mask_phase:.2f} rad, "
        f"blur {blur_px:g} px, {noise}, $V_\\phi$ = {phase_amplitude:g} rad, "
        f"max |d| = {dmax:.2f} px, seed {int(seed)}"
    )
    fig.dataset = ds
    return fig


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes (fixed size: no tight bounding box, so redraws do not jump)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def _png_output(png: bytes, fig: Figure, dpi: float) -> dict:
    """One ``display_data`` message for an ``Output`` widget: the PNG with its size in pixels."""
    import base64

    width, height = (int(round(v * dpi)) for v in fig.get_size_inches())
    return {"output_type": "display_data",
            "data": {"image/png": base64.b64encode(png).decode("ascii"),
                     "text/plain": f"<Figure size {width}x{height} with {len(fig.axes)} Axes>"},
            "metadata": {"image/png": {"width": width, "height": height}}}


def _error_output(exc: BaseException) -> dict:
    import traceback

    return {"output_type": "error", "ename": type(exc).__name__, "evalue": str(exc),
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}


def simulator_widget(**defaults):
    """Sliders for :func:`simulator_view` above the figure it draws; returns an ``ipywidgets.VBox``.

    Keyword arguments override the sliders' starting values (see :data:`DEFAULTS`);
    ``size``, ``sample_distance_mm`` and ``pixel_size_um`` are fixed (not sliders).
    The figure is drawn once when the widget is made (so it shows on first display) and
    again each time a slider is released (``continuous_update=False``).

    The returned box has these attributes besides its children:

    - ``controls``: dict of the slider and checkbox widgets, by parameter name;
    - ``output``: the ``ipywidgets.Output`` holding the current figure as an ``image/png``;
    - ``figure`` (also ``result``): the last ``Figure`` drawn (``figure.dataset`` is the pair),
      or ``None`` if the last draw failed (the error then shows in ``output``; an error in the
      first draw, when the widget is made, is raised instead);
    - ``draws``: how many times the figure was drawn;
    - ``redraw()``: draw again with the current values.
    """
    import ipywidgets as w

    unknown = set(defaults) - set(DEFAULTS) - {"sample_distance_mm", "pixel_size_um"}
    if unknown:
        raise ValueError(f"unknown simulator parameter(s) {sorted(unknown)}; expected some of {sorted(DEFAULTS)}")
    v = {**DEFAULTS, **defaults}
    style = dict(continuous_update=False, style={"description_width": "160px"},
                 layout=w.Layout(width="480px"))
    sliders = dict(
        pitch=w.FloatSlider(value=float(v["pitch"]), min=1, max=16, step=0.1, description="mask pitch [px]", **style),
        distance_mm=w.FloatSlider(value=float(v["distance_mm"]), min=0, max=1000, step=10,
                                  description="mask-detector [mm]", **style),
        energy_kev=w.FloatSlider(value=float(v["energy_kev"]), min=5, max=40, step=0.5,
                                 description="energy [keV]", **style),
        mask_phase=w.FloatSlider(value=float(v["mask_phase"]), min=0, max=2 * math.pi, step=0.05,
                                 description="mask phase [rad]", **style),
        blur_px=w.FloatSlider(value=float(v["blur_px"]), min=0, max=3, step=0.1,
                              description="detector blur [px]", **style),
        photons=w.FloatLogSlider(value=max(float(v["photons"]), 10.0), base=10, min=1, max=6, step=0.25,
                                 description="photons / px", **style),
        phase_amplitude=w.FloatSlider(value=float(v["phase_amplitude"]), min=0, max=20 * math.pi, step=0.5,
                                      description="sample phase V_phi [rad]", **style),
        seed=w.IntSlider(value=int(v["seed"]), min=0, max=99, description="seed", **style),
    )
    controls = dict(noiseless=w.Checkbox(value=not v["photons"], description="noiseless (ignore photons)"),
                    **sliders)
    output = w.Output()
    box = w.VBox([*controls.values(), output])
    box.add_class("spinnet-simulator-widget")
    box.controls, box.output, box.figure, box.result, box.draws = controls, output, None, None, 0

    def redraw(change=None, raise_errors=False):
        values = {name: c.value for name, c in controls.items()}
        noiseless, photons = values.pop("noiseless"), values.pop("photons")
        try:
            fig = simulator_view(photons=0.0 if noiseless else photons, size=int(v["size"]),
                                 sample_distance_mm=float(v.get("sample_distance_mm",
                                                                _TRAINING.sample_detector_mm)),
                                 pixel_size_um=float(v.get("pixel_size_um", _TRAINING.pixel_size_um)),
                                 **values)
            dpi = float(fig.dpi)
            new = _png_output(figure_png(fig, dpi), fig, dpi)
        except Exception as exc:  # show the error where the figure was, keep the sliders alive
            if raise_errors:
                raise
            fig, new = None, _error_output(exc)
        # one assignment replaces the old image: no cleared, empty state reaches the browser
        output.outputs = (new,)
        box.figure = box.result = fig
        box.draws += 1

    for c in controls.values():
        c.observe(redraw, names="value")
    box.redraw = redraw
    redraw(raise_errors=True)  # a broken view fails the cell that makes the widget (headless runs too)
    return box
