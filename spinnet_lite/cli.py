"""Command line: ``python -m spinnet_lite {simulate,train,reconstruct,export} ...``.

Errors in what the user asked for (bad arguments, missing files, mismatched images, an
existing output without ``--overwrite``) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import shlex
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(ValueError):
    """An error in the user's input."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _geometry(args):
    from .geometry import Geometry

    fields = {"energy_kev": args.energy, "pixel_size_um": args.pixel_size, "sample_detector_mm": args.distance}
    fields = {k: v for k, v in fields.items() if v is not None}
    return Geometry(**fields) if fields else None


def _add_geometry_args(p, required_hint=""):
    g = p.add_argument_group("geometry" + required_hint)
    g.add_argument("--energy", type=_positive_float, help="photon energy in keV")
    g.add_argument("--pixel-size", type=_positive_float, help="detector pixel size in micrometres")
    g.add_argument("--distance", type=_positive_float, help="sample-to-detector distance in millimetres")


def cmd_simulate(args):
    from pathlib import Path

    from .simulate import simulate_pair

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out}: file exists; pass --overwrite to replace it")
    geometry = _geometry(args)
    ds = simulate_pair(size=args.size, pitch=args.pitch or 4, seed=args.seed, phantom=args.phantom,
                       photons=args.photons, geometry=geometry)
    from .io import write_dataset

    write_dataset(ds, out, overwrite=args.overwrite)
    print(f"wrote {out}: {args.phantom} pair {args.size}x{args.size}, seed {args.seed}")


def cmd_reconstruct(args):
    from pathlib import Path

    from .io import read_image, write_dataset
    from .reconstruct import reconstruct

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out}: file exists; pass --overwrite to replace it")
    reference = read_image(args.reference)
    sample = read_image(args.sample)
    options = {}
    if args.method == "xst":
        options.update(window=args.window, search=args.search)
    elif args.tile:
        options.update(tile=args.tile)
    model = None
    if args.method == "spinnet" and args.weights:
        from .model.predict import load_checkpoint

        model = load_checkpoint(args.weights)
    ds = reconstruct(reference, sample, method=args.method, model=model, geometry=_geometry(args), **options)
    write_dataset(ds, out, overwrite=args.overwrite)
    print(f"wrote {out}: {', '.join(ds.data_vars)} ({args.method}, {ds.attrs.get('elapsed_s', float('nan')):.2f} s)")


def cmd_train(args, argv):
    from .train import preset_config, train

    cfg = preset_config(args.preset, minutes=args.minutes, seed=args.seed, workers=args.workers, threads=args.threads,
                        device=args.device, lr=args.lr, epoch_pairs=args.epoch_pairs, patch=args.patch,
                        batch_size=args.batch_size,
                        stage_epochs=tuple(args.stage_epochs) if args.stage_epochs else None)
    command = "python -m spinnet_lite " + " ".join(shlex.quote(a) for a in argv)
    record = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, command=command,
                   progress=not args.no_progress)
    print(f"trained {cfg.preset} in {record['training_time_s']:.0f} s: final validation pair error "
          f"{record['final_val_pair_error']:.5f}; wrote {args.out}/model.pt")


def cmd_export(args):
    from .export import export_model

    path = export_model(args.out, fmt=args.format, weights=args.weights, size=args.size, overwrite=args.overwrite)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m spinnet_lite", description="Speckle-based X-ray phase-contrast imaging with SPINNet.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("simulate", help="simulate a reference/sample pair with ground truth (netCDF)",
                       description="Simulate a coded-mask speckle pair and its ground truth; write netCDF.")
    p.add_argument("--size", type=_positive_int, default=256, help="image size in pixels (>= 64)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same pair)")
    p.add_argument("--phantom", choices=("random", "lens", "bug"), default="random")
    p.add_argument("--pitch", type=_positive_int, default=None, help="mask pitch in pixels (default 4)")
    p.add_argument("--photons", type=_positive_float, default=None, help="Poisson noise: photons per pixel")
    _add_geometry_args(p)
    p.add_argument("--out", "-o", required=True, help="output netCDF file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser("reconstruct", help="dx, dy, transmission (and phase) from a reference and a sample image",
                       description="Reconstruct displacement, transmission and, with a geometry, phase. "
                                   "Images: .npy, .npz, .tif/.tiff, .h5/.hdf5 (file.h5::dataset), .nc.")
    p.add_argument("reference", help="reference (no sample) speckle image")
    p.add_argument("sample", help="sample speckle image")
    p.add_argument("--output", "-o", required=True, help="output netCDF file")
    p.add_argument("--method", choices=("spinnet", "xst"), default="spinnet")
    p.add_argument("--weights", help="a SPINNet checkpoint (default: the bundled lite weights)")
    p.add_argument("--window", type=_positive_int, default=7, help="XST template window (px)")
    p.add_argument("--search", type=_positive_int, default=6, help="XST search range (+- px)")
    p.add_argument("--tile", type=_positive_int, help="SPINNet: run images larger than this in overlapping tiles")
    _add_geometry_args(p, " (all three give the phase)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser("train", help="staged training on simulated pairs",
                       description="Train SPINNet in three stages on simulated pairs; write model.pt, history.csv, record.json.")
    p.add_argument("--preset", choices=("tiny", "lite", "full"), default="lite")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--minutes", type=_positive_float, help="time budget shared between the stages")
    p.add_argument("--stage-epochs", type=_positive_int, nargs=3, metavar=("S1", "S2", "S3"), help="epochs per stage")
    p.add_argument("--epoch-pairs", type=_positive_int, help="training pairs per epoch")
    p.add_argument("--lr", type=_positive_float, help="initial learning rate (default 1e-4)")
    p.add_argument("--patch", type=_positive_int, help="training patch size in pixels (a multiple of 32)")
    p.add_argument("--batch-size", type=_positive_int, help="pairs per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="data-loader worker processes")
    p.add_argument("--threads", type=_positive_int, help="torch threads")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="start again in a folder that holds a run")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")

    p = sub.add_parser("export", help="export the network for real-time use (TorchScript or ONNX)",
                       description="Export SPINNet (default: the bundled weights) to TorchScript or ONNX.")
    p.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    p.add_argument("--weights", help="checkpoint to export (default: bundled lite weights)")
    p.add_argument("--size", type=_positive_int, default=256, help="example input size used for tracing")
    p.add_argument("--out", "-o", required=True)
    p.add_argument("--overwrite", action="store_true")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
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
        print(f"python -m spinnet_lite {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    return 0
