"""Plotting helpers shared by the notebooks (matplotlib; each returns its Figure or artist).

The rules every figure here follows (DESIGN.md section 5):

* **compared panels share colour limits**: every row of a comparison is drawn on one scale
  per variable (by default the truth's), so a method that is 15x off *looks* 15x off;
* **a reconstruction stands beside its truth and its error**: :func:`compare_maps` puts the
  truth in the first row and an error map (result - truth, one symmetric scale for all
  rows) beside each result;
* **maps carry a scale bar in micrometres** (:func:`add_scale_bar`), lines of meaning are
  labelled (:func:`regime_lines`) and arrows have a key (:func:`quiver_field`).

Functions:

* :func:`shared_limits`, :func:`add_scale_bar`, :func:`show_map`: the building blocks;
* :func:`compare_maps`: truth, results and their errors on shared scales (any variables);
* :func:`prediction_grid`: dx, dy and T of several predictions under the ground truth, with
  error maps (the layout of the seed's Fig. S3);
* :func:`feature_pyramid`, :func:`cost_surfaces`: inside the network (notebook 03);
* :func:`regime_lines`, :func:`error_histogram`: the seed's error regimes (Fig. 5), labelled;
* :func:`quiver_field`: a displacement field as arrows, with a key;
* :func:`operating_range_curves`: error of each method against displacement, visibility,
  speckle type and dose (issue 8's operating range).

They only draw: whatever they show is computed by ``spinnet_lite`` functions beforehand.
Every compared image records its role in its ``gid`` (``"value:<var>"`` or
``"error:<var>"``), so a test can check that the images of one role share ``get_clim()``.
"""
from __future__ import annotations

import math

import numpy as np

SIGNED_CMAPS = ("RdBu_r", "RdBu", "coolwarm", "bwr", "seismic", "PuOr", "PuOr_r")
ERROR_CMAP = "PuOr_r"


def _numpy(x) -> np.ndarray:
    """Tensor (any device, with or without grad), DataArray or array -> numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(getattr(x, "values", x))


def _get(data, name):
    """``data[name]`` for a mapping or Dataset; None when absent."""
    try:
        if name in data:
            return _numpy(data[name])
    except TypeError:
        pass
    return None


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------
def shared_limits(images, symmetric: bool = False, percentile: float = 100.0, mask=None) -> tuple[float, float]:
    """One colour range ``(vmin, vmax)`` for several images, so that they compare at a glance.

    Args:
        images: iterable of arrays (NaNs are ignored).
        symmetric: a range symmetric about 0 (signed maps: displacements, errors).
        percentile: clip to this percentile of all pixels (of ``|x|`` when symmetric; the
            range ``[100 - p, p]`` otherwise). 100 keeps every pixel inside the range.
        mask: optional boolean array: only these pixels set the range.

    Returns:
        ``(vmin, vmax)``, never empty (a constant image gets a small range around its value).
    """
    values = []
    for img in images:
        a = np.asarray(_numpy(img), dtype=np.float64)
        if mask is not None and np.shape(mask) == a.shape:
            a = a[np.asarray(mask, bool)]
        a = a[np.isfinite(a)]
        if a.size:
            values.append(a.ravel())
    if not values:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    v = np.concatenate(values)
    if symmetric:
        lim = float(np.percentile(np.abs(v), percentile)) if percentile < 100 else float(np.abs(v).max())
        lim = lim if lim > 0 else 1e-12
        return -lim, lim
    lo, hi = (float(np.percentile(v, 100 - percentile)), float(np.percentile(v, percentile))) if percentile < 100 \
        else (float(v.min()), float(v.max()))
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        pad = max(abs(hi) * 1e-3, 1e-6)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _nice_length(target: float) -> float:
    """The 1-2-5 number closest below ``target`` (> 0)."""
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**exp <= target:
            return m * 10**exp
    return 10**exp


def add_scale_bar(ax, pixel_size_um: float, width_px: float | None = None, length_um: float | None = None,
                  color: str = "white", loc: str = "lower right"):
    """A scale bar in micrometres on an image drawn in pixel coordinates.

    Args:
        ax: the Axes holding the image (``imshow`` without ``extent``: one data unit = one pixel).
        pixel_size_um: size of one image pixel in micrometres (times any display subsampling).
        width_px: the image width in pixels (default: from the axes' x-limits).
        length_um: bar length; default a 1-2-5 number of about a fifth of the width.
        color: bar and label colour; loc: where (matplotlib legend locations).

    Returns:
        The ``AnchoredSizeBar`` artist (its ``gid`` is ``"scale_bar"``, its label the length
        with ``µm``).
    """
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    if width_px is None:
        x0, x1 = ax.get_xlim()
        width_px = abs(x1 - x0)
    if length_um is None:
        length_um = _nice_length(0.2 * width_px * pixel_size_um)
    label = f"{length_um:g} µm" if length_um < 1000 else f"{length_um / 1000:g} mm"
    bar = AnchoredSizeBar(ax.transData, length_um / pixel_size_um, label, loc, pad=0.3, color=color, frameon=False,
                          size_vertical=max(width_px / 120, 0.5), fontproperties={"size": 8})
    bar.set_gid("scale_bar")
    ax.add_artist(bar)
    return bar


def show_map(ax, image, cmap: str = "viridis", vmin=None, vmax=None, title: str | None = None,
             pixel_size_um: float | None = None, max_display_px: int | None = 600, gid: str | None = None,
             scale_bar_color: str | None = None, circle=None):
    """``imshow`` of one map without ticks, with a scale bar when the pixel size is known.

    Images wider than ``max_display_px`` are subsampled for display (the scale bar and the
    circle account for it). ``circle``: optional ``(cy, cx, radius)`` in image pixels, drawn
    dashed (e.g. an analysis region). Returns the ``AxesImage``.
    """
    img = _numpy(image)
    step = max(1, int(math.ceil(max(img.shape) / max_display_px))) if max_display_px else 1
    if step > 1:
        img = img[::step, ::step]
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    if gid:
        im.set_gid(gid)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if pixel_size_um:
        add_scale_bar(ax, pixel_size_um * step, img.shape[1], color=scale_bar_color or _contrasting(im, img))
    if circle is not None:
        cy, cx, radius = circle
        draw_circle(ax, (cx / step, cy / step), radius / step)
    return im


def _contrasting(im, img) -> str:
    """Black or white, whichever stands out on the image's lower-right corner (where the bar goes)."""
    h, w = img.shape[:2]
    corner = np.asarray(img[int(0.85 * h):, int(0.6 * w):], dtype=np.float64).ravel()
    rgba = im.cmap(im.norm(np.where(np.isfinite(corner), corner, 0.0)))
    luminance = 0.2126 * rgba[:, 0] + 0.7152 * rgba[:, 1] + 0.0722 * rgba[:, 2]
    luminance[~np.isfinite(corner)] = 1.0  # NaN is not drawn: the white axes show through
    return "black" if np.mean(luminance) > 0.5 else "white"


# ---------------------------------------------------------------------------------------
# Comparisons: truth | result | error, on shared scales
# ---------------------------------------------------------------------------------------
def _column_spec(col):
    if isinstance(col, str):
        return col, col, "RdBu_r" if col in ("dx", "dy", "dphi_dx", "dphi_dy") else "viridis"
    name, label, cmap = col
    return name, label, cmap


def compare_maps(truth, results: dict, columns=("dx", "dy", "transmission"), pixel_size_um: float | None = None,
                 errors: bool = True, truth_label: str = "truth", limits: str = "truth", percentile: float = 100.0,
                 error_percentile: float = 99.5, mask=None, row_notes: dict | None = None,
                 panel_size: float = 2.6, max_display_px: int | None = 600, circle=None):
    """The truth in the first row, each result in a row below, each with its error map beside it.

    Args:
        truth: mapping (dict or xarray Dataset) of ``(H, W)`` maps by variable name; None when
            there is no truth (then there are no error maps either).
        results: ``{row title: mapping like truth}``, in display order.
        columns: variables shown, each a name or ``(name, label, cmap)``; a signed colour map
            (e.g. ``"RdBu_r"``) gets a range symmetric about 0.
        pixel_size_um: draws a scale bar in µm on every map.
        errors: add an error column ``result - truth`` beside each variable (first row: the
            truth has no error; that panel says so).
        limits: ``"truth"``: each variable's range is the truth's (a result that is off by far
            saturates, and its error map shows by how much); ``"all"``: the range covers the
            truth and every result.
        percentile: percentile of the pixels that sets the value ranges (100: all).
        error_percentile: percentile of ``|error|`` over **all** results that sets the one
            symmetric error range of each variable.
        mask: optional boolean ``(H, W)``: only these pixels set the ranges.
        row_notes: optional ``{row title: text}`` added under the row's title.
        circle: optional ``(cy, cx, radius)`` in pixels, drawn on every map (an analysis region).

    Returns:
        The Figure. Every value image of variable ``v`` has ``gid == "value:v"`` and the same
        ``get_clim()``; every error image ``gid == "error:v"`` and one symmetric clim.
    """
    import matplotlib.pyplot as plt

    specs = [_column_spec(c) for c in columns]
    has_truth = truth is not None
    errors = errors and has_truth
    rows = ({truth_label: truth} if has_truth else {}) | dict(results)
    n_cols = len(specs) * (2 if errors else 1)
    fig, axes = plt.subplots(len(rows), n_cols, squeeze=False, layout="constrained",
                             figsize=(panel_size * n_cols + 0.5, panel_size * len(rows) + 0.9))
    row_notes = row_notes or {}
    for c, (name, label, cmap) in enumerate(specs):
        signed = cmap in SIGNED_CMAPS
        ref = [_get(truth, name)] if has_truth and limits == "truth" and _get(truth, name) is not None \
            else [_get(d, name) for d in rows.values() if _get(d, name) is not None]
        vmin, vmax = shared_limits(ref, symmetric=signed, percentile=percentile, mask=mask)
        errs = {}
        if errors and _get(truth, name) is not None:
            gt = _get(truth, name)
            for title, data in results.items():
                value = _get(data, name)
                if value is not None and value.shape == gt.shape:
                    errs[title] = value - gt
        elim = shared_limits(errs.values(), symmetric=True, percentile=error_percentile, mask=mask) if errs else None
        value_col = c * (2 if errors else 1)
        im_value = im_error = None
        for r, (title, data) in enumerate(rows.items()):
            ax = axes[r, value_col]
            value = _get(data, name)
            if value is None:
                ax.axis("off")
                ax.text(0.5, 0.5, f"no {name}", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                im_value = show_map(ax, value, cmap, vmin, vmax, pixel_size_um=pixel_size_um,
                                    max_display_px=max_display_px, gid=f"value:{name}", circle=circle)
            if r == 0:
                ax.set_title(label, fontsize=10)
            if c == 0:
                note = row_notes.get(title)
                ax.set_ylabel(title + (f"\n{note}" if note else ""), fontsize=9)
            if errors:
                eax = axes[r, value_col + 1]
                if title in errs:
                    im_error = show_map(eax, errs[title], ERROR_CMAP, *elim, pixel_size_um=pixel_size_um,
                                        max_display_px=max_display_px, gid=f"error:{name}", circle=circle)
                    rms = float(np.sqrt(np.nanmean(errs[title][np.asarray(mask, bool)] ** 2 if mask is not None
                                                   else errs[title] ** 2)))
                    eax.set_xlabel(f"rms {rms:.3g}", fontsize=8)
                else:
                    eax.axis("off")
                    if r == 0:
                        eax.text(0.5, 0.5, "error =\nresult − truth\n(rows below,\none scale)", ha="center",
                                 va="center", transform=eax.transAxes, fontsize=8)
                if r == 0:
                    eax.set_title(f"error of {label}", fontsize=10)
        if im_value is not None:
            _colorbar(fig, im_value, axes[:, value_col])
        if im_error is not None:
            _colorbar(fig, im_error, axes[:, value_col + 1])
    return fig


def _colorbar(fig, im, axes):
    """A horizontal colour bar under a column, with few enough ticks that their labels never collide."""
    from matplotlib.ticker import MaxNLocator

    cb = fig.colorbar(im, ax=axes, shrink=0.7, location="bottom", aspect=25)
    cb.locator = MaxNLocator(nbins=3)
    cb.update_ticks()
    return cb


def prediction_grid(ground_truth: dict, predictions: dict, names=("dx", "dy", "transmission"),
                    labels=("$d_x$ [px]", "$d_y$ [px]", "$T$"), cmaps=("RdBu_r", "RdBu_r", "gray"),
                    errors: bool = True, pixel_size_um: float | None = None, **kwargs):
    """Ground truth in the first row, each prediction in a row below (seed Fig. S3 layout),
    each with its error map beside it.

    Args:
        ground_truth: ``{"dx": (H, W), "dy": (H, W), "transmission": (H, W)}`` (arrays,
            tensors or DataArrays; an xarray Dataset works too).
        predictions: ``{row title: mapping like ground_truth}``, in display order.
        names, labels, cmaps: the columns.
        errors: an error column (prediction - truth) beside each variable.
        pixel_size_um: a scale bar in µm on every map.
        **kwargs: passed to :func:`compare_maps`.

    Returns:
        The matplotlib Figure. Every column shares the ground truth's colour range (symmetric
        about 0 for the displacements), and all error maps of a variable share one range, so
        the rows compare at a glance.
    """
    return compare_maps(ground_truth, predictions, list(zip(names, labels, cmaps)), pixel_size_um=pixel_size_um,
                        errors=errors, truth_label="ground truth", **kwargs)


# ---------------------------------------------------------------------------------------
# Lines with a meaning, arrows with a key
# ---------------------------------------------------------------------------------------
def regime_lines(ax, thresholds, labels, axis: str = "x", color: str = "k"):
    """Dashed lines at the regime boundaries and each regime's name written in its band.

    Args:
        ax: the Axes.
        thresholds: the boundaries (``len(labels) - 1`` values, increasing).
        labels: the regimes' names, from the lowest band up.
        axis: ``"x"`` (vertical lines, e.g. a histogram of errors) or ``"y"`` (horizontal).

    Returns:
        The list of line artists; each has its boundary as ``label`` (so a legend names it).
    """
    if len(labels) != len(thresholds) + 1:
        raise ValueError(f"regime_lines: {len(labels)} labels need {len(labels) - 1} thresholds, got {len(thresholds)}")
    lines = []
    for t in thresholds:
        line = (ax.axvline if axis == "x" else ax.axhline)(t, color=color, ls="--", lw=1, label=f"regime boundary {t:.2%}")
        line.set_gid("regime_line")
        lines.append(line)
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    log = (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log"
    edges = [lo, *thresholds, hi]
    for label, a, b in zip(labels, edges[:-1], edges[1:]):
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            continue
        mid = math.sqrt(a * b) if log and a > 0 else (a + b) / 2
        if axis == "x":
            ax.text(mid, 0.98, label, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8,
                    gid="regime_label", bbox=dict(fc="white", ec="none", alpha=0.7))
        else:
            ax.text(0.98, mid, label, transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=8,
                    gid="regime_label", bbox=dict(fc="white", ec="none", alpha=0.7))
    return lines


def error_histogram(errors: dict, thresholds, labels, bins: int = 25):
    """Histogram of per-pair errors of each method on a log axis with the seed's regimes labelled
    (seed Fig. 5), and the count of pairs per regime beside it.

    Args:
        errors: ``{method: 1-D array of pair errors (fractions, not %)}``.
        thresholds, labels: the regime boundaries and names (``spinnet_lite.metrics``).

    Returns:
        The Figure (two Axes: histogram, counts).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
    arrays = {m: np.asarray(e, dtype=float) for m, e in errors.items()}
    finite = np.concatenate([e[np.isfinite(e) & (e > 0)] for e in arrays.values()] or [np.array([1e-3])])
    lo = max(min(finite.min(), min(thresholds)) / 2, 1e-6)
    hi = max(finite.max(), max(thresholds)) * 2
    edges = np.logspace(math.log10(lo), math.log10(hi), bins)
    for m, e in arrays.items():
        axes[0].hist(np.clip(e, lo, hi), bins=edges, alpha=0.6, label=f"{m} (median {np.nanmedian(e):.2%})")
    axes[0].set(xscale="log", xlabel="pair error (Eq. 4)", ylabel="pairs", xlim=(lo, hi))
    regime_lines(axes[0], thresholds, labels, axis="x")
    axes[0].legend(loc="center right", fontsize=8)
    x = np.arange(len(labels))
    width = 0.8 / max(len(arrays), 1)
    for i, (m, e) in enumerate(arrays.items()):
        # as spinnet_lite.metrics.error_regime: below the first boundary, up to and including
        # the next, ..., above the last
        band = [next((k for k, t in enumerate(thresholds) if (v < t if k == 0 else v <= t)), len(thresholds))
                for v in e[np.isfinite(e)]]
        counts = [band.count(k) for k in range(len(labels))]
        axes[1].bar(x + (i - (len(arrays) - 1) / 2) * width, counts, width, label=m)
    axes[1].set_xticks(x, labels)
    axes[1].yaxis.get_major_locator().set_params(integer=True)
    axes[1].set(xlabel="regime (pair error)", ylabel="pairs", title="pairs per regime")
    axes[1].legend(fontsize=8)
    return fig


def quiver_field(ax, dx, dy, step: int | None = None, pixel_size_um: float | None = None,
                 key_px: float | None = None, color: str = "k", extent_um: bool = False):
    """A displacement field ``(dx, dy)`` (px) as arrows, with a key saying how long 1 arrow-px is.

    Args:
        ax: the Axes (an image may already be drawn on it).
        dx, dy: ``(H, W)`` displacements in pixels.
        step: one arrow every ``step`` pixels (default: about 16 arrows across).
        pixel_size_um: with ``extent_um=True`` the arrows sit at micrometre positions (an image
            drawn with ``extent`` in µm).
        key_px: the key's length in px (default: a 1-2-5 number near the largest arrow).
        extent_um: positions in µm instead of pixels.

    Returns:
        The ``QuiverKey`` (its label says the displacement it stands for; ``gid`` "quiver_key").
    """
    dx, dy = _numpy(dx), _numpy(dy)
    h, w = dx.shape
    step = step or max(1, min(h, w) // 16)
    yy, xx = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    scale_pos = pixel_size_um if (extent_um and pixel_size_um) else 1.0
    u, v = dx[yy, xx], dy[yy, xx]
    largest = float(np.nanmax(np.hypot(u, v))) if u.size else 1.0
    key_px = key_px or _nice_length(max(largest, 1e-6))
    # scale: data units of the plot per px of displacement, so the longest arrow spans ~1.5 steps
    scale = max(largest, 1e-12) / (1.5 * step * scale_pos)
    # +dy points down the rows: with the y axis inverted (imshow), angles="xy" draws it downwards
    q = ax.quiver(xx * scale_pos, yy * scale_pos, u, v, color=color, angles="xy", scale_units="xy", scale=scale)
    key = ax.quiverkey(q, 0.06, 0.06, key_px, f"{key_px:g} px shift", labelpos="E", coordinates="axes",
                       labelcolor=color, fontproperties={"size": 8})
    key.set_gid("quiver_key")
    return key


# ---------------------------------------------------------------------------------------
# The operating range (issue 8): error against displacement, visibility, speckle type, dose
# ---------------------------------------------------------------------------------------
OPERATING_AXES = {
    "magnitude": "largest displacement [px]",
    "displacement": "displacement magnitude [px]",
    "visibility": "speckle visibility (rms contrast)",
    "speckle": "mask pitch / diffuser grain [px]",
    "dose": "photons per pixel",
}
#: Panels whose values span decades: drawn on a log x axis.
OPERATING_LOG_X = {"dose"}


def _records(table) -> list[dict]:
    if hasattr(table, "to_dict"):
        try:
            return table.to_dict(orient="records")
        except TypeError:
            pass
    return [dict(r) for r in table]


def operating_range_curves(table, error: str | None = None, methods=None, panels=None,
                           trained_range: dict | None = None, ylabel: str = "displacement rms error [px]"):
    """Error of each method against each operating-range variable, one panel per variable.

    Args:
        table: long-format rows (a pandas DataFrame or a list of dicts), e.g. those of
            :func:`spinnet_lite.operating_range.run_sweeps`: the panel (``sweep``, or ``axis``),
            the swept ``value`` (a number, or a category such as ``"mask"``), the ``method``,
            optionally a ``label`` (one curve per method and label, e.g. the phantom or the
            speckle generator), and the error column; optional ``<error>_lo`` / ``<error>_hi``
            (a band, e.g. the spread over pairs).
        error: the column plotted (default ``rmse_px``, else ``displacement_rmse``).
        methods: the methods, in legend order (default: as they appear).
        panels: the panels, in order (default: as they appear).
        trained_range: optional ``{panel: (lo, hi)}`` shaded and labelled "trained range".

    Returns:
        The Figure: numeric values as lines with markers (log y; colour = method, marker and
        line style = label), categorical ones as grouped bars.
    """
    import matplotlib.pyplot as plt

    rows = _records(table)
    if not rows:
        raise ValueError("operating_range_curves: the table has no rows")
    panel_key = "sweep" if "sweep" in rows[0] else "axis"
    error = error or ("rmse_px" if "rmse_px" in rows[0] else "displacement_rmse")
    for key in (panel_key, "value", "method", error):
        if key not in rows[0]:
            raise ValueError(f"operating_range_curves: the table needs a {key!r} column, got {sorted(rows[0])}")
    names = list(dict.fromkeys(r[panel_key] for r in rows)) if panels is None else list(panels)
    methods = list(dict.fromkeys(r["method"] for r in rows)) if methods is None else list(methods)
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    styles = ("o-", "s--", "^:", "D-.", "v-")
    fig, axs = plt.subplots(1, len(names), squeeze=False, figsize=(4.8 * len(names), 3.9), layout="constrained")
    trained_range = trained_range or {}
    for ax, name in zip(axs[0], names):
        sub = [r for r in rows if r[panel_key] == name]
        numeric = all(isinstance(r["value"], (int, float, np.number)) and not isinstance(r["value"], bool) for r in sub)
        labels = list(dict.fromkeys(r.get("label") for r in sub))
        cats = list(dict.fromkeys(r["value"] for r in sub))
        for j, label in enumerate(labels):
            for i, m in enumerate(methods):
                pts = [r for r in sub if r["method"] == m and r.get("label") == label]
                if not pts:
                    continue
                # one point per value: the median over repeated cases
                by_value = {}
                for r in pts:
                    by_value.setdefault(r["value"], []).append(r)
                xs = sorted(by_value, key=(lambda v: v) if numeric else cats.index)
                y = np.array([np.median([float(r[error]) for r in by_value[v]]) for v in xs])
                name_ = m if label is None or len(labels) == 1 else f"{m}, {label}"
                if numeric:
                    x = np.array([float(v) for v in xs])
                    ax.plot(x, y, styles[j % len(styles)], color=colours[m], label=name_, ms=4)
                    if f"{error}_lo" in pts[0] and f"{error}_hi" in pts[0]:
                        lo = [min(r[f"{error}_lo"] for r in by_value[v]) for v in xs]
                        hi = [max(r[f"{error}_hi"] for r in by_value[v]) for v in xs]
                        ax.fill_between(x, lo, hi, color=colours[m], alpha=0.15)
                else:
                    width = 0.8 / (len(methods) * len(labels))
                    k = j * len(methods) + i
                    x = np.array([cats.index(v) for v in xs]) + (k - (len(methods) * len(labels) - 1) / 2) * width
                    ax.bar(x, y, width, color=colours[m], label=name_, alpha=1.0 - 0.35 * j)
        if not numeric:
            ax.set_xticks(range(len(cats)), [str(c) for c in cats])
        if name in trained_range:
            lo, hi = trained_range[name]
            ax.axvspan(lo, hi, color="0.92", zorder=0, label="trained range")
        ax.set(xlabel=OPERATING_AXES.get(name, name), ylabel=ylabel, yscale="log", title=f"error vs {name}")
        if numeric and name in OPERATING_LOG_X and all(float(r["value"]) > 0 for r in sub):
            ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def draw_circle(ax, center_xy, radius, color: str = "k", label: str | None = None):
    """A circle outline (e.g. the seed's 800 µm analysis region) in the Axes' data units."""
    from matplotlib.patches import Circle

    circle = Circle(center_xy, radius, fill=False, color=color, lw=1, ls="--", label=label)
    ax.add_patch(circle)
    return circle


# ---------------------------------------------------------------------------------------
# Inside the network (notebook 03)
# ---------------------------------------------------------------------------------------
def feature_pyramid(features: dict, channels: int = 3, cmap: str = "gray", figsize_per_panel: float = 2.2):
    """Draw ``channels`` channels of every pyramid level, one column per level.

    Args:
        features: ``{level: (C, h, w) or (1, C, h, w)}`` (tensors or arrays), e.g. the output
            of :class:`spinnet_lite.model.extractor.FeaturePyramid` for one image.
        channels: channels shown per level (rows); levels with fewer leave the rest blank.
        cmap: colour map.

    Returns:
        The matplotlib Figure; each column is titled ``level l`` and its shape ``C x h x w``.
    """
    import matplotlib.pyplot as plt

    levels = sorted(features)
    fig, axes = plt.subplots(channels, len(levels), squeeze=False, layout="constrained",
                             figsize=(figsize_per_panel * len(levels), figsize_per_panel * channels))
    for col, level in enumerate(levels):
        f = _numpy(features[level])
        f = f[0] if f.ndim == 4 else f
        for row in range(channels):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if row >= f.shape[0]:
                ax.axis("off")
                continue
            ax.imshow(f[row], cmap=cmap, interpolation="nearest")
            if row == 0:
                ax.set_title(f"level {level}\n{f.shape[0]} x {f.shape[1]} x {f.shape[2]}", fontsize=9)
            if col == 0 or row >= _numpy(features[levels[col - 1]]).shape[-3]:
                ax.set_ylabel(f"channel {row}")
    return fig


def cost_surfaces(surfaces: dict, search_range: int, expected=None, cmap: str = "viridis"):
    """Draw cost-volume channels as ``(2N + 1) x (2N + 1)`` surfaces over the shift ``(sy, sx)``.

    Args:
        surfaces: ``{title: ((2N + 1)**2,) values}`` (one cost value per channel, in the
            channel order of :func:`spinnet_lite.model.cost_volume.cost_volume`).
        search_range: ``N``.
        expected: optional known shift ``(sy, sx)``, marked with a red circle; the argmax of
            each surface is marked with a white cross.

    Returns:
        The matplotlib Figure, one panel per surface, axes ``sx`` (right) and ``sy`` (down).
    """
    import matplotlib.pyplot as plt

    n = int(search_range)
    side = 2 * n + 1
    fig, axes = plt.subplots(1, len(surfaces), squeeze=False, layout="constrained",
                             figsize=(3.8 * len(surfaces), 3.4))
    for ax, (title, values) in zip(axes[0], surfaces.items()):
        grid = _numpy(values).reshape(side, side)
        im = ax.imshow(grid, cmap=cmap, extent=[-n - 0.5, n + 0.5, n + 0.5, -n - 0.5], interpolation="nearest")
        sy, sx = np.unravel_index(int(np.argmax(grid)), grid.shape)
        ax.plot(sx - n, sy - n, "wx", ms=10, mew=2, label="argmax")
        if expected is not None:
            ax.plot(expected[1], expected[0], "o", mfc="none", mec="r", ms=16, mew=2, label="known shift")
        ax.set(title=title, xlabel="$s_x$ [level px]", ylabel="$s_y$ [level px]")
        ax.set_xticks(range(-n, n + 1))
        ax.set_yticks(range(-n, n + 1))
        fig.colorbar(im, ax=ax, shrink=0.85)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return fig
