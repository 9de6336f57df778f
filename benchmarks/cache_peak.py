"""What dask keeps waiting while geosr writes a raster: the peak of its cache, by kind of task.

The inputs are memory.py's synthetic terrain and guide, at any source shape; the run goes
through ``geosr.superresolve`` and ``geosr.write`` on the threaded scheduler, with a scheduler
callback that sums the bytes of every result held in dask's cache after each 20 tasks. Fast
to run with ``bicubic`` (the graph is the one a learned method has), so a raster twice as long
shows at once whether what is held grows with it.

    python benchmarks/cache_peak.py 256x4096 256x8192            # bicubic
    python benchmarks/cache_peak.py 128x2048 --method mmsr       # at --epochs 1
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

from memory import SCALE, make_inputs


def held(folder: Path, height: int, width: int, method: str):
    import geosr
    from dask.callbacks import Callback

    peak = {"bytes": 0, "by": []}

    def count(key, result, dsk, state, worker_id):
        count.n += 1
        if count.n % 20:
            return
        by = Counter()
        for k, v in state["cache"].items():
            name = str(k[0] if isinstance(k, tuple) else k)
            by[name.split("-")[0] if not name.startswith("geosr") else "-".join(name.split("-")[:2])] += \
                getattr(v, "nbytes", 0)
        if sum(by.values()) > peak["bytes"]:
            peak.update(bytes=sum(by.values()), by=by.most_common(4))
    count.n = 0

    src, guide = make_inputs(folder, height, width)
    out = geosr.superresolve(geosr.open_raster(str(src)), geosr.open_raster(str(guide)), SCALE, method,
                             selfcheck=False, **({} if method == "bicubic" else {"epochs": 1}))
    t = time.perf_counter()
    with Callback(posttask=count):
        geosr.write(out, folder / "out.tif", overwrite=True, progress=False)
    return out, time.perf_counter() - t, peak


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", help="source shapes, height x width")
    p.add_argument("--method", default="bicubic")
    p.add_argument("--folder", type=Path, default=None)
    args = p.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="geosr-cache-"))
    print(f"# {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}, method {args.method}")
    print("| source | output | tiles | write s | peak of dask's cache MB | largest parts MB |")
    print("|---|---|---|---|---|---|")
    for shape in args.sources:
        h, w = (int(v) for v in shape.lower().split("x"))
        out, seconds, peak = held(folder, h, w, args.method)
        parts = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in peak["by"])
        print(f"| {h}x{w} | {out.shape[0]}x{out.shape[1]} | {len(out.chunks[0])}x{len(out.chunks[1])} | "
              f"{seconds:.0f} | {peak['bytes'] / 2**20:.0f} | {parts} |", flush=True)


if __name__ == "__main__":
    main()
