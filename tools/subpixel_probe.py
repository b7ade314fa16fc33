"""Sub-pixel shifts: does the network see a drift of a few hundredths of a pixel?

    python tools/subpixel_probe.py                       # the bundled weights
    python tools/subpixel_probe.py --checkpoint runs/x/best.pt --pairs 3

A uniform shift of ``s`` px (the whole sample image moved, as a mask or diffuser that drifted
between the exposures, or the sample-free air of a real pair) is simulated on 256 px pairs
(coded mask of 4 px cells, and a diffuser of 3 px grain at 6 % rms visibility; 20 000
photons/px) and reconstructed by SPINNet (``reconstruct`` defaults) and by XST (7 x 7,
+-6 px).  Printed per shift: the **gain** (median recovered shift / true shift, along x;
1 is right, below 1 the shift is shrunk) and the rms error (px), 8 px border dropped,
medians over ``--pairs`` seeds.  Seeds are in the held-out range (>= 10^9), so training
never saw these pairs.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

SHIFTS = (0.02, 0.05, 0.08, 0.15, 0.3, 1.0)
CASES = {"mask 4 px": dict(pitch=4.0),
         "diffuser 6 %": dict(pitch=4.0, speckle="diffuser", grain_px=3.0, visibility=0.06)}
SEED_BASE = 1_000_700_000


def probe(model, shifts=SHIFTS, pairs: int = 3, size: int = 256, border: int = 8, spinnet_options=None) -> dict:
    """``{case: {shift: {"spinnet": (gain, rmse), "xst": (gain, rmse)}}}``."""
    from spinnet_lite import reconstruct, simulate_pair

    out = {}
    for case, options in CASES.items():
        out[case] = {}
        for shift in shifts:
            rows = {"spinnet": [], "xst": []}
            for k in range(pairs):
                ds = simulate_pair(size, seed=SEED_BASE + 1000 * k + int(shift * 1000), phantom="uniform",
                                   max_shift_px=float(shift), photons=20000.0, **options)
                inner = (slice(border, -border), slice(border, -border))
                dx_true, dy_true = ds["dx"].values[inner], ds["dy"].values[inner]
                length = float(np.hypot(dx_true, dy_true).mean())
                for method in rows:
                    kw = {"model": model, **(spinnet_options or {})} if method == "spinnet" else {"window": 7, "search": 6}
                    rec = reconstruct(ds["reference"].values, ds["sample"].values, method=method, **kw)
                    dx, dy = rec["dx"].values[inner], rec["dy"].values[inner]
                    # gain along the true direction: the projection of the estimate on it
                    along = float(np.median((dx * dx_true + dy * dy_true) / max(length, 1e-12) ** 2))
                    rmse = float(np.sqrt(np.mean((dx - dx_true) ** 2 + (dy - dy_true) ** 2) / 2))
                    rows[method].append((along, rmse))
            out[case][shift] = {m: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
                                for m, v in rows.items()}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    parser.add_argument("--pairs", type=int, default=3, help="seeds per shift (default 3)")
    parser.add_argument("--lk-sigma", type=float,
                        help="SPINNet's Lucas-Kanade window, px (default reconstruct's; 0: the network alone)")
    args = parser.parse_args(argv)
    import torch

    from spinnet_lite.model.predict import load_checkpoint
    from spinnet_lite.pretrained import load_pretrained

    torch.set_num_threads(2)
    model = load_checkpoint(args.checkpoint) if args.checkpoint else load_pretrained()
    result = probe(model, pairs=args.pairs, spinnet_options=None if args.lk_sigma is None else {"lk_sigma": args.lk_sigma})
    print(f"{'case':14s}{'shift px':>9}{'SPINNet gain':>14}{'rmse':>8}{'XST gain':>10}{'rmse':>8}")
    for case, rows in result.items():
        for shift, r in rows.items():
            print(f"{case:14s}{shift:>9.2f}{r['spinnet'][0]:>14.2f}{r['spinnet'][1]:>8.3f}"
                  f"{r['xst'][0]:>10.2f}{r['xst'][1]:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
