"""What a second network pass buys, and where it costs: prints the figures quoted in
``spinnet_lite/align.py`` (one, two and three passes on the same pairs).

    python tools/passes_probe.py [--size 1024] [--checkpoint CKPT]

Cases: the seed's Be lens simulated with full Fresnel propagation (``forward="wave"``; the
difference to the true phase after the best paraboloid inside a circle of 60 % of the frame,
rad), an 8 px quadratic field, an 8 px blob field, the seed's sharp-edged random phantom and an
almost still pair (rms displacement error, px, 32 px border dropped).
"""
from __future__ import annotations

import argparse

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="lens frame side, px (the other cases use 512)")
    parser.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    args = parser.parse_args(argv)

    from spinnet_lite import Geometry, reconstruct, simulate_pair
    from spinnet_lite.metrics import lens_residuals
    from spinnet_lite.model.predict import load_checkpoint
    from spinnet_lite.pretrained import load_pretrained

    model = load_checkpoint(args.checkpoint) if args.checkpoint else load_pretrained()
    geometry = Geometry()
    cases = [("Be lens, wave optics", args.size, dict(phantom="lens", forward="wave")),
             ("quadratic, 8 px", 512, dict(phantom="quadratic", max_shift_px=8.0, max_strain=0.5)),
             ("blobs, 8 px", 512, dict(phantom="blobs", max_shift_px=8.0, max_strain=0.5)),
             ("seed's random phantom", 512, dict(phantom="random")),
             ("still (uniform 0.2 px)", 512, dict(phantom="uniform", max_shift_px=0.2))]
    print(f"{'case':26s} {'passes':>6s} {'rms px':>8s} {'lens rad':>9s} {'time s':>7s}")
    for name, size, kwargs in cases:
        ds = simulate_pair(size, seed=1_000_600_000, photons=20000.0, pitch=4, **kwargs)
        inner = (slice(32, -32),) * 2
        for passes in (1, 2, 3):
            r = reconstruct(ds.reference.values, ds.sample.values, model=model, passes=passes,
                            geometry=geometry if kwargs["phantom"] == "lens" else None)
            rms = np.sqrt(np.mean((r.dx.values - ds.dx.values)[inner] ** 2 + (r.dy.values - ds.dy.values)[inner] ** 2))
            lens = ""
            if kwargs["phantom"] == "lens":
                diameter = min(800.0, 0.6 * size * geometry.pixel_size_um)
                res = lens_residuals({"truth": ds.phase.values, "spinnet": r.phase.values}, geometry, diameter)
                lens = f"{res['difference_rms']['truth-spinnet']:.3f}"
            print(f"{name:26s} {passes:6d} {rms:8.3f} {lens:>9s} {r.attrs['elapsed_s']:7.2f}", flush=True)
        auto = reconstruct(ds.reference.values, ds.sample.values, model=model)
        print(f"{name:26s} {'auto':>6s} -> {auto.attrs['passes']} pass(es)", flush=True)


if __name__ == "__main__":
    main()
