"""Hot and dead pixels: what they do to SPINNet and XST, with and without their replacement.

    python tools/outlier_probe.py

A 512 px pair with a 3 px blob field (10^4 photons/px) on a coded mask of 4 px cells and on a
diffuser of 3 px grain at 6 % rms visibility; a share of the pixels of both images is
multiplied by 5 (hot), set to 0 (dead) or multiplied by 3 (1 % hot). Printed: the rms error of
the displacement vector (px, 16 px border dropped) of each method through ``reconstruct`` with
the outliers kept (``outliers=None``) and replaced (the default, :mod:`spinnet_lite.outliers`).
"""
from __future__ import annotations

import numpy as np

from spinnet_lite import reconstruct, simulate_pair

CASES = (("clean", 0.0, 1.0), ("hot 0.1 %", 1e-3, 5.0), ("dead 0.1 %", 1e-3, 0.0), ("hot 1 % (3x)", 1e-2, 3.0))


def main() -> None:
    rng = np.random.default_rng(1)
    border = 16
    print(f"{'speckle':<9} {'pixels':<13} {'SPINNet kept':>13} {'replaced':>9} {'XST kept':>9} {'replaced':>9}")
    for speckle in ("mask", "diffuser"):
        kw = dict(speckle="diffuser", grain_px=3.0, visibility=0.06) if speckle == "diffuser" else dict(pitch=4.0)
        ds = simulate_pair(512, seed=1_000_900_001, phantom="blobs", max_shift_px=3.0, photons=10000.0, **kw)
        truth = np.stack([ds["dx"].values, ds["dy"].values])
        for label, fraction, factor in CASES:
            ref, smp = ds["reference"].values.copy(), ds["sample"].values.copy()
            for image in (ref, smp):
                hit = rng.random(image.shape) < fraction
                image[hit] *= factor
            errors = []
            for method in ("spinnet", "xst"):
                for outliers in (None, "default"):
                    kw_out = {} if outliers == "default" else {"outliers": None}
                    r = reconstruct(ref, smp, method=method, **kw_out, **({"search": 6} if method == "xst" else {}))
                    e = (np.stack([r.dx.values, r.dy.values]) - truth)[:, border:-border, border:-border]
                    errors.append(float(np.sqrt((e ** 2).sum(0).mean())))
            print(f"{speckle:<9} {label:<13} {errors[0]:>13.3f} {errors[1]:>9.3f} {errors[2]:>9.3f} {errors[3]:>9.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
