"""Known shifts applied to one measured-like reference, as a check on real data is made.

    python tools/applied_shift_probe.py                  # the bundled weights
    python tools/applied_shift_probe.py --checkpoint runs/x/model.pt
    python tools/applied_shift_probe.py --grain 1.0         # a finer membrane (measured grain ~2 px)
    python tools/applied_shift_probe.py --lk-sigma 0        # the network alone (no Lucas-Kanade step)

A real data set has no ground truth, so a check moves its reference image by a known amount:
here a simulated membrane (a diffuser of 3 px grain and 6 % rms visibility unless ``--grain``
and ``--visibility`` say otherwise, 10^4 photons/px, its noise included) is moved by a uniform
shift of 0.08-4 px (Fourier shift, random direction) and by a smooth 3 px bump (cubic-spline
warp), and the "sample" gets 1 % fresh noise. The speckle is therefore never re-simulated: the
sample is an interpolated copy of the noisy reference, as with a real reference. Printed: the
rms error of dx and dy (px, per component, 24 px border dropped) of SPINNet and XST (search
max(6, 1.25 x shift + 2) px) through ``reconstruct``, one row per case and seed, and their ratio.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

SHIFTS = (0.08, 0.3, 1.0, 2.0, 4.0)


def rms_errors(reference, sample, dx, dy, search: int, model=None, border: int = 24, spinnet_options=None) -> dict:
    from spinnet_lite import reconstruct

    out = {}
    for method in ("spinnet", "xst"):
        kw = {"search": search} if method == "xst" else {**({"model": model} if model is not None else {}),
                                                          **(spinnet_options or {})}
        r = reconstruct(reference, sample, method=method, **kw)
        e = np.stack([r.dx.values - dx, r.dy.values - dy])[:, border:-border, border:-border]
        out[method] = float(np.sqrt(np.mean(e**2)))
    return out


def main(argv=None) -> None:
    from spinnet_lite import simulate_pair

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="SPINNet checkpoint (default: the bundled weights)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--grain", type=float, default=3.0,
                   help="diffuser grain of the simulator, px (training: 1.5-6, 1-6 from the ninth segment on; "
                        "metrics.grain_size_px measures "
                        "2.0 / 2.3 / 2.5 / 2.9 / 4.4 px for 1 / 1.5 / 2 / 3 / 6 at its detector blur)")
    p.add_argument("--visibility", type=float, default=0.06, help="rms contrast of the reference (default 0.06)")
    p.add_argument("--seeds", type=int, nargs="+", default=[11, 12], help="simulator seeds of the references")
    p.add_argument("--lk-sigma", type=float, help="SPINNet's Lucas-Kanade window, px (default reconstruct's; 0: off)")
    p.add_argument("--no-tv", action="store_true",
                   help="SPINNet without the total-variation refinement (reconstruct's tv=False; default: reconstruct's)")
    args = p.parse_args(argv)
    if not 0.5 <= args.grain <= 64 or not 0 < args.visibility < 1:
        p.error("--grain must be 0.5-64 px and --visibility in (0, 1)")
    model = None
    if args.checkpoint:
        from spinnet_lite.model.predict import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    spinnet_options = {}
    if args.lk_sigma is not None:
        spinnet_options["lk_sigma"] = args.lk_sigma
    if args.no_tv:
        spinnet_options["tv"] = False
    rng = np.random.default_rng(5)
    size = args.size
    print(f"# diffuser grain {args.grain:g} px, visibility {args.visibility:g}, {size} px")
    print(f"{'case':<18} {'seed':>4} {'SPINNet':>8} {'XST':>7} {'ratio':>6}")
    for seed in args.seeds:
        ds = simulate_pair(size, seed=seed, phantom="uniform", max_shift_px=0.0, speckle="diffuser",
                           grain_px=args.grain, visibility=args.visibility, photons=10000.0)
        ref = ds["reference"].values.astype(np.float64)
        cases = []
        for s in SHIFTS:
            angle = rng.uniform(0, 2 * np.pi)
            sx, sy = s * np.cos(angle), s * np.sin(angle)
            moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(ref), (sy, sx))).real
            cases.append((f"uniform {s:g} px", moved, np.full(ref.shape, sx), np.full(ref.shape, sy),
                          max(6, int(1.25 * s + 2))))
        yy, xx = np.mgrid[:size, :size].astype(np.float64)
        c, w = size / 2, size / 6
        bump = np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * w**2))
        dx, dy = bump * (xx - c) / w, bump * (yy - c) / w
        peak = np.hypot(dx, dy).max()
        dx, dy = 3.0 * dx / peak, 3.0 * dy / peak
        moved = ndimage.map_coordinates(ref, [yy - dy, xx - dx], order=3, mode="reflect")  # sample(y, x) = ref(y - dy, x - dx)
        cases.append(("smooth 3 px bump", moved, dx, dy, 6))
        for label, moved, dx, dy, search in cases:
            sample = moved * (1 + 0.01 * rng.standard_normal(moved.shape))
            e = rms_errors(ref.astype(np.float32), sample.astype(np.float32), dx, dy, search, model,
                           spinnet_options=spinnet_options or None)
            print(f"{label:<18} {seed:>4} {e['spinnet']:>8.3f} {e['xst']:>7.3f} {e['spinnet'] / e['xst']:>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
