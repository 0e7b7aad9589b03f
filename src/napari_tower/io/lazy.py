"""Open images of any size lazily, as dask arrays, with their axes and voxel size.

OME-Zarr (NGFF 0.4 and 0.5: the first multiscales dataset, full resolution) and plain zarr
folders through ``zarr``, TIFF/OME-TIFF through ``tifffile``'s zarr store (pages are read
when a block asks for them), anything else through bioio's ``dask_data``. Axes of size 1
(e.g. T and C of a TCZYX OME-Zarr) are dropped. A ``LazyImage`` pickles as its path, so a
dask worker re-opens the file instead of receiving pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .axes import VALID
from .metadata import ngff_axes, ngff_multiscales, voxel_size

# inputs above this many bytes are segmented block by block with streamed output
LARGE_BYTES = 512 * 2**20


@dataclass
class LazyImage:
    data: object  # a dask array (or any array-like indexed per block)
    axes: str | None  # e.g. "ZYX"; None when the file does not say
    voxel_size: tuple[float, float, float] | None = None
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.data.dtype).itemsize

    def read(self, slices) -> np.ndarray:
        """The pixels of one block as numpy (the only place pixels are read).

        Raises
        ------
        InputError
            A chunk is corrupt or gone (e.g. a zstd or blosc decode error, a deleted file): the
            message names the file and, for chunked data, the first chunk that failed.
        """
        try:
            return self._read(slices)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 (codecs and stores raise RuntimeError, ValueError, OSError...)
            where = self.path if self.path is not None else "the image"
            chunk = self._bad_chunk(slices)
            at = f" in chunk {chunk}" if chunk is not None else ""
            where_file = _chunk_file(self.path, chunk) if chunk is not None and self.path is not None else None
            at += f" ({where_file})" if where_file is not None else ""
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"{where}: cannot read the pixels{at}: {msg} (the file is damaged or was "
                             "moved; re-export or restore it)") from None

    def _read(self, slices) -> np.ndarray:
        block = self.data[tuple(slices)]
        if hasattr(block, "compute"):
            block = block.compute(scheduler="synchronous")  # inside a dask task: no nested scheduler
        return np.asarray(block)

    def _bad_chunk(self, slices):
        """The grid index of the first chunk under ``slices`` that fails to read, when the data is
        chunked (dask); None otherwise. Read only after a failure, one chunk at a time."""
        chunks = getattr(self.data, "chunks", None)
        if not chunks or not isinstance(chunks[0], tuple):
            return None
        import itertools

        edges = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
        ranges = []
        for ax, e in enumerate(edges):
            sl = slices[ax] if ax < len(slices) else slice(None)
            if isinstance(sl, (int, np.integer)):
                start, stop = int(sl), int(sl) + 1
            else:
                start, stop, _ = sl.indices(int(e[-1]))
            first = int(np.searchsorted(e, start, side="right")) - 1
            last = int(np.searchsorted(e, max(stop - 1, start), side="right")) - 1
            ranges.append(range(max(first, 0), min(last, len(e) - 2) + 1))
        for idx in itertools.product(*ranges):
            try:
                self.data.blocks[idx].compute(scheduler="synchronous")
            except Exception:  # noqa: BLE001
                return idx
        return None

    def __reduce__(self):
        if self.path is not None:  # workers re-open the file: metadata only crosses the wire
            return (open_lazy, (str(self.path),))
        return (LazyImage, (self.data, self.axes, self.voxel_size, None))


def is_zarr(path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "zarr.json").is_file() or (p / ".zattrs").is_file() or (p / ".zarray").is_file()
                           or (p / ".zgroup").is_file())


def _squeeze(data, axes: str | None):
    """Drop axes of size 1 (dask slicing, nothing is read)."""
    keep = [i for i, n in enumerate(data.shape) if n != 1]
    if len(keep) == data.ndim:
        return data, axes
    index = tuple(slice(None) if n != 1 else 0 for n in data.shape)
    data = data[index]
    if axes is not None:
        axes = "".join(axes[i] for i in keep)
    return data, axes


def _valid(axes: str | None) -> str | None:
    if axes is None:
        return None
    axes = axes.upper().replace("S", "C")
    return axes if axes in VALID else None


def _open_zarr(path: Path) -> tuple[object, str | None]:
    import dask.array as da
    import zarr

    node = zarr.open(str(path), mode="r")
    ms = ngff_multiscales(path)
    if ms is not None:
        arr = node[ms["datasets"][0]["path"]]
        return da.from_zarr(arr), ngff_axes(ms)
    if isinstance(node, zarr.Array):
        return da.from_zarr(node), None
    arrays = sorted(node.arrays(), key=lambda kv: kv[0])  # a plain group: its first array
    if not arrays:
        raise InputError(f"{path}: a zarr group without arrays")
    return da.from_zarr(arrays[0][1]), None


def _chunk_file(path: Path, chunk: tuple[int, ...]) -> Path | None:
    """The file holding chunk ``chunk`` (of the squeezed array) of the zarr image at ``path``,
    or None when that cannot be told (not zarr, sharded, unreadable metadata)."""
    try:
        import zarr

        if not is_zarr(path):
            return None
        node = zarr.open(str(path), mode="r")
        ms = ngff_multiscales(path)
        arr = node[ms["datasets"][0]["path"]] if ms else (node if isinstance(node, zarr.Array) else
                                                          sorted(node.arrays(), key=lambda kv: kv[0])[0][1])
        it = iter(chunk)  # axes of size 1 were dropped when opening: their chunk index is 0
        full = tuple(0 if n == 1 else next(it) for n in arr.shape)
        return Path(path) / arr.path / arr.metadata.encode_chunk_key(full)
    except Exception:  # noqa: BLE001 (a courtesy in an error message: never a second error)
        return None


def _open_tiff(path: Path) -> tuple[object, str | None]:
    import dask.array as da
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        axes = series.axes
        store = series.aszarr()  # re-opens the file itself; pages are decoded on access
    return da.from_zarr(zarr.open(store, mode="r")), axes


def _open_bioio(path: Path) -> tuple[object, str | None]:
    from bioio import BioImage

    img = BioImage(path)
    return img.dask_data, "".join(img.dims.order)  # TCZYX


def open_lazy(path) -> LazyImage:
    """Open ``path`` without reading its pixels.

    Raises
    ------
    InputError
        Missing path or a file no reader understands.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        if path.is_dir():
            if not is_zarr(path):
                raise InputError(f"{path}: a folder that is not a zarr store")
            data, axes = _open_zarr(path)
        elif path.suffix.lower() in (".tif", ".tiff"):
            data, axes = _open_tiff(path)
        else:
            data, axes = _open_bioio(path)
    except InputError:
        raise
    except Exception as e:  # readers raise many kinds for damaged or foreign files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot open lazily: {msg}") from None
    data, axes = _squeeze(data, axes)
    return LazyImage(data, _valid(axes), voxel_size(path), path)


def as_lazy(image, axes: str | None = None) -> LazyImage:
    """A LazyImage for a path, a LazyImage, or an in-memory/dask/zarr array."""
    if isinstance(image, LazyImage):
        return image
    if isinstance(image, (str, Path)):
        lazy = open_lazy(image)
    else:
        data = image if hasattr(image, "shape") and hasattr(image, "__getitem__") else np.asarray(image)
        lazy = LazyImage(data, None)
    if axes is not None:
        lazy.axes = axes.upper()
    return lazy


def sample_planes(image: LazyImage, planes: int = 16, max_pixels: int = 4_000_000) -> list[np.ndarray]:
    """Up to ``planes`` evenly spaced planes (a colour axis kept), strided in Y and X to about
    ``max_pixels`` in all: a look at the whole image whose memory stays flat with its size."""
    shape, axes = image.shape, image.axes or ""
    n_lead = len(shape) - 2 - (1 if axes.endswith("C") else 0)
    lead = shape[:n_lead]
    yx = shape[n_lead:n_lead + 2]
    flat_lead = int(np.prod(lead)) if lead else 1
    picks = np.unique(np.linspace(0, flat_lead - 1, min(planes, flat_lead)).round().astype(int))
    step = max(1, int(np.ceil(np.sqrt(np.prod(yx) * len(picks) / max_pixels))))
    samples = []
    for k in picks:
        idx = np.unravel_index(k, lead) if lead else ()
        samples.append(image.read(tuple(int(i) for i in idx) + (slice(None, None, step),) * 2).astype(np.float32))
    return samples


def intensity_range(image: LazyImage, low: float = 1.0, high: float = 99.8, planes: int = 16,
                    max_pixels: int = 4_000_000) -> tuple[float, float]:
    """``low``/``high`` percentiles of the whole image, estimated from :func:`sample_planes`.
    Exact zeros are left out when they fill over 1% of an integer image: that is padding
    (stitched tiles, grids), not signal."""
    values = np.concatenate([s.ravel() for s in sample_planes(image, planes, max_pixels)])
    if not np.isfinite(values).all():
        raise InputError("image contains NaN or infinite values; replace them before segmenting")
    if np.issubdtype(np.dtype(image.data.dtype), np.integer) and (values == 0).mean() > 0.01 and (values > 0).any():
        values = values[values > 0]
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)
