"""Where the held-out error sits: at the phantoms' contour edges, or in the smooth regions?

    python tools/edge_probe.py                        # the bundled weights
    python tools/edge_probe.py --checkpoint runs/x/model.pt

For each held-out pair (``spinnet_lite.evalset``, the set of ``benchmarks/evaluate.py``),
SPINNet runs through ``reconstruct`` (defaults). "Edge" pixels are those within 2 px of a
pixel where the true displacement changes by more than ``--threshold`` px per px (the
contours of the seed's phantoms, the rim of a lens). Printed per pair and as medians: the
share of pixels at edges, the share of the squared displacement error they hold, and the rms
error (px) at edges and elsewhere; 8 px border dropped.

Then what the images themselves can tell there: the photometric residual
``sample / m - T * (reference / m)(x - d)`` (``m`` the reference's local mean, Gaussian of 12 px;
``T`` the true transmission; cubic interpolation) at the edges, with the true field and with
SPINNet's. Where the truth leaves almost as large a residual as the network's answer, an
estimator that compares the two images pixel by pixel cannot find the truth there.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage


def photometric_residual(reference, sample, transmission, dx, dy, sigma: float = 12.0) -> np.ndarray:
    """``sample / m - transmission * (reference / m)(y - dy, x - dx)`` (H, W), ``m`` the reference's
    Gaussian local mean (``sigma`` px): ~0 where the forward model with this field explains the sample
    (exactly 0 but for the change of ``m`` over the shift)."""
    reference = np.asarray(reference, np.float64)
    m = np.maximum(ndimage.gaussian_filter(reference, sigma, mode="reflect"), 1e-12)
    yy, xx = np.mgrid[: reference.shape[0], : reference.shape[1]].astype(np.float64)
    moved = ndimage.map_coordinates(reference / m, [yy - dy, xx - dx], order=3, mode="reflect")
    return np.asarray(sample, np.float64) / m - transmission * moved


def _root_mean(squares: np.ndarray) -> float:
    """sqrt(mean(squares)); NaN for none."""
    return float(np.sqrt(squares.mean())) if squares.size else float("nan")


def edge_errors(reference, sample, dx, dy, model=None, threshold: float = 0.05, border: int = 8,
                transmission=None) -> dict:
    """Squared-error split between edge and smooth pixels for one pair (see the module docstring);
    with ``transmission`` (the truth) also the rms photometric residual at edges with the true
    field (``photo_edge_truth``; ``photo_smooth_truth`` away from the edges) and with SPINNet's
    (``photo_edge_net``)."""
    from spinnet_lite import reconstruct

    r = reconstruct(reference, sample, **({"model": model} if model is not None else {}))
    e2 = (r.dx.values - dx) ** 2 + (r.dy.values - dy) ** 2
    steep = (np.hypot(*np.gradient(dx)) + np.hypot(*np.gradient(dy))) > threshold
    edge = ndimage.binary_dilation(steep, iterations=2)
    inner = (slice(border, -border), slice(border, -border))
    e2, edge_in = e2[inner], edge[inner]
    out = {"edge_pixels": float(edge_in.mean()),
           "edge_error_share": float(e2[edge_in].sum() / max(e2.sum(), 1e-30)),
           "rmse_edge": _root_mean(e2[edge_in]), "rmse_smooth": _root_mean(e2[~edge_in])}
    if transmission is not None:
        truth = photometric_residual(reference, sample, transmission, dx, dy)[inner] ** 2
        net = photometric_residual(reference, sample, transmission, r.dx.values, r.dy.values)[inner] ** 2
        out.update(photo_edge_truth=_root_mean(truth[edge_in]), photo_smooth_truth=_root_mean(truth[~edge_in]),
                   photo_edge_net=_root_mean(net[edge_in]))
    return out


def main(argv=None) -> None:
    from spinnet_lite.evalset import heldout_pairs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    p.add_argument("--n", type=int, default=24, help="held-out pairs (default 24)")
    p.add_argument("--threshold", type=float, default=0.05, help="edge: displacement gradient above this, px/px")
    args = p.parse_args(argv)
    model = None
    if args.checkpoint:
        from spinnet_lite.model.predict import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    rows = []
    print(f"{'pair':>4} {'kind':<11} {'edge px':>8} {'error share':>12} {'rmse edge':>10} {'rmse smooth':>12} "
          f"{'photo truth':>12} {'photo net':>10}")
    for i, ds in enumerate(heldout_pairs(args.n)):
        row = edge_errors(ds["reference"].values, ds["sample"].values, ds["dx"].values, ds["dy"].values, model,
                          args.threshold, transmission=ds["transmission"].values)
        row["photo_gain"] = row["photo_edge_net"] / row["photo_edge_truth"] - 1.0
        rows.append(row)
        print(f"{i:>4} {ds.attrs.get('kind', '?'):<11} {row['edge_pixels']:>8.2f} {row['edge_error_share']:>12.2f} "
              f"{row['rmse_edge']:>10.3f} {row['rmse_smooth']:>12.3f} {row['photo_edge_truth']:>12.4f} "
              f"{row['photo_edge_net']:>10.4f}")
    med = {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0]}
    print(f"median: {med['edge_pixels']:.2f} of the pixels are at edges and hold {med['edge_error_share']:.2f} of "
          f"the squared error; rms {med['rmse_edge']:.3f} px there, {med['rmse_smooth']:.3f} px elsewhere")
    gains = [r["photo_gain"] for r in rows]
    print(f"photometric residual at edges: {med['photo_edge_truth']:.4f} with the true field (elsewhere "
          f"{med['photo_smooth_truth']:.4f}), {med['photo_edge_net']:.4f} with SPINNet's (medians); SPINNet's is larger by "
          f"{100 * np.nanmedian(gains):.1f} % (median; {100 * np.nanmin(gains):.1f} to {100 * np.nanmax(gains):.1f} %)")


if __name__ == "__main__":
    main()
