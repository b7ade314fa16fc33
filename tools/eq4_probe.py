"""What stands between the held-out pairs and the seed's "below 1 % Eq. 4" regime?

    python tools/eq4_probe.py                         # the bundled weights
    python tools/eq4_probe.py --checkpoint runs/x/model.pt
    python tools/eq4_probe.py --method xst            # the same figures for XST
    python tools/eq4_probe.py --resampled             # also: each sample re-made from the pixel reference
    python tools/eq4_probe.py --from-truth            # also: where the data pull an answer that starts at the truth

For each held-out pair (``spinnet_lite.evalset``, the set of ``benchmarks/evaluate.py``), with
SPINNet (or XST) through ``reconstruct`` (defaults), 8 px border dropped, it prints:

- ``eq4``: the pair error (the seed's Eq. 4, :func:`spinnet_lite.metrics.pair_error`);
- ``factor``: ``sqrt(eq4 / 1 %)``, by how much the displacement error would have to shrink for
  the pair to fall below 1 % (Eq. 4 is quadratic in the error);
- ``gain`` and ``eq4 gained``: the best single scale factor on the predicted (dx, dy), least
  squares against the truth, and Eq. 4 after it (is the error a global under/over-estimate?);
- ``half-res floor``: Eq. 4 of the *truth itself* average-pooled 2x and upsampled bilinearly,
  as the network's level-2 output is (is the output's resolution the limit?);
- ``smooth`` and ``eq4 unsmooth``: the share of the squared displacement error that survives a
  Gaussian low-pass of ``--sigma`` px (4: scales of ~10 px and more), and Eq. 4 with that
  smooth part of the error taken away (is the error a slowly varying bias, or noise?);
- ``edge``: the share of the squared displacement error within 2 px of the truth's steep
  pixels (where ``|grad d|`` exceeds a fifth of its largest value): the contour edges and the
  lens rim;
- ``blur 2`` / ``blur 3``: Eq. 4 of the *truth* seen through a Gaussian of 2 / 3 px (what a
  tracker that resolves nothing finer would score at best), and ``resolution``: the Gaussian
  sigma (px) at which the blurred truth scores the tracker's own Eq. 4 (its answer is as good
  as the truth at that resolution);
- with ``--resampled``, ``eq4 resampled``: Eq. 4 of the tracker on the same pair with the
  sample re-made from the reference *as the detector recorded it*: ``T * reference(r - d)``,
  the pixel reference read where the truth sends it by the Lucas-Kanade step's own
  interpolation (``warp(..., mode="oversampled")``). The simulator moves the speckle on its
  sub-pixel grid before the detector bins it (seed Eq. 1 on the fine grid), so the speckle
  detail finer than a pixel moves in the sample in a way the pixel reference cannot show; the
  re-made sample lacks that (an inverse crime if it were a test), so the difference is what the
  sub-pixel speckle costs, against what the tracker's own resolution costs;
- with ``--from-truth``, ``truth+2`` / ``truth+8``: Eq. 4 after the Lucas-Kanade step
  (:mod:`spinnet_lite.lucas_kanade`, the default window) run for 2 (``reconstruct``'s default) /
  8 iterations *starting from the truth*. A tracker that fits the data moves away from the
  truth wherever the pixel images do not show the truth's displacement exactly (speckle detail
  finer than a pixel, noise); these figures are the floor such a fit sets on each pair,
  whatever starts it.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

from spinnet_lite.metrics import _crop, _pair, pair_error  # _pair: a map of both, checked and cropped

FIELDS = ("dx", "dy", "transmission")


def half_resolution(fields: dict) -> dict:
    """``fields`` (dx, dy, transmission; 2-D arrays of even size) average-pooled 2x, then
    upsampled back bilinearly (``align_corners=False``, as :class:`SPINNet`'s last step)."""
    stack = torch.from_numpy(np.stack([np.asarray(fields[k], np.float32) for k in FIELDS]))[None]
    up = F.interpolate(F.avg_pool2d(stack, 2), scale_factor=2, mode="bilinear", align_corners=False)[0].numpy()
    return dict(zip(FIELDS, up))


def best_gain(pred: dict, truth: dict, border: int = 8) -> float:
    """The scale ``a`` minimising ``|a * (dx, dy) - (dx, dy)_truth|^2`` over the cropped image."""
    pairs = [_pair(pred, truth, k, border) for k in ("dx", "dy")]  # (prediction, truth) per map
    p = np.concatenate([mine.ravel() for mine, _ in pairs])
    g = np.concatenate([true.ravel() for _, true in pairs])
    norm = float(p @ p)
    return float(p @ g) / norm if norm > 0 else 1.0


def smooth_split(pred: dict, truth: dict, sigma: float = 4.0, border: int = 8) -> tuple[float, float]:
    """``(share, eq4)``: the share of the squared (dx, dy) error in its Gaussian low-pass of
    ``sigma`` px (``scipy.ndimage.gaussian_filter``, edges by ``nearest``), and Eq. 4 of the
    prediction with that low-pass of its error subtracted (only the error's finer part left)."""
    from scipy import ndimage

    error = {k: np.asarray(pred[k], np.float64) - np.asarray(truth[k], np.float64) for k in ("dx", "dy")}
    smooth = {k: ndimage.gaussian_filter(e, sigma, mode="nearest") for k, e in error.items()}
    total = sum(float(np.sum(_crop(e, border) ** 2)) for e in error.values())
    share = sum(float(np.sum(_crop(s, border) ** 2)) for s in smooth.values()) / total if total > 0 else 0.0
    rest = dict(pred, dx=pred["dx"] - smooth["dx"], dy=pred["dy"] - smooth["dy"])
    return share, pair_error(rest, truth, border)


def blurred_truth(truth: dict, sigma: float) -> dict:
    """``truth`` with dx and dy through a Gaussian of ``sigma`` px (``scipy.ndimage``, edges by
    ``nearest``); the transmission is left as it is."""
    from scipy import ndimage

    if sigma == 0:
        return dict(truth)
    return dict(truth, **{k: ndimage.gaussian_filter(np.asarray(truth[k], np.float64), sigma, mode="nearest")
                          for k in ("dx", "dy")})


def blur_floor(truth: dict, sigma: float, border: int = 8) -> float:
    """Eq. 4 of the truth's displacement blurred by a Gaussian of ``sigma`` px, against the truth."""
    return pair_error(blurred_truth(truth, sigma), truth, border)


def resolution(eq4: float, truth: dict, border: int = 8, largest: float = 16.0) -> float:
    """The Gaussian sigma (px) at which :func:`blur_floor` equals ``eq4`` (bisection; the floor
    grows with sigma). 0 when ``eq4`` is 0; ``largest`` when even that blur scores better."""
    if eq4 <= 0:
        return 0.0
    if blur_floor(truth, largest, border) <= eq4:
        return largest
    low, high = 0.0, largest
    for _ in range(30):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if blur_floor(truth, mid, border) < eq4 else (low, mid)
    return 0.5 * (low + high)


def edge_share(pred: dict, truth: dict, border: int = 8, near: float = 2.0, steep: float = 0.2) -> float:
    """The share of the squared (dx, dy) error within ``near`` px of the truth's steep pixels,
    those where ``|grad d|`` (the gradient of both maps) exceeds ``steep`` times its largest value;
    0 for an exact prediction."""
    from scipy import ndimage

    maps = {k: _pair(pred, truth, k, border) for k in ("dx", "dy")}  # (prediction, truth), cropped
    grad = np.sqrt(sum(g ** 2 for _, true in maps.values() for g in np.gradient(true)))
    if not grad.max() > 0:
        return 0.0
    close = ndimage.distance_transform_edt(grad <= steep * grad.max()) < near
    error = sum((mine - true) ** 2 for mine, true in maps.values())
    total = float(error.sum())
    return float(error[close].sum()) / total if total > 0 else 0.0


def resampled_sample(reference, truth: dict) -> np.ndarray:
    """``T * reference(r - d)``: the pixel reference read where the truth's displacement sends it
    (:func:`spinnet_lite.model.warp.warp`, oversampled, as the Lucas-Kanade step reads it), float64."""
    from spinnet_lite.model.warp import warp

    ref = torch.from_numpy(np.asarray(reference, np.float64))[None, None]
    d = torch.from_numpy(np.stack([np.asarray(truth[k], np.float64) for k in ("dx", "dy")]))[None]
    return warp(ref, d, mode="oversampled")[0, 0].numpy() * np.asarray(truth["transmission"], np.float64)


def from_truth(reference, sample, truth: dict, counts=(2, 8), border: int = 8) -> list[float]:
    """Eq. 4 of the truth after each of ``counts`` (increasing) Lucas-Kanade steps (default
    window) on the pair ``reference``/``sample``: how far the data pull an answer that starts
    exactly right. The steps run once, each count continuing from the one before."""
    from spinnet_lite.lucas_kanade import lk_refine

    dx, dy, done, errors = truth["dx"], truth["dy"], 0, []
    for count in counts:
        if count <= done:
            raise ValueError(f"from_truth: counts must increase, got {counts!r}")
        dx, dy = lk_refine(reference, sample, dx, dy, iterations=count - done)
        done = count
        errors.append(pair_error(dict(truth, dx=dx, dy=dy), truth, border))
    return errors


def probe_pair(pred: dict, truth: dict, border: int = 8, sigma: float = 4.0) -> dict:
    """The figures of the module docstring for one pair (dicts or Datasets of dx, dy, transmission)."""
    pred = {k: np.asarray(getattr(pred[k], "values", pred[k])) for k in FIELDS}
    truth = {k: np.asarray(getattr(truth[k], "values", truth[k])) for k in FIELDS}
    eq4 = pair_error(pred, truth, border)
    gain = best_gain(pred, truth, border)
    gained = dict(pred, dx=pred["dx"] * gain, dy=pred["dy"] * gain)
    share, unsmooth = smooth_split(pred, truth, sigma, border)
    return {"eq4": eq4, "factor": math.sqrt(eq4 / 0.01), "gain": gain, "eq4_gained": pair_error(gained, truth, border),
            "floor": pair_error(half_resolution(truth), truth, border), "smooth": share, "eq4_unsmooth": unsmooth,
            "edge": edge_share(pred, truth, border), "blur2": blur_floor(truth, 2.0, border),
            "blur3": blur_floor(truth, 3.0, border), "resolution": resolution(eq4, truth, border)}


def main(argv=None) -> None:
    from spinnet_lite import reconstruct
    from spinnet_lite.evalset import heldout_pairs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    p.add_argument("--n", type=int, default=24, help="held-out pairs (default 24)")
    p.add_argument("--method", choices=("spinnet", "xst"), default="spinnet", help="tracker to probe (default spinnet)")
    p.add_argument("--sigma", type=float, default=4.0,
                   help="Gaussian low-pass (px) that defines the smooth part of the error (default 4)")
    p.add_argument("--resampled", action="store_true",
                   help="also run the tracker on each pair's sample re-made from the pixel reference (T * warped reference)")
    p.add_argument("--from-truth", action="store_true",
                   help="also run the Lucas-Kanade step from the truth (2 and 8 iterations): the floor the data set")
    args = p.parse_args(argv)
    if args.checkpoint and args.method != "spinnet":
        p.error("--checkpoint is for --method spinnet")
    if not args.sigma > 0:
        p.error(f"--sigma must be positive, got {args.sigma}")
    options = {"method": args.method}
    if args.checkpoint:
        from spinnet_lite.model.predict import load_checkpoint

        options["model"] = load_checkpoint(args.checkpoint)
    rows = []
    print(f"{'pair':>4} {'kind':<11} {'eq4':>8} {'factor':>7} {'gain':>6} {'eq4 gained':>11} {'half-res floor':>15} "
          f"{'smooth':>7} {'eq4 unsmooth':>13} {'edge':>5} {'blur 2':>7} {'blur 3':>7} {'resolution':>10}"
          + (f" {'eq4 resampled':>14}" if args.resampled else "")
          + (f" {'truth+2':>8} {'truth+8':>8}" if args.from_truth else ""))
    for i, ds in enumerate(heldout_pairs(args.n)):
        row = probe_pair(reconstruct(ds.reference.values, ds.sample.values, **options), ds, sigma=args.sigma)
        if args.resampled:
            sample = resampled_sample(ds.reference.values, ds)
            row["eq4_resampled"] = pair_error(reconstruct(ds.reference.values, sample, **options), ds, 8)
        if args.from_truth:
            truth = {k: ds[k].values for k in FIELDS}
            row["truth2"], row["truth8"] = from_truth(ds.reference.values, ds.sample.values, truth, (2, 8))
        rows.append(row)
        print(f"{i:>4} {ds.attrs.get('kind', '?'):<11} {row['eq4']:>8.2%} {row['factor']:>7.2f} {row['gain']:>6.3f} "
              f"{row['eq4_gained']:>11.2%} {row['floor']:>15.3%} {row['smooth']:>7.2f} {row['eq4_unsmooth']:>13.2%} "
              f"{row['edge']:>5.2f} {row['blur2']:>7.2%} {row['blur3']:>7.2%} {row['resolution']:>8.2f}px"
              + (f" {row['eq4_resampled']:>14.2%}" if args.resampled else "")
              + (f" {row['truth2']:>8.2%} {row['truth8']:>8.2%}" if args.from_truth else ""))
    factors = np.array([r["factor"] for r in rows])
    print(f"below 1 %: {int(np.sum(factors < 1))} of {len(rows)}; to get 80 % of the pairs there the error must "
          f"shrink {np.quantile(factors, 0.8):.2f}x (the 80th percentile of the factors); half-res floor median "
          f"{np.median([r['floor'] for r in rows]):.3%}")
    print(f"{args.method}: a {args.sigma:g} px low-pass keeps {np.median([r['smooth'] for r in rows]):.0%} of the squared error "
          f"(median); without that smooth part {sum(r['eq4_unsmooth'] < 0.01 for r in rows)} of {len(rows)} pairs "
          f"would be below 1 %")
    print(f"edges (within 2 px of the truth's steep pixels) hold {np.median([r['edge'] for r in rows]):.0%} of the squared "
          f"error (median); the truth blurred by 2 / 3 px is below 1 % on {sum(r['blur2'] < 0.01 for r in rows)} / "
          f"{sum(r['blur3'] < 0.01 for r in rows)} of {len(rows)} pairs; {args.method}'s answers are as good as the truth "
          f"blurred by {np.median([r['resolution'] for r in rows]):.2f} px (median; range "
          f"{min(r['resolution'] for r in rows):.2f}-{max(r['resolution'] for r in rows):.2f})")
    if args.resampled:
        print(f"re-made from the pixel reference (T * warped reference) {sum(r['eq4_resampled'] < 0.01 for r in rows)} of "
              f"{len(rows)} pairs are below 1 % (median Eq. 4 {np.median([r['eq4_resampled'] for r in rows]):.2%}, "
              f"with it {np.median([r['eq4'] for r in rows]):.2%})")
    if args.from_truth:
        print(f"started from the truth, the Lucas-Kanade step leaves {sum(r['truth2'] < 0.01 for r in rows)} / "
              f"{sum(r['truth8'] < 0.01 for r in rows)} of {len(rows)} pairs below 1 % after 2 / 8 iterations (median "
              f"Eq. 4 {np.median([r['truth2'] for r in rows]):.2%} / {np.median([r['truth8'] for r in rows]):.2%}): "
              f"the floor a fit to these pixels sets")


if __name__ == "__main__":
    main()
