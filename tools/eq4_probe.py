"""What stands between the held-out pairs and the seed's "below 1 % Eq. 4" regime?

    python tools/eq4_probe.py                         # the bundled weights
    python tools/eq4_probe.py --checkpoint runs/x/model.pt
    python tools/eq4_probe.py --method xst            # the same figures for XST

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
  smooth part of the error taken away (is the error a slowly varying bias, or noise?).
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


def probe_pair(pred: dict, truth: dict, border: int = 8, sigma: float = 4.0) -> dict:
    """The figures of the module docstring for one pair (dicts or Datasets of dx, dy, transmission)."""
    pred = {k: np.asarray(getattr(pred[k], "values", pred[k])) for k in FIELDS}
    truth = {k: np.asarray(getattr(truth[k], "values", truth[k])) for k in FIELDS}
    eq4 = pair_error(pred, truth, border)
    gain = best_gain(pred, truth, border)
    gained = dict(pred, dx=pred["dx"] * gain, dy=pred["dy"] * gain)
    share, unsmooth = smooth_split(pred, truth, sigma, border)
    return {"eq4": eq4, "factor": math.sqrt(eq4 / 0.01), "gain": gain, "eq4_gained": pair_error(gained, truth, border),
            "floor": pair_error(half_resolution(truth), truth, border), "smooth": share, "eq4_unsmooth": unsmooth}


def main(argv=None) -> None:
    from spinnet_lite import reconstruct
    from spinnet_lite.evalset import heldout_pairs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    p.add_argument("--n", type=int, default=24, help="held-out pairs (default 24)")
    p.add_argument("--method", choices=("spinnet", "xst"), default="spinnet", help="tracker to probe (default spinnet)")
    p.add_argument("--sigma", type=float, default=4.0,
                   help="Gaussian low-pass (px) that defines the smooth part of the error (default 4)")
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
          f"{'smooth':>7} {'eq4 unsmooth':>13}")
    for i, ds in enumerate(heldout_pairs(args.n)):
        row = probe_pair(reconstruct(ds.reference.values, ds.sample.values, **options), ds, sigma=args.sigma)
        rows.append(row)
        print(f"{i:>4} {ds.attrs.get('kind', '?'):<11} {row['eq4']:>8.2%} {row['factor']:>7.2f} {row['gain']:>6.3f} "
              f"{row['eq4_gained']:>11.2%} {row['floor']:>15.3%} {row['smooth']:>7.2f} {row['eq4_unsmooth']:>13.2%}")
    factors = np.array([r["factor"] for r in rows])
    print(f"below 1 %: {int(np.sum(factors < 1))} of {len(rows)}; to get 80 % of the pairs there the error must "
          f"shrink {np.quantile(factors, 0.8):.2f}x (the 80th percentile of the factors); half-res floor median "
          f"{np.median([r['floor'] for r in rows]):.3%}")
    print(f"{args.method}: a {args.sigma:g} px low-pass keeps {np.median([r['smooth'] for r in rows]):.0%} of the squared error "
          f"(median); without that smooth part {sum(r['eq4_unsmooth'] < 0.01 for r in rows)} of {len(rows)} pairs "
          f"would be below 1 %")


if __name__ == "__main__":
    main()
