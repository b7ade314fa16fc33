"""The README's overview figure: one held-out pair, its ground truth, SPINNet-lite and XST.

    python tools/make_overview.py [--out docs/overview.png]

Prints the numbers it puts in the caption (displacement RMSE of both methods, times).
"""
import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from spinnet_lite import reconstruct
from spinnet_lite.evalset import heldout_specs, simulate_spec
from spinnet_lite.metrics import displacement_rmse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/overview.png")
    parser.add_argument("--index", type=int, default=1, help="held-out pair index (1: a noisy pair)")
    args = parser.parse_args(argv)
    spec = heldout_specs(args.index + 1)[args.index]
    pair = simulate_spec(spec)
    net = reconstruct(pair.reference, pair.sample, method="spinnet")
    xst = reconstruct(pair.reference, pair.sample, method="xst", window=7, search=6)
    rmse = {name: displacement_rmse(r, pair, border=8) for name, r in (("SPINNet-lite", net), ("XST 7x7", xst))}
    panels = [("reference", pair.reference, "gray", None), ("sample", pair.sample, "gray", None),
              ("dx truth [px]", pair.dx, "RdBu_r", "d"), ("dx SPINNet-lite [px]", net.dx, "RdBu_r", "d"),
              ("dx XST 7x7 [px]", xst.dx, "RdBu_r", "d"), ("T truth", pair.transmission, "viridis", "t"),
              ("T SPINNet-lite", net.transmission, "viridis", "t")]
    lim = float(np.abs(pair.dx).max())
    tlo, thi = float(pair.transmission.min()), 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.3), layout="constrained")
    for ax, (title, da, cmap, kind) in zip(axes, panels):
        kw = dict(vmin=-lim, vmax=lim) if kind == "d" else dict(vmin=tlo, vmax=thi) if kind == "t" else {}
        im = ax.imshow(np.asarray(da), cmap=cmap, **kw)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.75)
    kind = f"{spec['kind']} pair, {spec['photons']:.0f} photons/px" if spec["photons"] else f"{spec['kind']} pair"
    fig.suptitle(f"held-out {kind}: displacement RMSE SPINNet-lite {rmse['SPINNet-lite']:.3f} px "
                 f"({net.attrs['elapsed_s']:.2f} s), XST {rmse['XST 7x7']:.3f} px ({xst.attrs['elapsed_s']:.2f} s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}; pair {args.index} ({kind}); RMSE " +
          ", ".join(f"{k} {v:.4f} px" for k, v in rmse.items()) +
          f"; time SPINNet {net.attrs['elapsed_s']:.3f} s, XST {xst.attrs['elapsed_s']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
