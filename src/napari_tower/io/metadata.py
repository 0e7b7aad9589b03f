"""Voxel size (Z, Y, X) from an image file's metadata.

Each format goes to the cheapest reader that knows it: tifffile for ImageJ hyperstack TIFF
and OME-TIFF, the group's JSON attributes for OME-Zarr (NGFF 0.4 and 0.5) and plain zarr,
nothing at all for PNG/JPEG/BMP/GIF (they have no voxel size), and bioio's
``physical_pixel_sizes`` only for the formats left (CZI, ND2, LIF, ...). bioio's plugin
discovery costs about a second per call, so it runs once per process. Sizes are in the
file's own unit (usually micrometres); ``None`` when the file says nothing about its voxel size.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

VoxelSize = tuple[float, float, float]

# formats that store no physical pixel size (PNG's pHYs is print dpi, not a microscope's)
NO_VOXEL_SIZE = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def _positive(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 and f == f and f != float("inf") else None


def _tiff_resolution(tag) -> float | None:
    """Pixel size from an X/YResolution tag (pixels per unit as a rational)."""
    if tag is None:
        return None
    v = tag.value
    try:
        num, den = (v if isinstance(v, tuple) else (v, 1))[:2]
        ppu = float(num) / float(den)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return _positive(1.0 / ppu) if ppu > 0 else None


def _ome_xml_size(xml: str) -> VoxelSize | None:
    """PhysicalSizeZ/Y/X of the first Pixels element of an OME-XML document."""
    m = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
    if not m:
        return None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(0)))
    z, y, x = (_positive(attrs.get(f"PhysicalSize{a}")) for a in "ZYX")
    if y is None and x is None and z is None:
        return None
    return (z or y or x or 1.0, y or x or 1.0, x or y or 1.0)


def _tiff_voxel_size(path: Path) -> VoxelSize | None:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        if tf.is_ome and tf.ome_metadata:
            size = _ome_xml_size(tf.ome_metadata)
            if size is not None:
                return size
        page = tf.pages.first
        x = _tiff_resolution(page.tags.get("XResolution"))
        y = _tiff_resolution(page.tags.get("YResolution"))
        unit = page.tags.get("ResolutionUnit")
        if x == 1.0 and y == 1.0 and (unit is None or int(unit.value) == 1):
            x = y = None  # tifffile's and many writers' default 1/1 without a unit: no information
        z = None
        if tf.is_imagej and tf.imagej_metadata:
            z = _positive(tf.imagej_metadata.get("spacing"))
        if x is None and y is None and z is None:
            return None
        return (z or y or x or 1.0, y or x or 1.0, x or y or 1.0)


def _zarr_attrs(path: Path) -> dict:
    """Group attributes of a zarr v2 (.zattrs) or v3 (zarr.json) folder, no zarr import needed."""
    v3 = path / "zarr.json"
    if v3.is_file():
        return json.loads(v3.read_text()).get("attributes", {}) or {}
    v2 = path / ".zattrs"
    if v2.is_file():
        return json.loads(v2.read_text())
    return {}


def ngff_multiscales(path: Path) -> dict | None:
    """The first ``multiscales`` entry of an OME-Zarr group (NGFF 0.4: top level; 0.5: under ``ome``)."""
    attrs = _zarr_attrs(path)
    ms = attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")
    return ms[0] if ms else None


def ngff_axes(ms: dict) -> str | None:
    """Axis letters (upper case) of an NGFF multiscales entry; ``None`` when not named."""
    axes = ms.get("axes")
    if not axes:
        return None
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    return "".join(n[:1].upper() for n in names)


def ngff_scale(ms: dict) -> list[float] | None:
    """Scale of dataset 0, composed with the multiscales-wide transformation when present."""
    def scale_of(transforms) -> list[float] | None:
        for t in transforms or []:
            if t.get("type") == "scale" and "scale" in t:
                return [float(s) for s in t["scale"]]
        return None

    datasets = ms.get("datasets") or []
    s = scale_of(datasets[0].get("coordinateTransformations")) if datasets else None
    outer = scale_of(ms.get("coordinateTransformations"))
    if s is not None and outer is not None and len(outer) == len(s):
        s = [a * b for a, b in zip(s, outer)]
    return s or outer


def _zarr_voxel_size(path: Path) -> VoxelSize | None:
    ms = ngff_multiscales(path)
    if ms is None:
        return None
    scale, axes = ngff_scale(ms), ngff_axes(ms)
    if not scale:
        return None
    if axes is None or len(axes) != len(scale):  # NGFF < 0.4 had no axes: trailing dims are (Z)YX
        axes = "TCZYX"[-len(scale):]
    by_axis = dict(zip(axes, scale))
    z, y, x = (_positive(by_axis.get(a)) for a in "ZYX")
    if y is None and x is None:
        return None
    return (z or y or x or 1.0, y or x or 1.0, x or y or 1.0)


def _bioio_voxel_size(path: Path) -> VoxelSize | None:
    from bioio import BioImage

    # bioio scans its installed plugins on every BioImage() by default; its module-level cache
    # makes that once per process
    pps = BioImage(path, use_plugin_cache=True).physical_pixel_sizes
    z, y, x = (_positive(v) for v in (pps.Z, pps.Y, pps.X))
    if y is None and x is None and z is None:
        return None
    return (z or y or x or 1.0, y or x or 1.0, x or y or 1.0)


def voxel_size(path) -> VoxelSize | None:
    """Physical (Z, Y, X) voxel size stored in ``path``, or ``None`` when it holds none.

    Sources, in order: OME-XML ``PhysicalSizeZ/Y/X`` (OME-TIFF); ImageJ hyperstack TIFF
    (``spacing`` for Z, X/YResolution tags for Y/X); OME-Zarr ``multiscales`` scale of dataset
    0 (NGFF 0.4 and 0.5); none for PNG/JPEG/BMP/GIF; bioio's ``physical_pixel_sizes`` for
    other formats. A missing axis
    Z (a 2D image, or a stack whose file names only the pixel size) takes the Y size: a stack
    is assumed isotropic unless its file says otherwise. Unreadable files give ``None`` rather than an error:
    the voxel size is a hint, reading the pixels reports real problems.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            return _zarr_voxel_size(path)
        if suffix in (".tif", ".tiff"):
            return _tiff_voxel_size(path)
        if suffix in NO_VOXEL_SIZE:
            return None
        return _bioio_voxel_size(path)
    except Exception:  # readers raise many kinds for foreign files; the size is optional
        return None
