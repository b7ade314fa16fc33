"""Small plotting helpers shared by the notebooks (matplotlib; each returns its Figure).

* :func:`feature_pyramid`: a few channels of each pyramid level, titled with their shapes;
* :func:`cost_surfaces`: cost-volume channels laid out as ``(2N + 1) x (2N + 1)`` surfaces;
* :func:`prediction_grid`: dx, dy and T of several predictions under the ground truth
  (the layout of the seed's Fig. S3).

They only draw: whatever they show is computed by ``spinnet_lite`` functions beforehand.
"""
from __future__ import annotations

import numpy as np


def _numpy(x) -> np.ndarray:
    """Tensor (any device, with or without grad), DataArray or array -> numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(getattr(x, "values", x))


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


def prediction_grid(ground_truth: dict, predictions: dict, names=("dx", "dy", "transmission"),
                    labels=("$d_x$ [px]", "$d_y$ [px]", "$T$"), cmaps=("RdBu_r", "RdBu_r", "gray")):
    """Ground truth in the first row, each prediction in a row below (seed Fig. S3 layout).

    Args:
        ground_truth: ``{"dx": (H, W), "dy": (H, W), "transmission": (H, W)}`` (arrays,
            tensors or DataArrays; an xarray Dataset works too).
        predictions: ``{row title: mapping like ground_truth}``, in display order.
        names, labels, cmaps: the columns.

    Returns:
        The matplotlib Figure. Every column shares the ground truth's colour range (symmetric
        about 0 for the displacements), so the rows compare at a glance.
    """
    import matplotlib.pyplot as plt

    rows = {"ground truth": ground_truth, **predictions}
    fig, axes = plt.subplots(len(rows), len(names), squeeze=False, layout="constrained",
                             figsize=(3.6 * len(names), 3.1 * len(rows)))
    for col, (name, label, cmap) in enumerate(zip(names, labels, cmaps)):
        gt = _numpy(ground_truth[name])
        if cmap == "RdBu_r":
            lim = float(np.abs(gt).max()) or 1.0
            vmin, vmax = -lim, lim
        else:
            vmin, vmax = float(gt.min()), float(gt.max())
            if vmax - vmin < 1e-6:
                vmin, vmax = vmin - 0.05, vmax + 0.05
        for row, (title, data) in enumerate(rows.items()):
            ax = axes[row, col]
            im = ax.imshow(_numpy(data[name]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(label)
            if col == 0:
                ax.set_ylabel(title)
        fig.colorbar(im, ax=axes[:, col], shrink=0.6, location="bottom")
    return fig
