"""SPINNet-lite inference paths vs XST: speed, accuracy and memory, measured in one run.

    python benchmarks/speed.py                      # 512 and 2112 px, every path, held-out accuracy, peak RSS
    python benchmarks/speed.py --sizes 512 --n-eval 4 --no-memory     # quicker
    python benchmarks/speed.py --device cuda        # 2112 x 2112 pairs at batch 1 and 3 on a GPU
    python benchmarks/speed.py --json speed.json    # also write every figure as JSON

Every path goes through ``reconstruct(..., method="spinnet", **options)`` (so the timings include
what a user pays: input checks, padding, blending, the Dataset), and so does XST (7 x 7 window,
search +-6 px, the default).  Both run with the same torch thread count (2 by default).  Times are
the median of ``--repeats`` calls after one warm-up call (which compiles TorchScript/ONNX for the
shape; its time is printed separately).  Absolute times depend on the machine and on what else runs
on it: the ratios measured side by side in one run are the figures to compare; the process CPU time
(``cpu s``) is printed too, as it is less sensitive to other work on the machine.

Accuracy of each path: the median displacement RMSE (px, 8 px border) over the first ``--n-eval``
pairs of the held-out set (:mod:`spinnet_lite.evalset`, 256 px) and over the same specs simulated
at 512 px (where tiles and one pass differ), and the largest difference from the plain PyTorch
model over those pairs (paths that compute the same function agree to ~1e-6 px).

Peak memory: ``reconstruct`` on a 4096 x 4096 (and 2112 x 2112) pair in a fresh process, peak RSS
(``VmHWM``) of the whole process, with the tile plan the memory model chose.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

XST_OPTIONS = {"window": 7, "search": 6}


# ---- the paths -------------------------------------------------------------------------------
@contextlib.contextmanager
def _channels_last(on: bool | None):
    """Run with ``fast.CHANNELS_LAST`` set to ``on`` (None: the library's default)."""
    from spinnet_lite.model import fast

    old = fast.CHANNELS_LAST
    fast.CHANNELS_LAST = old if on is None else bool(on)
    try:
        yield
    finally:
        fast.CHANNELS_LAST = old


def paths(size: int, model=None) -> list[dict]:
    """The SPINNet paths timed at ``size`` px: label, reconstruct options, channels_last (None: default).

    For a ``model`` whose finest level runs more than once (``config.finest_iterations``), also
    the defaults with a single pass there (``iterations=1``): faster, trained for the other count.
    """
    from spinnet_lite.model.fast import onnxruntime_available

    untiled = {"tile": size, "max_memory": 1e12}  # one pass whatever the memory model says
    out = [
        {"key": "plain", "label": "plain PyTorch model, untiled", "options": {"engine": "plain", **untiled}},
        {"key": "folded", "label": "+ BatchNorm folded", "options": {"engine": "folded", **untiled},
         "channels_last": False},
        {"key": "torch", "label": "+ banded cost volume", "options": {"engine": "torch", **untiled},
         "channels_last": False},
        {"key": "channels_last", "label": "+ channels_last (engine torch)", "options": {"engine": "torch", **untiled},
         "channels_last": True},
        {"key": "bf16", "label": "+ estimator bodies in bfloat16", "options": {"engine": "bf16", **untiled},
         "channels_last": True},
        {"key": "torchscript", "label": "TorchScript, frozen", "options": {"engine": "torchscript", **untiled}},
    ]
    if onnxruntime_available():
        out.append({"key": "onnxruntime", "label": "ONNX Runtime", "options": {"engine": "onnxruntime", **untiled}})
        out.append({"key": "default_onnxruntime", "label": "defaults, engine onnxruntime",
                    "options": {"engine": "onnxruntime"}})
    out += [
        {"key": "tiled256", "label": "256 px tiles (old default), 16 per batch",
         "options": {"tile": 256, "batch_size": 16}},
        {"key": "tiled256_b1", "label": "256 px tiles, one by one", "options": {"tile": 256, "batch_size": 1}},
        {"key": "default_torch", "label": "defaults, engine torch (float32)", "options": {"engine": "torch"}},
        {"key": "default", "label": "reconstruct() defaults (memory plan)", "options": {}},
        {"key": "no_tv", "label": "defaults without the total-variation refinement (tv=False)", "options": {"tv": False}},
        {"key": "no_lk", "label": "defaults without the Lucas-Kanade step nor the refinement (lk_sigma=0)",
         "options": {"lk_sigma": 0}},
    ]
    if model is not None and model.config.finest_iterations > 1:
        out.append({"key": "one_iteration", "label": "defaults, one pass of the finest level",
                    "options": {"iterations": 1}})
    out += [
        {"key": "fast", "label": "fast variant (level 3 + refiners)", "options": {"fast": True}},
        {"key": "level3", "label": "level 3, no refiners", "options": {}, "model": "level3"},
    ]
    return out


_VARIANTS: dict = {}


def _path_model(model, path: dict):
    """The model a path runs: ``model`` itself, or (``"level3"``) its level-3 output without refiners."""
    if path.get("model") != "level3":
        return model
    from spinnet_lite.model.fast import fast_variant

    key = id(model)
    if key not in _VARIANTS:
        _VARIANTS[key] = fast_variant(model, refiners=False).eval()
    return _VARIANTS[key]


def _reconstruct(ref, sam, method, model, options, channels_last=None):
    from spinnet_lite import reconstruct

    with _channels_last(channels_last):
        if method == "xst":
            return reconstruct(ref, sam, method="xst", **options)
        return reconstruct(ref, sam, method="spinnet", model=model, **options)


def time_calls(fns: dict, repeats: int) -> dict:
    """Wall and CPU seconds of each callable: a first call each (it compiles), then ``repeats``
    rounds in which every callable runs once (interleaved, so a change in the machine's load
    falls on all of them alike); the median and best of the rounds."""
    first, walls, cpus = {}, {k: [] for k in fns}, {k: [] for k in fns}
    for key, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[key] = time.perf_counter() - t0
    for _ in range(repeats):
        for key, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls[key].append(time.perf_counter() - t0)
            cpus[key].append(time.process_time() - c0)
    return {key: {"first_s": first[key], "median_s": statistics.median(walls[key]), "best_s": min(walls[key]),
                  "cpu_s": statistics.median(cpus[key])} for key in fns}


def speed(size: int, model, repeats: int, seed: int = 1_000_999_000) -> dict:
    """Time every path and XST on one simulated ``size`` x ``size`` pair (interleaved rounds)."""
    from spinnet_lite import simulate_pair

    pair = simulate_pair(size, seed=seed, photons=5000)
    ref, sam = pair.reference.values, pair.sample.values
    rows, fns = {}, {}
    for path in paths(size, model):
        rows[path["key"]] = {"label": path["label"], "options": path["options"]}
        fns[path["key"]] = (lambda p=path: _reconstruct(ref, sam, "spinnet", _path_model(model, p), p["options"],
                                                        p.get("channels_last")))
    rows["xst"] = {"label": f"XST {XST_OPTIONS['window']}x{XST_OPTIONS['window']}, search +-{XST_OPTIONS['search']}",
                   "options": XST_OPTIONS}
    fns["xst"] = lambda: _reconstruct(ref, sam, "xst", None, XST_OPTIONS)
    for key, timing in time_calls(fns, repeats).items():
        rows[key].update(timing)
    return rows


# ---- accuracy ---------------------------------------------------------------------------------
def accuracy(model, n: int, sizes=(256, 512), border: int = 8) -> dict:
    """Median displacement RMSE of every path and XST on the held-out specs at each size,
    and each path's largest difference (px) from the plain model."""
    from spinnet_lite.evalset import heldout_specs, simulate_spec
    from spinnet_lite.metrics import displacement_rmse

    result = {}
    for size in sizes:
        specs = [dict(spec, size=size) for spec in heldout_specs(n)]
        errors, diffs = {}, {}
        for spec in specs:
            pair = simulate_spec(spec)
            ref, sam = pair["reference"].values, pair["sample"].values
            plain = None
            for path in paths(size, model) + [{"key": "xst"}]:
                key = path["key"]
                if key == "xst":
                    out = _reconstruct(ref, sam, "xst", None, XST_OPTIONS)
                else:
                    out = _reconstruct(ref, sam, "spinnet", _path_model(model, path), path["options"],
                                       path.get("channels_last"))
                errors.setdefault(key, []).append(displacement_rmse(out, pair, border))
                if key == "plain":
                    plain = out
                if key != "xst":
                    diff = max(float(np.abs(out[v].values - plain[v].values).max()) for v in ("dx", "dy"))
                    diffs[key] = max(diffs.get(key, 0.0), diff)
        result[size] = {key: {"median_rmse": statistics.median(v), "max_diff_vs_plain": diffs.get(key)}
                        for key, v in errors.items()}
    return result


# ---- memory -----------------------------------------------------------------------------------
def peak_rss(size: int, threads: int, checkpoint=None, timeout: float = 3600) -> dict:
    """Peak RSS of a fresh process that runs ``reconstruct`` (SPINNet, defaults) on a ``size``^2 pair."""
    cmd = [sys.executable, os.path.abspath(__file__), "--peak-rss-child", str(size), "--threads", str(threads)]
    if checkpoint:
        cmd += ["--checkpoint", str(checkpoint)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"peak-RSS child failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _speckle(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 speckle-like pair (blurred random mask, sample shifted by 1.5 px), cheap at any size."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    ref = ndimage.uniform_filter((rng.random((size, size), dtype=np.float32) > 0.5).astype(np.float32), 3) + 0.5
    sam = ndimage.shift(ref, (0.0, 1.5), order=1, mode="nearest") * np.float32(0.9)
    return ref, sam.astype(np.float32)


def _reset_peak() -> None:
    """Reset this process's RSS high-water mark (Linux).  Needed because a child inherits its
    parent's ``ru_maxrss`` through fork: without it the benchmark's own size would be reported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak() -> int:
    """Peak RSS (bytes) since the last :func:`_reset_peak`: ``VmHWM``, else ``ru_maxrss``."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss_child(size: int, checkpoint=None) -> int:
    _reset_peak()
    from spinnet_lite import reconstruct
    from spinnet_lite.tiling import plan_tiles

    ref, sam = _speckle(size)
    model = _model(checkpoint)
    before = _peak()
    t0 = time.perf_counter()
    ds = reconstruct(ref, sam, method="spinnet", model=model)
    elapsed = time.perf_counter() - t0
    peak = _peak()
    plan = plan_tiles(model, size, size)
    print(json.dumps({"size": size, "peak_rss_bytes": peak, "rss_before_bytes": before, "elapsed_s": elapsed,
                      "tile": list(plan["tile"]), "tiles": plan["tiles"], "batch_size": plan["batch_size"],
                      "finite": bool(np.isfinite(ds["dx"].values).all())}))
    return 0


# ---- GPU --------------------------------------------------------------------------------------
def gpu(model, size: int = 2112, batches=(1, 3), repeats: int = 10) -> dict | None:
    """Seconds per pair at ``size`` on CUDA for each batch size (engine torch, synchronised), or None."""
    import torch

    if not torch.cuda.is_available():
        return None
    from spinnet_lite.model.fast import prepare

    model = model.to("cuda").eval()
    runner = prepare(model, engine="torch")
    out = {"device": torch.cuda.get_device_name(0), "size": size}
    for batch in batches:
        x = torch.rand(batch, 1, size, size, device="cuda") + 0.5
        y = torch.roll(x, 2, dims=-1) * 0.9
        runner(x, y)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            runner(x, y)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[f"batch{batch}_s_per_pair"] = statistics.median(times) / batch
        out[f"batch{batch}_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


# ---- printing ---------------------------------------------------------------------------------
def _model(checkpoint=None):
    if checkpoint:
        from spinnet_lite.model.predict import load_checkpoint

        return load_checkpoint(checkpoint)
    from spinnet_lite.pretrained import load_pretrained

    return load_pretrained()


def _fmt(value, spec=".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def print_speed(results: dict) -> None:
    sizes = sorted(results)
    head = f"{'path':40s}" + "".join(f"{f'{s} px s':>11}{'cpu s':>8}{'xPlain':>8}{'xXST':>7}" for s in sizes)
    print(head)
    for key in results[sizes[0]]:
        line = f"{results[sizes[0]][key]['label']:40s}"
        for s in sizes:
            row, plain, xst = results[s].get(key), results[s]["plain"]["median_s"], results[s]["xst"]["median_s"]
            if row is None:
                line += f"{'-':>11}{'-':>8}{'-':>8}{'-':>7}"
                continue
            line += (f"{row['median_s']:>11.3f}{row['cpu_s']:>8.2f}{plain / row['median_s']:>8.2f}"
                     f"{xst / row['median_s']:>7.1f}")
        print(line)
    print("xPlain: plain time / path time (speed-up); xXST: XST time / path time.  First calls (compile), s: "
          + "; ".join(f"{s} px: " + ", ".join(f"{k} {r['first_s']:.1f}" for k, r in results[s].items()
                                              if k in ("torchscript", "onnxruntime")) for s in sizes))


def print_accuracy(acc: dict, n: int, labels: dict) -> None:
    sizes = sorted(acc)
    print(f"{'path':40s}" + "".join(f"{f'RMSE {s} px':>13}{'max|d| vs plain':>17}" for s in sizes))
    for key in acc[sizes[0]]:
        line = f"{labels.get(key, key):40s}"
        for s in sizes:
            row = acc[s][key]
            line += f"{_fmt(row['median_rmse'], '.4f'):>13}{_fmt(row['max_diff_vs_plain'], '.1e'):>17}"
        print(line)
    print(f"median displacement RMSE (px, 8 px border) over the first {n} held-out pairs at each size")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,2112", help="comma-separated square sizes (default 512,2112)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per path (median; default 3)")
    parser.add_argument("--n-eval", type=int, default=8, help="held-out pairs for the accuracy table (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both methods (default 2)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: the GPU timings only")
    parser.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS runs (4096 and 2112 px)")
    parser.add_argument("--json", help="write all figures to this JSON file")
    parser.add_argument("--peak-rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.peak_rss_child:
        return _peak_rss_child(args.peak_rss_child, args.checkpoint)
    model = _model(args.checkpoint)
    report = {"threads": torch.get_num_threads(), "torch": torch.__version__, "config": model.config.to_dict(),
              "machine": platform.processor() or platform.machine(), "load_average": os.getloadavg()}
    if args.device == "cuda":
        result = gpu(model)
        if result is None:
            print("--device cuda: no CUDA device here (torch.cuda.is_available() is False); skipped")
            return 0
        print(f"{result['device']}: SPINNet-{model.config.name} {result['size']}x{result['size']}, engine torch")
        for batch in (1, 3):
            print(f"  batch {batch}: {result[f'batch{batch}_s_per_pair']:.4f} s per pair, "
                  f"peak {result[f'batch{batch}_peak_gb']:.2f} GB")
        report["gpu"] = result
    else:
        from spinnet_lite.model.fast import resolve_engine

        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        print(f"SPINNet-{model.config.name} (first level {model.config.first_level}, "
              f"input_norm_sigma {model.config.input_norm_sigma:g}) vs XST; torch {torch.__version__}, "
              f"{report['threads']} threads; auto engine = {resolve_engine('auto')}; "
              f"load average {report['load_average'][0]:.1f} at the start")
        results = {size: speed(size, model, args.repeats) for size in sizes}
        print()
        print_speed(results)
        report["speed"] = results
        if args.n_eval > 0:
            print()
            acc = accuracy(model, args.n_eval)
            labels = {k: v["label"] for k, v in results[sizes[0]].items()}
            print_accuracy(acc, args.n_eval, labels)
            report["accuracy"] = acc
        if not args.no_memory:
            print()
            report["memory"] = []
            for size in (2112, 4096):
                r = peak_rss(size, args.threads, args.checkpoint)
                report["memory"].append(r)
                tiling = ("one pass" if r["tiles"] == 1 else
                          f"{r['tiles']} tiles of {r['tile'][0]}x{r['tile'][1]}, {r['batch_size']} per batch")
                print(f"reconstruct {size}x{size} (defaults): peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB "
                      f"(process before the call {r['rss_before_bytes'] / 1e9:.2f} GB), {tiling}, "
                      f"{r['elapsed_s']:.1f} s")
        report["load_average_end"] = os.getloadavg()
        print(f"load average at the end: {report['load_average_end'][0]:.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
