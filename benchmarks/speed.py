"""SPINNet vs XST speed on one pair, measured in one run, in one process.

    python benchmarks/speed.py [--size 512] [--repeats 5] [--checkpoint runs/lite/model.pt] [--threads N]

Prints the median wall time of ``reconstruct(..., method="spinnet")`` and of
``reconstruct(..., method="xst")`` (7x7 window, the search range that covers the trained
displacements) on a simulated pair, and their ratio.  Absolute times depend on the machine;
the ratio is the figure to compare (the seed claims ~100x for its GPU network against its XST).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def time_call(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def measure(size: int = 512, repeats: int = 5, model=None, xst_options: dict | None = None, seed: int = 1_000_999_000):
    """Median seconds for SPINNet and XST on one ``size`` x ``size`` simulated pair, and their ratio."""
    import torch

    from spinnet_lite import reconstruct, simulate_pair

    if model is None:
        from spinnet_lite.pretrained import load_pretrained

        model = load_pretrained()
    xst_options = {"window": 7, "search": 6, **(xst_options or {})}
    pair = simulate_pair(size, seed=seed, photons=5000)
    ref, sam = pair.reference.values, pair.sample.values
    net_med, net_best = time_call(lambda: reconstruct(ref, sam, method="spinnet", model=model), repeats)
    xst_med, xst_best = time_call(lambda: reconstruct(ref, sam, method="xst", **xst_options), max(1, repeats // 2))
    return {"size": size, "threads": torch.get_num_threads(), "spinnet_s": net_med, "spinnet_best_s": net_best,
            "xst_s": xst_med, "xst_best_s": xst_best, "speedup": xst_med / net_med,
            "xst_options": xst_options, "model": model.config.name}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", help="SPINNet checkpoint (default: bundled weights)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = None
    if args.checkpoint:
        from spinnet_lite.model.predict import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    r = measure(args.size, args.repeats, model)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{args.size}x{args.size} pair, torch threads {r['threads']}, model {r['model']}")
    print(f"{'method':<28}{'median s':>10}{'best s':>10}")
    print(f"{'SPINNet-' + r['model']:<28}{r['spinnet_s']:>10.3f}{r['spinnet_best_s']:>10.3f}")
    print(f"{'XST 7x7, search +-' + str(r['xst_options']['search']):<28}{r['xst_s']:>10.3f}{r['xst_best_s']:>10.3f}")
    print(f"speed-up (XST / SPINNet): {r['speedup']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
