"""Time per epoch and peak memory of one whole-pair MMSR optimisation step.

One epoch is one forward + backward + Adam step over the whole pair (the paper's unit),
so the time per epoch compares directly with the published code; ``--filter unfold``
swaps in the published unfold formulation of the filter to measure that here. Each configuration runs
in a fresh process; peak memory is that process's peak resident set size, all of it.

    python benchmarks/epoch.py [--sizes 320x320 1376x1088] [--presets depth remote-sensing fast]
    python benchmarks/epoch.py --filter both --sizes 320x320 --presets depth remote-sensing   # against the published filter
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, numpy as np
from geosr.methods.mmsr import config_for
import geosr
preset, h, w, epochs, filt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if filt == "unfold":  # the published formulation, for a like-for-like comparison
    import geosr.methods.nn.mmsr_net as net
    from geosr.methods.nn.modulation import adaptive_filter_unfold
    net.adaptive_filter = adaptive_filter_unfold
rng = np.random.default_rng(0)
# Shapes are what matter for time and memory; a smooth random field stands in for data.
src = rng.standard_normal((h // 4, w // 4)).cumsum(0).cumsum(1)
guide = rng.standard_normal((3, h, w)).astype(np.float32)
geosr.superresolve_array(src, guide, 4, preset=preset, epochs=0, progress=False)  # warm-up
t = time.perf_counter()
geosr.superresolve_array(src, guide, 4, preset=preset, epochs=0, progress=False)
fixed = time.perf_counter() - t  # preparation + one inference pass
t = time.perf_counter()
geosr.superresolve_array(src, guide, 4, preset=preset, epochs=epochs, progress=False)
total = time.perf_counter() - t
print(json.dumps({"s_per_epoch": (total - fixed) / epochs, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "channels": config_for(preset).channels}))
"""


def run(preset, h, w, epochs, filt):
    """One configuration in a fresh process: its measurements, or the last line of its error."""
    r = subprocess.run([sys.executable, "-c", CHILD, preset, str(h), str(w), str(epochs), filt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr.strip().splitlines()[-1]
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["320x320", "1376x1088"])
    ap.add_argument("--presets", nargs="+", default=["depth", "remote-sensing", "fast"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--filter", choices=["geosr", "unfold", "both"], default="geosr",
                    help="unfold: the published C x k^2 x H x W formulation instead of geosr's; both: the two "
                         "side by side, alternating, with the ratio (the machine's load then hits both alike)")
    a = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; HR size, x4; "
          f"mean of {a.epochs} epochs, after a warm-up call, with preparation and inference subtracted\n")
    from geosr.methods.mmsr import config_for

    if a.filter == "both":
        print("| HR size | preset | windows | published (unfold) s / epoch | geosr s / epoch | ratio | "
              "peak RSS GB unfold / geosr |")
        print("|---|---|---|---|---|---|---|")
    else:
        print(f"filter: {a.filter}\n")
        print("| HR size | preset | channels | windows | s / epoch | peak RSS GB |")
        print("|---|---|---|---|---|---|")
    for size in a.sizes:
        h, w = map(int, size.split("x"))
        for p in a.presets:
            c = config_for(p)
            windows = f"{c.source_neighbourhood}/{c.guide_neighbourhood}"
            if a.filter == "both":
                unfold, geosr = run(p, h, w, a.epochs, "unfold"), run(p, h, w, a.epochs, "geosr")
                if isinstance(unfold, str) or isinstance(geosr, str):
                    print(f"| {size} | {p} | failed: {unfold if isinstance(unfold, str) else geosr} |")
                    continue
                print(f"| {h}x{w} | {p} | {windows} | {unfold['s_per_epoch']:.2f} | {geosr['s_per_epoch']:.2f} | "
                      f"**{unfold['s_per_epoch'] / geosr['s_per_epoch']:.1f}x** | "
                      f"{unfold['peak_gb']:.2f} / {geosr['peak_gb']:.2f} |", flush=True)
                continue
            m = run(p, h, w, a.epochs, a.filter)
            if isinstance(m, str):
                print(f"| {size} | {p} | failed: {m} |")
                continue
            print(f"| {h}x{w} | {p} | {c.channels} | {windows} | "
                  f"{m['s_per_epoch']:.2f} | {m['peak_gb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
