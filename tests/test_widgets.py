"""The notebook widgets draw their figure, and redraw it when a slider moves.

``ipywidgets.interactive`` in ipywidgets 8 does not display what its function returns, so a
widget built on it showed sliders and no figure (issue 10), while a check of
``widget.result`` passed.  These tests look where the browser looks: the ``image/png`` held by
the widget's ``Output`` (``outputs`` trait), in this process and, in
:func:`test_widget_state_sent_by_a_kernel`, in the comm messages a real kernel sends to
JupyterLab.  ``tests/test_browser.py`` checks the same in a real browser.
"""
from __future__ import annotations

import base64
import io
import queue
import time

import numpy as np
import pytest

SIZE = 64  # small images (the simulator's minimum): each draw is a full simulate_pair


def outputs_of(widget):
    """Every ``ipywidgets.Output`` inside ``widget`` (depth first)."""
    import ipywidgets

    found, todo = [], [widget]
    while todo:
        w = todo.pop(0)
        if isinstance(w, ipywidgets.Output):
            found.append(w)
        todo.extend(getattr(w, "children", ()))
    return found


def shown_png(widget) -> bytes:
    """The PNG the widget's Output shows; fails unless there is exactly one image output."""
    outs = outputs_of(widget)
    assert outs, "the widget has no ipywidgets.Output to show its figure in"
    images = [o["data"]["image/png"] for out in outs for o in out.outputs
              if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
    assert len(images) == 1, (f"expected one image/png in the widget's output, found {len(images)} "
                              f"(outputs: {[out.outputs for out in outs]})")
    png = base64.b64decode(images[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def png_pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def slider(widget, description_start: str):
    import ipywidgets

    todo = [widget]
    while todo:
        w = todo.pop(0)
        if isinstance(w, ipywidgets.widgets.ValueWidget) and w.description.startswith(description_start):
            return w
        todo.extend(getattr(w, "children", ()))
    raise AssertionError(f"no control whose description starts with {description_start!r}")


@pytest.fixture(scope="module")
def widget():
    from spinnet_lite.widgets import simulator_widget

    return simulator_widget(size=SIZE, seed=0)


def test_figure_shown_before_any_slider_moves(widget):
    """First display: the Output already holds the figure as a PNG of the figure's size."""
    pixels = png_pixels(shown_png(widget))
    fig = widget.figure
    assert fig is not None and type(fig).__name__ == "Figure"
    width, height = (round(v * fig.dpi) for v in fig.get_size_inches())
    assert pixels.shape == (height, width, 3)
    assert pixels.std() > 10, "the figure image is blank"
    assert fig.dataset.sizes["y"] == fig.dataset.sizes["x"] == SIZE
    assert widget.draws == 1


def test_each_control_redraws_a_new_image(widget):
    """Every slider and the checkbox redraw; the new image replaces the old one (one output)."""
    from spinnet_lite.widgets import DEFAULTS

    changes = [  # noiseless off first, so that the photons slider changes the image
        ("noiseless", False), ("seed", 7), ("pitch", DEFAULTS["pitch"] + 3),
        ("distance_mm", DEFAULTS["distance_mm"] + 200), ("energy_kev", 12.0), ("mask_phase", 1.0),
        ("blur_px", 2.0), ("photons", 100.0), ("phase_amplitude", 50.0),
    ]
    assert {name for name, _ in changes} == set(widget.controls), "a control is not exercised"
    before = shown_png(widget)
    for name, value in changes:
        draws = widget.draws
        widget.controls[name].value = value
        after = shown_png(widget)
        assert widget.draws == draws + 1, f"changing {name} did not redraw"
        assert after != before, f"changing {name} left the same image in the widget's output"
        a, b = png_pixels(before), png_pixels(after)
        if a.shape == b.shape:
            changed = float((np.abs(a - b).max(axis=2) > 30).mean())
            assert changed > 0.001, f"changing {name} changed only {changed:.2%} of the pixels"
        before = after
    title = widget.figure._suptitle.get_text()  # the view's title lists the values it drew
    assert f"pitch {widget.controls['pitch'].value:g} px" in title and "seed 7" in title, title
    assert "noiseless" not in title and "100 photons/px" in title, title


def test_slider_found_by_its_label_redraws():
    """The same check as a student would do it: find the 'seed' slider, move it one step."""
    from spinnet_lite.widgets import simulator_widget

    w = simulator_widget(size=SIZE)
    first = shown_png(w)
    s = slider(w, "seed")
    s.value = s.value + 1
    second = shown_png(w)
    assert second != first
    assert f"seed {s.value}" in w.figure._suptitle.get_text()


def test_a_failing_redraw_shows_the_error_and_recovers(monkeypatch):
    import spinnet_lite.widgets as widgets

    w = widgets.simulator_widget(size=SIZE)
    good = widgets.simulator_view

    def broken(**kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(widgets, "simulator_view", broken)
    w.controls["seed"].value = 3
    (out,) = outputs_of(w)
    assert [o["output_type"] for o in out.outputs] == ["error"]
    assert out.outputs[0]["evalue"] == "simulated failure"
    assert w.figure is None
    monkeypatch.setattr(widgets, "simulator_view", good)
    w.controls["seed"].value = 4
    shown_png(w)
    assert w.figure is not None
    # an error in the first draw is raised, so the cell that makes the widget fails
    monkeypatch.setattr(widgets, "simulator_view", broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        widgets.simulator_widget(size=SIZE)


def test_unknown_parameter_rejected():
    from spinnet_lite.widgets import simulator_widget

    with pytest.raises(ValueError, match="unknown simulator parameter"):
        simulator_widget(sise=64)


# ---------------------------------------------------------------------------------------
# In a real kernel: what JupyterLab receives over the widget comms
# ---------------------------------------------------------------------------------------
def _collect(kc, msg_id, timeout=120.0):
    """iopub messages of one execute request, until the kernel is idle again."""
    msgs, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs
    raise AssertionError(f"kernel did not finish within {timeout} s")


def _output_model_pngs(msgs, output_model_ids):
    """image/png data in comm_open / comm_msg states of the given (or any) Output models."""
    found = []
    for msg in msgs:
        if msg["msg_type"] not in ("comm_open", "comm_msg"):
            continue
        data = msg["content"].get("data", {})
        state = data.get("state", {})
        comm_id = msg["content"]["comm_id"]
        if state.get("_model_name") == "OutputModel":
            output_model_ids.add(comm_id)
        if comm_id in output_model_ids and "outputs" in state:
            found += [o["data"]["image/png"] for o in state["outputs"] if "image/png" in o.get("data", {})]
    return found


@pytest.mark.slow
def test_widget_state_sent_by_a_kernel():
    """A real ipykernel sends the figure in the Output model's state, and a new one after a change."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import start_new_kernel

    try:
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    except NoSuchKernel:
        pytest.fail("no Jupyter kernel named 'python3': python -m ipykernel install --sys-prefix --name python3")
    try:
        ids: set = set()
        code = ("import os; os.environ['OMP_NUM_THREADS'] = '1'\n"
                "from IPython.display import display\n"
                f"from spinnet_lite.widgets import simulator_widget\nw = simulator_widget(size={SIZE})\n"
                "display(w)")
        msgs = _collect(kc, kc.execute(code))
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert not errors, errors
        assert any(m["msg_type"] == "display_data" and
                   "application/vnd.jupyter.widget-view+json" in m["content"]["data"] for m in msgs)
        first = _output_model_pngs(msgs, ids)
        assert ids, "no Output widget model was opened"
        assert len(first) == 1, f"the Output model's initial state holds {len(first)} images"
        msgs = _collect(kc, kc.execute("w.controls['seed'].value = 5"))
        second = _output_model_pngs(msgs, ids)
        assert len(second) == 1, f"after the change the kernel sent {len(second)} new images"
        assert second[0] != first[0]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
