"""Pictures for notebooks and examples: people judge a sharpened DEM or thermal band by eye first.

Needs matplotlib (``pip install 'geosr[plot]'``); imported only when a function here runs.
Images are shown pixel for pixel (no smoothing), so bicubic and geosr are compared as they are.
"""
from __future__ import annotations

import numpy as np

from .core.metrics import hillshade


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("geosr.plot draws with matplotlib: pip install 'geosr[plot]'") from e
    return plt


def values(a) -> np.ndarray:
    """A float64 numpy array from a DataArray or array; a leading band axis of 1 is dropped."""
    a = np.asarray(getattr(a, "values", a), np.float64)
    return a[0] if a.ndim == 3 and a.shape[0] == 1 else a


def rgb(guide, percentiles=(2, 98)) -> np.ndarray:
    """(h, w, 3) in [0, 1] from a (3+, h, w) guide: one linear stretch over all bands, so colours stay true."""
    g = values(guide)[:3]
    lo, hi = np.nanpercentile(g, percentiles)
    return np.moveaxis(np.clip((g - lo) / ((hi - lo) or 1.0), 0, 1), 0, -1)


def limits(*images, percentiles=(1, 99)) -> tuple[float, float]:
    """One colour range for several images, so their panels compare."""
    v = np.concatenate([values(i).ravel() for i in images])
    lo, hi = np.nanpercentile(v, percentiles)
    return float(lo), float(hi)


def shade(height, pixel_size: float | None = None) -> np.ndarray:
    """Hillshade of a DataArray (its pixel size from the transform) or of an array."""
    if pixel_size is None:
        pixel_size = abs(height.rio.resolution()[0]) if hasattr(height, "rio") else 1.0
    return hillshade(values(height), pixel_size)


def panels(images: dict, ncols: int | None = None, cmap: str = "gray", vmin=None, vmax=None, label: str = "",
           inset=None, zoom_size: float = 0.42, panel_size: float = 4.0):
    """Images side by side, in one colour range, each with a zoomed inset when ``inset`` is given.

    ``images``: title -> 2-D array (drawn with ``cmap``) or (h, w, 3) RGB. Arrays of another
    size than the first (a low-resolution source) are stretched over the same extent.
    ``inset``: (top, bottom, left, right) as fractions of the image, e.g. (0.2, 0.6, 0.1, 0.4).
    Returns (fig, axes).
    """
    plt = _pyplot()
    arrays = [values(v) if not (np.ndim(v) == 3 and np.shape(v)[-1] == 3) else np.asarray(v) for v in images.values()]
    h, w = arrays[0].shape[:2]
    ncols = ncols or len(arrays)
    nrows = -(-len(arrays) // ncols)
    panel_w = min(panel_size * max(w / h, 0.6), 16 / ncols)  # at most 16 inches across
    panel_h = panel_w * h / w + 0.4  # room for the title
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols + (1.2 if label else 0), panel_h * nrows),
                             squeeze=False, layout="constrained")
    extent = (0, w, h, 0)
    last = None
    for ax, title, img in zip(axes.flat, images, arrays):
        kw = {} if img.ndim == 3 else dict(cmap=cmap, vmin=vmin, vmax=vmax)
        shown = ax.imshow(img, extent=extent, interpolation="nearest", **kw)
        last = shown if img.ndim == 2 else last
        ax.set_title(title)
        ax.set_xticks([]), ax.set_yticks([])
        if inset is not None:
            r0, r1, c0, c1 = inset[0] * h, inset[1] * h, inset[2] * w, inset[3] * w
            # The zoom keeps the region's shape: its box is zoom_size of the panel high.
            width = min(zoom_size * (c1 - c0) / max(r1 - r0, 1e-9) * h / w, 1.0)
            sub = ax.inset_axes([1 - width, 0, width, zoom_size])
            sub.imshow(img, extent=extent, interpolation="nearest", **kw)
            sub.set_xlim(c0, c1), sub.set_ylim(r1, r0)
            sub.set_xticks([]), sub.set_yticks([])
            ax.indicate_inset_zoom(sub, edgecolor="cyan")
    for ax in list(axes.flat)[len(arrays):]:
        ax.set_axis_off()
    if label and last is not None:
        fig.colorbar(last, ax=axes, shrink=0.8, label=label)
    return fig, axes


def tile_grid(ax, out, color: str = "yellow"):
    """Draw a lazy result's tile borders (its dask chunks, one per tile) on an axis in its pixels."""
    rows, cols = out.chunks[-2:]
    for edge in np.cumsum(rows)[:-1]:
        ax.axhline(edge, color=color, lw=1)
    for edge in np.cumsum(cols)[:-1]:
        ax.axvline(edge, color=color, lw=1)
