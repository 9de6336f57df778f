"""The last stage of a run: the lazy mosaic as a georeferenced DataArray on the output grid."""
from __future__ import annotations

import xarray as xr

from .io import output_nodata


def output(data, source, co, spec, tags: dict, input_files) -> xr.DataArray:
    """``data`` (H, W) with the output grid's coordinates, CRS and transform, the output nodata, the source
    band's attributes and the run's tags. ``encoding`` keeps the files read (which a write may not
    replace) and the alignment applied (which the other bands of a multi-band run reuse)."""
    import rioxarray  # noqa: F401  (registers .rio)
    from odc.geo.xr import xr_coords

    coords = {k: v for k, v in xr_coords(co.hr_box, dims=("y", "x")).items() if k in ("y", "x")}
    out = xr.DataArray(data, dims=("y", "x"), coords=coords).rename(source.name)
    out = out.rio.write_crs(source.rio.crs).rio.write_transform(co.hr_box.affine)
    out = out.rio.write_nodata(output_nodata(co.src.encoding["nodata"], spec.dst_nodata), encoded=True)
    out.attrs.update(co.src.attrs)
    out.attrs.update(tags)
    out.encoding["geosr_inputs"] = input_files
    out.encoding["geosr_alignment"] = co.alignment
    return out


def stack_bands(outs: list, numbers: list) -> xr.DataArray:
    """The runs of several bands as one (band, y, x) result with the first band's grid and tags."""
    first = outs[0]
    result = xr.concat(outs, dim="band", combine_attrs="override").assign_coords(band=numbers)
    result.attrs = {**first.attrs, "geosr_band": ",".join(map(str, numbers))}
    for key in first.attrs:  # each band's own self-check, and its own sensor model where psf="auto" differs
        values = [str(o.attrs.get(key, "")) for o in outs]
        if key.startswith("geosr_selfcheck_"):
            result.attrs[key] = ",".join(values)
        elif key.startswith("geosr_psf") and len(set(values)) > 1:
            result.attrs[key] = " | ".join(values)
    names = [o.attrs.get("long_name") for o in outs]
    if any(names):
        result.attrs["long_name"] = tuple(str(n or "") for n in names)
    result = result.rio.write_crs(first.rio.crs).rio.write_transform(first.rio.transform())
    result = result.rio.write_nodata(first.rio.encoded_nodata, encoded=True)
    result.encoding["geosr_inputs"] = first.encoding.get("geosr_inputs", ())
    result.encoding["geosr_selfcheck"] = [c for o in outs for c in o.encoding.get("geosr_selfcheck", ())]
    return result
