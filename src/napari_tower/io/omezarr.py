"""Labels as OME-Zarr: an NGFF 0.4 image whose first multiscales dataset ("0") holds the
labels, chunked, with the input's voxel size as its scale.

Written into ``<name>.part`` block by block and renamed to its final name only when
complete, so a finished-looking output is never half-written. NGFF 0.4 (zarr format 2) is
what napari-ome-zarr, ome-zarr-py, Fiji's MoBIE/N5 readers and bioio all read.

On request the labels go inside the input OME-Zarr instead, as ``INPUT/labels/<name>`` (an
NGFF "image-label" listed in ``INPUT/labels``), in the input's own NGFF version, so that
viewers open them together with the image.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def _zarr_format(version: str) -> int:
    return 3 if version == "0.5" else 2


def _ome(attrs: dict, version: str) -> dict:
    """NGFF metadata as the version stores it: top level in 0.4, under "ome" in 0.5."""
    if version == "0.5":
        for v in attrs.values():
            for entry in v if isinstance(v, list) else [v]:
                entry.pop("version", None)
        return {"ome": {"version": "0.5", **attrs}}
    return attrs


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
                  extra_arrays: tuple[str, ...] = (), version: str = "0.4"):
    """Create (or, for a resume, open) the group in ``part``; returns the label array and
    the extra scratch arrays of the same shape and chunks (removed by :func:`finish`)."""
    import zarr

    part.parent.mkdir(parents=True, exist_ok=True)
    if (part / ".zgroup").is_file() or (part / "zarr.json").is_file():
        g = zarr.open_group(str(part), mode="r+")
        return g["0"], [g[n] for n in extra_arrays]
    g = zarr.open_group(str(part), mode="w", zarr_format=_zarr_format(version))
    g.attrs.update(_ome(ngff_attrs(axes, voxel_size, name), version))
    # dimension_separator "/" is what NGFF 0.4 asks for (zarr v3's default key encoding has it)
    keys = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if version != "0.5" else {}
    arrays = [g.create_array(n, shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, fill_value=0, **keys)
              for n in ("0",) + tuple(extra_arrays)]
    return arrays[0], arrays[1:]


def finish(part: Path, final: Path, scratch: tuple[str, ...] = (), version: str = "0.4") -> Path:
    """Remove the scratch arrays/folders and rename ``part`` to ``final`` (replacing it)."""
    import zarr

    for n in scratch:
        p = part / n
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if version != "0.5":  # v3 keeps its metadata beside the arrays; nothing to gather
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


def labels_target(image_path, name: str) -> tuple[Path, str]:
    """Where labels called ``name`` go inside the OME-Zarr image ``image_path``, and the
    image's NGFF version ("0.4" or "0.5"), which the labels must share."""
    from ..errors import InputError
    from .metadata import _zarr_attrs

    image_path = Path(image_path)
    if not name or any(c in name for c in '/\\') or name.startswith(".") or name.endswith(".part"):
        raise InputError(f"{name!r} cannot name a labels group (use letters, digits, - or _)")
    attrs = _zarr_attrs(image_path) if image_path.is_dir() else {}
    if not (attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")):
        raise InputError(f"{image_path}: labels can be written into an OME-Zarr image only (no NGFF multiscales here)")
    return image_path / "labels" / name, "0.5" if "ome" in attrs else "0.4"


def register_labels(image_path, name: str, version: str) -> None:
    """Declare ``INPUT/labels/<name>`` (already complete) as an NGFF image-label of the image."""
    import zarr

    image_path = Path(image_path)
    label = zarr.open_group(str(image_path / "labels" / name), mode="r+")
    if version == "0.5":
        label.attrs["ome"] = {**label.attrs["ome"], "image-label": {"source": {"image": "../../"}}}
    else:
        label.attrs["image-label"] = {"version": "0.4", "source": {"image": "../../"}}
    group = zarr.open_group(str(image_path / "labels"), mode="a", zarr_format=_zarr_format(version))
    listed = (group.attrs.get("ome", {}) if version == "0.5" else group.attrs).get("labels", [])
    listed = list(listed) + ([name] if name not in listed else [])
    group.attrs.update({"ome": {"version": "0.5", "labels": listed}} if version == "0.5" else {"labels": listed})
    if (image_path / ".zmetadata").is_file():  # keep a consolidated image's index truthful
        zarr.consolidate_metadata(str(image_path), zarr_format=2)
