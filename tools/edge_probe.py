"""Where the held-out error sits: at the phantoms' contour edges, or in the smooth regions?

    python tools/edge_probe.py                        # the bundled weights
    python tools/edge_probe.py --checkpoint runs/x/model.pt

For each held-out pair (``spinnet_lite.evalset``, the set of ``benchmarks/evaluate.py``),
SPINNet runs through ``reconstruct`` (defaults). "Edge" pixels are those within 2 px of a
pixel where the true displacement changes by more than ``--threshold`` px per px (the
contours of the seed's phantoms, the rim of a lens). Printed per pair and as medians: the
share of pixels at edges, the share of the squared displacement error they hold, and the rms
error (px) at edges and elsewhere; 8 px border dropped.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage


def edge_errors(reference, sample, dx, dy, model=None, threshold: float = 0.05, border: int = 8) -> dict:
    """Squared-error split between edge and smooth pixels for one pair (see the module docstring)."""
    from spinnet_lite import reconstruct

    r = reconstruct(reference, sample, **({"model": model} if model is not None else {}))
    e2 = (r.dx.values - dx) ** 2 + (r.dy.values - dy) ** 2
    steep = (np.hypot(*np.gradient(dx)) + np.hypot(*np.gradient(dy))) > threshold
    edge = ndimage.binary_dilation(steep, iterations=2)
    inner = (slice(border, -border), slice(border, -border))
    e2, edge = e2[inner], edge[inner]
    return {"edge_pixels": float(edge.mean()),
            "edge_error_share": float(e2[edge].sum() / max(e2.sum(), 1e-30)),
            "rmse_edge": float(np.sqrt(e2[edge].mean())) if edge.any() else float("nan"),
            "rmse_smooth": float(np.sqrt(e2[~edge].mean())) if (~edge).any() else float("nan")}


def main(argv=None) -> None:
    from spinnet_lite.evalset import heldout_pairs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    p.add_argument("--n", type=int, default=24, help="held-out pairs (default 24)")
    p.add_argument("--threshold", type=float, default=0.05, help="edge: displacement gradient above this, px/px")
    args = p.parse_args(argv)
    model = None
    if args.checkpoint:
        from spinnet_lite.model.predict import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    rows = []
    print(f"{'pair':>4} {'kind':<11} {'edge px':>8} {'error share':>12} {'rmse edge':>10} {'rmse smooth':>12}")
    for i, ds in enumerate(heldout_pairs(args.n)):
        row = edge_errors(ds["reference"].values, ds["sample"].values, ds["dx"].values, ds["dy"].values, model,
                          args.threshold)
        rows.append(row)
        print(f"{i:>4} {ds.attrs.get('kind', '?'):<11} {row['edge_pixels']:>8.2f} {row['edge_error_share']:>12.2f} "
              f"{row['rmse_edge']:>10.3f} {row['rmse_smooth']:>12.3f}")
    med = {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0]}
    print(f"median: {med['edge_pixels']:.2f} of the pixels are at edges and hold {med['edge_error_share']:.2f} of "
          f"the squared error; rms {med['rmse_edge']:.3f} px there, {med['rmse_smooth']:.3f} px elsewhere")


if __name__ == "__main__":
    main()
