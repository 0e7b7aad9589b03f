"""Labels as OME-Zarr: an NGFF 0.4 image whose first multiscales dataset ("0") holds the
labels, chunked, with the input's voxel size as its scale.

Written into ``<name>.part`` block by block and renamed to its final name only when
complete, so a finished-looking output is never half-written. NGFF 0.4 (zarr format 2) is
what napari-ome-zarr, ome-zarr-py, Fiji's MoBIE/N5 readers and bioio all read.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def ngff_attrs(axes: str, voxel_size, name: str) -> dict:
    scale = []
    for a in axes:
        if voxel_size is not None and a in "ZYX":
            scale.append(float(voxel_size["ZYX".index(a)]))
        else:
            scale.append(1.0)
    ax = []
    for a in axes.lower():
        entry = {"name": a, "type": AXIS_TYPES[a.upper()]}
        if voxel_size is not None and a in "zyx":
            entry["unit"] = "micrometer"
        ax.append(entry)
    return {"multiscales": [{
        "version": "0.4", "name": name, "axes": ax,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }]}


def create_labels(part: Path, shape, chunks, axes: str, voxel_size=None, dtype=np.uint32, name: str = "labels",
                  extra_arrays: tuple[str, ...] = ()):
    """Create (or, for a resume, open) the group in ``part``; returns the label array and
    the extra scratch arrays of the same shape and chunks (removed by :func:`finish`)."""
    import zarr

    part.parent.mkdir(parents=True, exist_ok=True)
    if (part / ".zgroup").is_file():
        g = zarr.open_group(str(part), mode="r+")
        return g["0"], [g[n] for n in extra_arrays]
    g = zarr.open_group(str(part), mode="w", zarr_format=2)
    g.attrs.update(ngff_attrs(axes, voxel_size, name))
    arrays = []
    for n in ("0",) + tuple(extra_arrays):
        # dimension_separator "/" is what NGFF 0.4 asks for
        arrays.append(g.create_array(n, shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, fill_value=0,
                                     chunk_key_encoding={"name": "v2", "separator": "/"}))
    return arrays[0], arrays[1:]


def finish(part: Path, final: Path, scratch: tuple[str, ...] = ()) -> Path:
    """Remove the scratch arrays/folders and rename ``part`` to ``final`` (replacing it)."""
    import zarr

    for n in scratch:
        p = part / n
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    zarr.consolidate_metadata(str(part), zarr_format=2)
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    part.rename(final)
    return final


def write_labels_zarr(path, labels: np.ndarray, axes: str, voxel_size=None, chunks=None) -> Path:
    """Write an in-memory label array as OME-Zarr (``.part`` then rename)."""
    final = Path(path)
    part = part_path(final)
    shutil.rmtree(part, ignore_errors=True)
    if chunks is None:
        chunks = tuple(min(n, 16 if a in "TZ" else 256) for n, a in zip(labels.shape, axes))
    arr, _ = create_labels(part, labels.shape, chunks, axes, voxel_size, dtype=np.uint32)
    arr[...] = labels.astype(np.uint32, copy=False)
    return finish(part, final)


def open_labels(path):
    """The labels of an OME-Zarr written here (or any NGFF image) as a lazy dask array."""
    import dask.array as da
    import zarr

    return da.from_zarr(zarr.open_group(str(path), mode="r")["0"])
