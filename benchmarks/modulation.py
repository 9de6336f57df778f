"""Cross-domain adaptive filter: geosr's (``adaptive_filter``, on the CPU banded matmuls from
7 x 7 windows) against the published unfold.

Forward + backward time (best of 3) and peak memory at C=64, 320 x 320, k = 11 and 5.
Each variant runs in a fresh process; peak memory is the rise of that process's peak
resident set size (ru_maxrss) over its value once the inputs exist, so it counts every
tensor and allocator overhead the variant causes, and nothing else.

    python benchmarks/modulation.py [--size 320] [--channels 64] [--large]

--large adds one forward+backward of geosr's filter at 1376 x 1088 (the naive one would
need tens of GB there, so it is not run).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from geosr.methods.nn.modulation import adaptive_filter, adaptive_filter_unfold
variant, k, c, h, w, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
f = {"geosr": adaptive_filter, "unfold": adaptive_filter_unfold}[variant]
g = torch.Generator().manual_seed(0)
q = torch.randn(1, c, h, w, generator=g, requires_grad=True)
v = torch.randn(1, c, h, w, generator=g, requires_grad=True)
up = torch.randn(1, c, h, w, generator=g)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(reps):
    t = time.perf_counter()
    torch.autograd.backward(f(q, v, k), up)
    times.append(time.perf_counter() - t)
    q.grad = v.grad = None
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": min(times), "peak_mb": (peak - base) / 1024}))
"""


def measure(variant, k, c, h, w, reps=3):
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(k), str(c), str(h), str(w), str(reps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--large", action="store_true")
    a = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; C={a.channels}, {a.size}x{a.size}; "
          "forward+backward, best of 3\n")
    print(f"| k | unfold s | geosr s | speed-up | unfold peak MB | geosr peak MB | memory ratio |")
    print(f"|---|---|---|---|---|---|---|")
    for k in (11, 5):
        n = measure("unfold", k, a.channels, a.size, a.size)
        g = measure("geosr", k, a.channels, a.size, a.size)
        print(f"| {k} | {n['seconds']:.2f} | {g['seconds']:.3f} | {n['seconds'] / g['seconds']:.1f}x | "
              f"{n['peak_mb']:.0f} | {g['peak_mb']:.0f} | {n['peak_mb'] / g['peak_mb']:.1f}x |")
    if a.large:
        for k in (11, 5):
            g = measure("geosr", k, a.channels, 1376, 1088, reps=1)
            print(f"\ngeosr filter at 1376x1088, C={a.channels}, k={k}: {g['seconds']:.1f} s, "
                  f"peak {g['peak_mb'] / 1024:.2f} GB (unfold would hold a "
                  f"{a.channels * k * k * 1376 * 1088 * 4 / 2**30:.0f} GB tensor)")


if __name__ == "__main__":
    main()
