"""Command line: ``python -m spinnet_lite {simulate,train,reconstruct,export} ...``.

Errors in what the user asked for (bad arguments, missing or ambiguous files, mismatched
images, an output that cannot be written, an existing output without ``--overwrite``) print
one line on stderr and exit with status 2.  Output names are checked before any computation
starts, and every file is written atomically (:func:`spinnet_lite.io.atomic_write`): an
interrupted run (Ctrl-C: exit 130; ``kill``: 143) leaves the old file or none.
"""
from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
from pathlib import Path

#: The largest seed: simulate records it in a netCDF attribute (a signed 64-bit integer).
MAX_SEED = 2**63 - 1
#: Poisson noise above this many photons per pixel is negligible (and beyond numpy's sampler).
MAX_PHOTONS = 1e12


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


class UsageError(ValueError):
    """An error in the user's input."""


def _int_at_least(text, minimum: int, expected: str):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def _positive_int(text):
    return _int_at_least(text, 1, "a positive integer")


def _non_negative_int(text):
    return _int_at_least(text, 0, "an integer >= 0")


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**63 - 1 = {MAX_SEED}, got {text}")
    return value


def _number(text) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return value


def _positive_float(text):
    value = _number(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _non_negative_float(text):
    value = _number(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


class _TrainingPresets:
    """The names of :data:`spinnet_lite.train.PRESETS` as argparse ``choices``, read from there
    (which imports torch) only when argparse checks or lists them, not when the parser is built
    (``--preset`` has a metavar, so building the help does not list them either)."""

    def __iter__(self):
        from .train import PRESETS

        return iter(PRESETS)

    def __contains__(self, name) -> bool:
        from .train import PRESETS

        return name in PRESETS


def _lk_sigma(text):
    from .lucas_kanade import check_sigma  # the one rule for the window; torch only when the option is given

    try:
        return check_sigma(_number(text), "--lk-sigma")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tv_weight(text):
    from .tv_refine import check_tv  # the one rule for the weight

    try:
        return check_tv(_number(text), "--tv")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unit_open(text):
    value = _number(text)
    if not (0.0 < value < 1.0):
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (both excluded), got {text}")
    return value


def _float_range(low: float, high: float, unit: str):
    def parse(text):
        value = _number(text)
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g} {unit}, got {text}")
        return value

    return parse


def _geometry(args):
    """The Geometry of ``--energy --pixel-size --distance``: all three or none (a partial set is an error)."""
    from .geometry import Geometry

    given = {"--energy": args.energy, "--pixel-size": args.pixel_size, "--distance": args.distance}
    missing = [name for name, value in given.items() if value is None]
    if len(missing) == 3:
        return None
    if missing:
        raise UsageError(f"--energy, --pixel-size and --distance go together (all three or none); "
                         f"missing {', '.join(missing)}")
    # The mask is upstream of the sample (the seed's order), so --distance is the z of the
    # displacement-phase conversion whatever its value.
    mask = max(Geometry().mask_detector_mm, args.distance)
    return Geometry(energy_kev=args.energy, pixel_size_um=args.pixel_size, sample_detector_mm=args.distance,
                    mask_detector_mm=mask)


def _add_geometry_args(p, required_hint=""):
    from .geometry import _LIMITS

    g = p.add_argument_group("geometry" + required_hint)
    g.add_argument("--energy", type=_float_range(*_LIMITS["energy_kev"]), help="photon energy in keV")
    g.add_argument("--pixel-size", type=_float_range(*_LIMITS["pixel_size_um"]),
                   help="detector pixel size in micrometres")
    g.add_argument("--distance", type=_float_range(*_LIMITS["sample_detector_mm"]),
                   help="sample-to-detector distance in millimetres (the mask upstream of the sample)")


def cmd_simulate(args):
    from .io import NETCDF_SUFFIXES, check_output_path, write_dataset
    from .simulate import simulate_pair

    out = check_output_path(args.out, overwrite=args.overwrite, suffixes=NETCDF_SUFFIXES, what="--out")
    geometry = _geometry(args)
    ds = simulate_pair(size=args.size, pitch=args.pitch or 4, seed=args.seed, phantom=args.phantom,
                       photons=args.photons, geometry=geometry)
    write_dataset(ds, out, overwrite=args.overwrite)
    print(f"wrote {out}: {args.phantom} pair {args.size}x{args.size}, seed {args.seed}")


def cmd_reconstruct(args):
    from .io import NETCDF_SUFFIXES, check_output_path, read_image, write_dataset
    from .outliers import DEFAULT_THRESHOLD
    from .reconstruct import DEFAULT_TILE, reconstruct

    out = check_output_path(args.output, overwrite=args.overwrite, suffixes=NETCDF_SUFFIXES,
                            inputs=(args.reference, args.sample, args.weights), what="--output")
    geometry = _geometry(args)
    if args.keep_outliers and args.outlier_threshold is not None:
        raise UsageError("--keep-outliers and --outlier-threshold exclude each other")
    options = {}
    if args.method == "xst":
        wrong = [name for name, value in (("--tile", args.tile), ("--overlap", args.overlap), ("--weights", args.weights),
                                          ("--no-prealign", args.no_prealign or None), ("--engine", args.engine),
                                          ("--symmetries", args.symmetries), ("--iterations", args.iterations),
                                          ("--lk-sigma", args.lk_sigma), ("--tv", args.tv))
                 if value is not None]
        if wrong:
            raise UsageError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to --method spinnet only")
        options.update(window=7 if args.window is None else args.window, search=6 if args.search is None else args.search)
    else:
        wrong = [name for name, value in (("--window", args.window), ("--search", args.search)) if value is not None]
        if wrong:
            raise UsageError(f"{', '.join(wrong)} appl{'ies' if len(wrong) == 1 else 'y'} to --method xst only")
        tile = DEFAULT_TILE if args.tile is None else args.tile
        if args.tile is not None and tile < 64:
            raise UsageError(f"--tile must be at least 64 px, got {tile}")
        overlap = min(32, (tile - 1) // 2) if args.overlap is None else args.overlap
        if not overlap < tile / 2:
            raise UsageError(f"--overlap ({overlap}) must be smaller than half the tile ({tile} px)")
        if args.tile is not None or args.overlap is not None:
            options.update(tile=tile, overlap=overlap)
        if args.no_prealign:
            options["prealign"] = False
        if args.engine is not None:
            options["engine"] = args.engine
        if args.symmetries is not None:
            options["symmetries"] = args.symmetries
        if args.iterations is not None:
            options["iterations"] = args.iterations
        if args.lk_sigma is not None:
            options["lk_sigma"] = args.lk_sigma
        if args.tv is not None:
            options["tv"] = args.tv
    reference = read_image(args.reference)
    sample = read_image(args.sample)
    model = None
    if args.method == "spinnet" and args.weights:
        from .model.predict import load_checkpoint

        model = load_checkpoint(args.weights)
    outliers = None if args.keep_outliers else (DEFAULT_THRESHOLD if args.outlier_threshold is None
                                                 else args.outlier_threshold)
    ds = reconstruct(reference, sample, method=args.method, model=model, geometry=geometry,
                     integration=args.integration, outliers=outliers, **options)
    write_dataset(ds, out, overwrite=args.overwrite)
    replaced = ds.attrs.get("outliers_replaced", [0, 0])
    note = f"; replaced {replaced[0]} + {replaced[1]} outlier pixels (reference + sample)" if any(replaced) else ""
    print(f"wrote {out}: {', '.join(ds.data_vars)} ({args.method}, {ds.attrs.get('elapsed_s', float('nan')):.2f} s){note}")


def cmd_train(args, argv):
    from .checks import resolve_device
    from .io import check_output_dir
    from .train import preset_config, train

    check_output_dir(args.out, what="--out")
    if args.device is not None:
        resolve_device(args.device, what="--device")
    cfg = preset_config(args.preset, minutes=args.minutes, seed=args.seed, workers=args.workers, threads=args.threads,
                        device=args.device, lr=args.lr, epoch_pairs=args.epoch_pairs, patch=args.patch,
                        batch_size=args.batch_size, lr_schedule=args.lr_schedule,
                        ema_decay=args.ema_decay,
                        stage_epochs=tuple(args.stage_epochs) if args.stage_epochs else None,
                        init_from=args.init_from, finest_iterations=args.finest_iterations,
                        loss_eps=args.loss_eps, level_loss_scale=args.level_loss_scale)
    if cfg.batch_size > cfg.epoch_pairs:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than --epoch-pairs {cfg.epoch_pairs}: incomplete "
                         "batches are dropped, so no optimiser step would be taken")
    command = "python -m spinnet_lite " + " ".join(shlex.quote(a) for a in argv)
    record = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, command=command,
                   progress=not args.no_progress)
    error = record.get("final_val_pair_error")
    summary = f"final validation pair error {error:.5f}" if isinstance(error, (int, float)) else "no epoch run"
    print(f"trained {cfg.preset} in {record['training_time_s']:.0f} s ({record.get('steps', 0)} steps): {summary}; "
          f"wrote {args.out}/model.pt")


def cmd_export(args):
    from .export import export_model

    path = export_model(args.out, fmt=args.format, weights=args.weights, size=args.size, overwrite=args.overwrite)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m spinnet_lite", description="Speckle-based X-ray phase-contrast imaging with SPINNet.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("simulate", help="simulate a reference/sample pair with ground truth (netCDF)",
                       description="Simulate a coded-mask speckle pair and its ground truth; write netCDF.")
    p.add_argument("--size", type=_positive_int, default=256, help="image size in pixels (64 to 8192)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed, 0 to 2**63 - 1 (same seed, same pair)")
    p.add_argument("--phantom", choices=("random", "lens", "bug"), default="random")
    p.add_argument("--pitch", type=_positive_int, default=None, help="mask pitch in pixels (default 4)")
    p.add_argument("--photons", type=_float_range(1e-3, MAX_PHOTONS, "photons per pixel"), default=None,
                   help="Poisson noise: photons per pixel")
    _add_geometry_args(p, " (all three or none)")
    p.add_argument("--out", "-o", required=True, help="output netCDF file (.nc)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser("reconstruct", help="dx, dy, transmission (and phase) from a reference and a sample image",
                       description="Reconstruct displacement, transmission and, with a geometry, phase. "
                                   "Images: .npy, .npz, .tif/.tiff, .h5/.hdf5, .nc; a file holding several "
                                   "2-D arrays needs file::name (e.g. pair.nc::reference).")
    p.add_argument("reference", help="reference (no sample) speckle image")
    p.add_argument("sample", help="sample speckle image")
    p.add_argument("--output", "-o", required=True, help="output netCDF file (.nc)")
    p.add_argument("--method", choices=("spinnet", "xst"), default="spinnet")
    p.add_argument("--weights", help="SPINNet: a checkpoint (default: the bundled lite weights)")
    p.add_argument("--window", type=_positive_int, help="XST: template window (px, odd; default 7)")
    p.add_argument("--search", type=_positive_int, help="XST: search range (+- px; default 6)")
    p.add_argument("--tile", type=_positive_int, help="SPINNet: run images larger than this in overlapping tiles "
                                                      "(default: one pass where memory allows, else the "
                                                      "fewest tiles that fit)")
    p.add_argument("--overlap", type=_non_negative_int,
                   help="SPINNet: pixels shared by neighbouring tiles (default min(32, (tile - 1) // 2))")
    p.add_argument("--no-prealign", action="store_true",
                   help="SPINNet: do not take a global offset (mask drift, >= 3 px) out by correlation first")
    p.add_argument("--engine", choices=("auto", "torch", "bf16", "plain", "torchscript", "onnxruntime"),
                   help="SPINNet: inference engine (default auto: bf16 -- the estimators in bfloat16, within "
                        "~0.01 px of float32 -- on a CPU with native bfloat16, else torch, float32)")
    p.add_argument("--symmetries", type=int, choices=(1, 2, 4, 8),
                   help="SPINNet: average over this many mirror images of the pair (default 1; 4 cuts the "
                        "held-out error by about a sixth for 4x the network's time)")
    p.add_argument("--iterations", type=int, choices=(1, 2, 3, 4),
                   help="SPINNet: passes of the network's finest level (default: what the weights were trained "
                        "with, their config's finest_iterations; fewer is faster)")
    p.add_argument("--lk-sigma", type=_lk_sigma, metavar="PX",
                   help="SPINNet: Gaussian window (px, 1-64) of the Lucas-Kanade step after the network, which "
                        "corrects the slowly varying part of the displacement (default 6); 0: the network alone")
    p.add_argument("--tv", type=_tv_weight, nargs="?", const=True, metavar="WEIGHT",
                   help="SPINNet: weight (0-10) of the edge-preserving refinement after the Lucas-Kanade step "
                        "(total variation of the correction), which sharpens steps such as lens rims, for ~1.8x the "
                        "time; default 0.05 with the Lucas-Kanade step, off with --lk-sigma 0; --tv 0: off; --tv "
                        "alone: 0.05 even with --lk-sigma 0")
    _add_geometry_args(p, " (all three give the phase; all three or none)")
    p.add_argument("--outlier-threshold", type=_positive_float,
                   help="hot/dead pixels: replace pixels beyond all 8 neighbours by more than this many robust "
                        "standard deviations (default 12)")
    p.add_argument("--keep-outliers", action="store_true", help="do not replace hot or dead pixels")
    p.add_argument("--integration", choices=("fc", "ls"), default="fc",
                   help="phase integration: fc (Frankot-Chellappa) or ls (least squares; about 5x less memory "
                        "on large frames)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser("train", help="staged training on simulated pairs",
                       description="Train SPINNet in three stages on simulated pairs; write model.pt, history.csv, record.json.")
    p.add_argument("--preset", choices=_TrainingPresets(), default="lite", metavar="NAME",
                   help="training preset, a name of spinnet_lite.train.PRESETS (default lite; an unknown name "
                        "is refused with the list); lite-finetune: the whole lite network at once from --init-from weights; "
                        "lite-continue: its second segment (lower loss floor, more of the seed's phantoms, "
                        "shifts to 16 px), from --init-from the bundled weights; lite-subpixel: the next segment "
                        "(a quarter of the pairs with sub-pixel fields, loss floor 0.05 px^2); lite-gpu: the "
                        "fifth, for a GPU (batches of 16, 14 data workers, cosine lr over --minutes); lite-cpu: the "
                        "sixth, for a 2-core CPU (batches of 4, cosine lr, a moving average of the weights); "
                        "lite-gpu2: the ninth, for a GPU (lite-gpu's batches with a moving average, diffuser "
                        "grains down to 1 px); lite-cpu2: the eleventh to thirteenth, lite-cpu with those grains; "
                        "lite-cpu3: the fourteenth, lite-cpu2 with level 2 run twice (--finest-iterations 2); "
                        "lite-gpu3: the fifteenth, for a GPU (lite-gpu2's batches with level 2 run twice); "
                        "lite-rim-gpu / lite-rim-cpu: lite-gpu3 / lite-cpu3 with lens apertures and rims in 60 %% of "
                        "the quadratic fields (PairSpec.aperture_fraction), loss floor 0.01 px^2")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from these weights (tensors whose name and shape match are copied)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--finest-iterations", type=int, choices=(1, 2, 3, 4),
                   help="passes of the network's finest level, shared weights (default: the preset's)")
    p.add_argument("--minutes", type=_positive_float,
                   help="time budget shared between the stages (the first epoch always runs)")
    p.add_argument("--stage-epochs", type=_positive_int, nargs=3, metavar=("S1", "S2", "S3"), help="epochs per stage")
    p.add_argument("--epoch-pairs", type=_positive_int, help="training pairs per epoch (at least --batch-size)")
    p.add_argument("--lr", type=_positive_float, help="initial learning rate (default: the preset's)")
    p.add_argument("--loss-eps", type=_positive_float, metavar="PX2",
                   help="floor (px^2) added to the mean square of each ground-truth map in the Eq. 4 loss: "
                        "smaller weighs small fields more (default: the preset's)")
    p.add_argument("--level-loss-scale", type=_non_negative_float, metavar="FACTOR",
                   help="factor on the loss weights of the pyramid levels; the final output keeps weight 1 "
                        "(below 1 leans on the final output; 0 trains on it alone; default 1)")
    p.add_argument("--patch", type=_positive_int, help="training patch size in pixels (a multiple of 32)")
    p.add_argument("--batch-size", type=_positive_int, help="pairs per batch")
    p.add_argument("--seed", type=_seed, help="seed of the training pairs and banks (default: the preset's)")
    p.add_argument("--workers", type=_non_negative_int,
                   help="data-loader worker processes (default: the preset's; 1 for the CPU presets)")
    p.add_argument("--threads", type=_positive_int, help="torch threads")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda (default: the preset's; cpu but for lite-gpu, lite-gpu2 and lite-gpu3)")
    p.add_argument("--lr-schedule", choices=("step", "cosine"),
                   help="step: halve the lr every few epochs; cosine: decay it over the time budget "
                        "(default: the preset's)")
    p.add_argument("--ema-decay", type=_unit_open, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay, in (0, 1), and "
                        "save it as model.pt (default: the preset's; lite-cpu 0.998, the others none)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="start again in a folder that holds a run")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")

    p = sub.add_parser("export", help="export the network for real-time use (TorchScript or ONNX)",
                       description="Export SPINNet (default: the bundled weights) to TorchScript or ONNX.")
    p.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    p.add_argument("--weights", help="checkpoint to export (default: bundled lite weights)")
    p.add_argument("--size", type=_positive_int, default=256, help="example input size used for tracing")
    p.add_argument("--out", "-o", required=True, help="output file (.pt for TorchScript, .onnx for ONNX)")
    p.add_argument("--overwrite", action="store_true")
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that the stack unwinds and temporary files go."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    prefix = f"python -m spinnet_lite {args.command}"
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        pass
    try:
        if args.command == "simulate":
            cmd_simulate(args)
        elif args.command == "reconstruct":
            cmd_reconstruct(args)
        elif args.command == "train":
            cmd_train(args, argv)
        elif args.command == "export":
            cmd_export(args)
    except ValueError as exc:
        print(f"{prefix}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prefix}: error: not enough memory for this input (try a smaller size, --tile or fewer images)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        checkpoint = None
        if args.command == "train":  # training keeps its last epoch's checkpoint on purpose
            from .train import CHECKPOINT_NAME

            checkpoint = Path(args.out) / CHECKPOINT_NAME
        if checkpoint is not None and checkpoint.is_file():
            print(f"{prefix}: {what}; {checkpoint} keeps the last finished epoch (add --resume to the same "
                  "command to continue)", file=sys.stderr)
        else:
            print(f"{prefix}: {what}; no partial output was left", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
