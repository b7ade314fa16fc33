"""How fast the simulator makes one pair (issue 2: 256x256 <= 50 ms, 512x512 <= 250 ms on a 2-core CPU).

    python benchmarks/simulate_speed.py [--repeats 7]

Prints the median and best wall time of ``simulate_pair`` (random phantom, noiseless and with
Poisson noise) for each size, measured in this process.
"""
import argparse
import statistics
import time

from spinnet_lite import simulate_pair


def time_it(fn, repeats):
    fn()  # warm-up (imports, FFT plans)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    targets = {256: 50.0, 512: 250.0}
    print(f"{'size':>6} {'phantom':>8} {'noise':>6} {'median ms':>10} {'best ms':>8} {'target ms':>10}")
    for size, target in targets.items():
        for phantom in ("random", "lens", "bug"):
            for photons in (None, 2000):
                med, best = time_it(lambda: simulate_pair(size, seed=1, phantom=phantom, photons=photons), args.repeats)
                mark = "ok" if med * 1e3 <= target else "SLOW"
                print(f"{size:>6} {phantom:>8} {'yes' if photons else 'no':>6} {med * 1e3:10.1f} {best * 1e3:8.1f} "
                      f"{target:10.0f} {mark}")


if __name__ == "__main__":
    main()
