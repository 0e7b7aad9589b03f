"""Read microscopy files and write label images.

TIFF and OME-TIFF are read with tifffile, PNG/JPEG/BMP with imageio (via scikit-image),
anything else with bioio (the maintained successor of aicsimageio; install its reader
plugins, e.g. ``bioio-czi`` or ``bioio-nd2``, for other formats).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .axes import VALID

TIFF = {".tif", ".tiff"}
PLAIN = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
SUPPORTED_HINT = "tif, ome.tif, png, jpg, bmp, or a format a bioio plugin reads"


def _tiff_axes(axes: str, shape: tuple[int, ...]) -> str | None:
    axes = axes.upper().replace("S", "C")
    # ImageJ/OME-TIFF name their axes; unknown letters (Q, I) leave the guess to shape
    if axes in VALID:
        return axes
    return None


IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".czi", ".nd2", ".lif", ".zarr"}


def expand_image_paths(paths) -> list[Path]:
    """Files as given; folders contribute their image files (sorted, not recursive); a
    ``.zarr`` folder is one image."""
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir() and p.suffix.lower() != ".zarr":
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def read_image(path: str | Path) -> tuple[np.ndarray, str | None]:
    """Return (array, axes or None when the file does not say) for one image file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                data = series.asarray()
                axes = _tiff_axes(series.axes, data.shape)
            squeezed = np.squeeze(data)
            if squeezed.shape != data.shape:
                axes = None if axes is None else "".join(a for a, n in zip(axes, data.shape) if n != 1)
                data = squeezed
            return data, axes if axes in VALID else None
        if suffix in PLAIN:
            from skimage.io import imread

            data = imread(path)
            if data.ndim == 3 and data.shape[-1] in (3, 4):
                return data, "YXC"
            return data, None
        from bioio import BioImage

        img = BioImage(path)
        data = np.squeeze(img.data)  # TCZYX
        return data, None
    except InputError:
        raise
    except Exception as e:  # readers raise many kinds for damaged or foreign files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot read as an image ({SUPPORTED_HINT}): {msg}") from None


def _atomic(path: Path, write) -> Path:
    """``write(tmp)`` into ``<path>.part``, then rename: a final name only ever holds a whole file.
    A failed write (a full disk, say) removes its ``.part`` and raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_labels(path: str | Path, labels: np.ndarray) -> Path:
    import tifffile

    return _atomic(Path(path), lambda tmp: tifffile.imwrite(tmp, labels, compression="zlib"))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic(Path(path), lambda tmp: tmp.write_text(text))


def output_stem(path: Path) -> str:
    name = path.name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem
