"""Time XST on one simulated pair.

    python benchmarks/xst_speed.py [--size 512] [--search 5] [--window 7] [--refine 0 2] [--threads 1] [--repeat 3]

Prints the best of ``--repeat`` wall-clock times for each ``refine`` value. On a machine whose
cores are shared with other work, ``--threads 1`` is often much faster than torch's default.
"""
from __future__ import annotations

import argparse
import time

import torch

from spinnet_lite.simulate import simulate_pair
from spinnet_lite.xst import xst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--search", type=int, default=5)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--refine", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pair = simulate_pair(size=args.size, pitch=4, seed=12345)
    ref, sam = pair["reference"].values, pair["sample"].values
    print(f"{args.size}x{args.size}, window {args.window}, search +-{args.search}, "
          f"{torch.get_num_threads()} thread(s), device {args.device}")
    for refine in args.refine:
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            xst(ref, sam, window=args.window, search=args.search, refine=refine, device=args.device)
            best = min(best, time.perf_counter() - t0)
        print(f"refine={refine}: {best:.2f} s (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
