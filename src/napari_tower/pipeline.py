"""One image from reading to written labels: the single path the CLI, the widget and
notebooks share.

``segment_to_iter`` takes a file path or an array (a napari layer's data, numpy or dask) and
makes every decision on the way: the file's axes and voxel size, which bundled model suits
it under ``"auto"``, whole image in memory or block by block into OME-Zarr, this process or
a dask cluster, and where the labels are written. The CLI only parses its flags, calls it
per input and prints what it reports; the widget does the same with a layer.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import InputError
from .predict.tower_model import TowerModel, load_model, pick_model, predict_config
from .progress import Progress


@dataclass
class Segmented:
    """What :func:`segment_to_iter` made; the ``result`` of its last report.

    Attributes
    ----------
    labels : numpy.ndarray or dask array
        In memory for a whole-image run; opened lazily from ``path`` for a block-wise one.
    path : pathlib.Path or None
        The label TIFF or OME-Zarr written (None when nothing was asked to be written).
    objects : int or None
        Number of objects (None for block-wise runs: counting would read every block).
    model : str
        Name of the model that segmented it (the one ``"auto"`` picked).
    tracks : pathlib.Path or None
        The tracks CSV written beside the labels of a linked movie.
    graph : dict or None
        ``{daughter: [mother]}`` of a linked movie.
    warning : str or None
        Why the result is not to be trusted and what to do, when the image does not look like
        what the model knows (:mod:`napari_tower.predict.trust`); None otherwise and for
        block-wise runs.
    """

    labels: object
    path: Path | None
    objects: int | None
    model: str
    tracks: Path | None = None
    graph: dict | None = None
    warning: str | None = None


@dataclass
class ModelCache:
    """Models loaded once and reused across the inputs of a batch (``"auto"`` may pick two)."""

    device: str = "auto"
    loaded: dict = field(default_factory=dict)

    def get(self, model) -> TowerModel:
        if isinstance(model, TowerModel):
            return model
        key = str(model)
        for m in self.loaded.values():  # a model loaded earlier by its folder answers to its name too
            if m.path is not None and (key == str(m.path) or key == m.path.name):
                return m
        if key not in self.loaded:
            self.loaded[key] = load_model(model, self.device)
        return self.loaded[key]

    def preload(self, model, objects: str = "auto") -> TowerModel:
        """Load ``model`` now (for ``"auto"``: both bundled models), so that a broken install or a bad
        name fails once, before any input; returns the model whose defaults validate the options."""
        from .model.choice import AUTO, FLUORESCENCE, GENERAL, model_for_objects

        model = model_for_objects(model, objects)
        if isinstance(model, str) and model == AUTO:
            self.get(FLUORESCENCE)
            return self.get(GENERAL)
        return self.get(model)


def output_stem(path: Path) -> str:
    from .io.files import output_stem as stem

    return stem(Path(path))


def _wants_blocks(path: Path, output_format: str | None, labels_group, client) -> bool:
    """Block by block for zarr inputs, zarr output, a cluster, labels into the input, and
    files over ``io.lazy.LARGE_BYTES``; a whole TIFF otherwise (and always for ``"tif"``)."""
    from .io.lazy import LARGE_BYTES, is_zarr

    zarr_in = is_zarr(path)
    if labels_group:
        if not zarr_in:
            raise InputError(f"{path}: --labels-group writes into an OME-Zarr input, and this is not one")
        return True
    if output_format == "tif" and client is None:
        return False
    if output_format == "zarr" or zarr_in or client is not None:
        return True
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:  # the size from the header; a file tifffile cannot parse is read_image's to report
            with tifffile.TiffFile(path) as tf:
                nbytes = tf.series[0].size * tf.series[0].dtype.itemsize
        except Exception:  # noqa: BLE001
            return False
        return nbytes > LARGE_BYTES
    return False


def blocks_iter(image, output, model="auto", device: str = "auto", axes: str | None = None, client=None,
                block_size=None, halo=None, resume: bool = False, should_stop: Callable[[], bool] | None = None,
                skip_below: float = 0.05, labels_group: str | None = None, models: ModelCache | None = None,
                **options) -> Iterator[Progress]:
    """Block-wise segmentation into the OME-Zarr ``output`` (see :func:`napari_tower.api.segment_blocks`)."""
    from .blocks.run import segment_blocks_iter as _blocks_iter
    from .io.lazy import LazyImage, as_lazy
    from .io.omezarr import labels_target, register_labels

    version = "0.4"
    if labels_group is not None:
        source = image.path if isinstance(image, LazyImage) else image
        if not isinstance(source, (str, os.PathLike)):
            raise InputError("labels_group= writes into an OME-Zarr input: pass the image as its path")
        output, version = labels_target(source, labels_group)
    lazy = as_lazy(image, axes)
    m = (models or ModelCache(device)).get(pick_model(model, lazy, axes))
    cfg = predict_config(m, **options)
    # on a cluster each worker loads the model once, on its own device ("auto": its GPU if it has one)
    ref = m if client is None else functools.partial(load_model, str(m.path), device)
    for p in _blocks_iter(ref, lazy, output, cfg, axes=axes, block_shape=block_size, halo=halo,
                          client=client, resume=resume, should_stop=should_stop, skip_below=skip_below,
                          ngff_version=version):
        if p.result is not None and labels_group is not None:
            register_labels(source, labels_group, version)
        yield p


def segment_to_iter(source, output=None, *args, **kwargs) -> Iterator[Progress]:
    """Segment ``source`` and write its labels; the last report's ``result`` is a :class:`Segmented`.

    Parameters
    ----------
    source : path or array
        An image file or ``.zarr`` folder, or an array (numpy: in memory; dask or zarr: block by block).
    output : path, optional
        The folder for ``<name>.tif`` (whole image) or ``<name>.ome.zarr`` (block by block).
        None: a whole image stays in memory, a block-wise run goes to a new temporary folder.
    model, device, axes
        As for :func:`napari_tower.api.segment`.
    output_format : {None, "tif", "zarr"}
        None: zarr for zarr inputs, lazy arrays, a cluster and files over 512 MiB; tif otherwise.
    client, block_size, halo, resume, labels_group
        As for :func:`napari_tower.api.segment_blocks`.
    track : bool
        Movies: link objects through time (and write ``<name>_tracks.csv`` beside the labels).
    voxel_size : (z, y, x), optional
        Wins over the file's own metadata.
    should_stop : callable, optional
        Polled between planes and blocks; :class:`~napari_tower.errors.Cancelled` when it returns True.
    models : ModelCache, optional
        Reuse models across calls (a batch).
    name : str, optional
        The output's name (default: the input file's name without its extension, else "labels").
    **options
        Everything :func:`napari_tower.api.segment` takes.

    Raises
    ------
    napari_tower.errors.InputError
        The input cannot be read (the file, and the chunk where known, are named).
    napari_tower.errors.OutputError
        The output cannot be written: a file in the folder's path, no permission, a full disk
        (a block-wise run keeps its finished blocks for ``resume=True``).
    """
    from .io.output_errors import prepare_folder

    if output is not None:
        prepare_folder(output)
    if kwargs.get("name") is None:
        kwargs["name"] = output_stem(Path(source)) if isinstance(source, (str, os.PathLike)) else "labels"
    try:
        yield from _segment_to_iter(source, output, *args, **kwargs)
    except OSError as e:
        raise _explained(e, source, output, kwargs["name"], kwargs.get("labels_group")) from None


def _explained(e: OSError, source, output, name: str, labels_group: str | None) -> Exception:
    """The one-line error for an OSError met while segmenting ``source`` into ``output``: an
    :class:`~napari_tower.errors.OutputError` saying what to do, or an InputError for a file
    that is not the output."""
    import errno

    from .io.output_errors import write_error

    if labels_group:  # the labels go inside the input: INPUT/labels/NAME(.part)
        folder, target = Path(source) / "labels", Path(source) / "labels" / labels_group
    elif output is not None:
        folder, target = Path(output), None
    else:  # a block-wise run into a temporary folder (the widget on a dask layer)
        disk = (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC))
        return write_error(e, Path(e.filename or "the temporary folder")) if e.errno in disk else e
    if e.filename and not str(Path(e.filename).absolute()).startswith(str(folder.absolute())):
        return InputError(f"{e.filename}: {e.strerror or e}")  # an input, not the output
    zarr_target = target or folder / f"{name}.ome.zarr"
    part = zarr_target.with_name(zarr_target.name + ".part")
    if part.is_dir():  # block by block: the finished blocks stay for --resume
        done = len([m for m in (part / "_blocks").glob("*.npz") if ".tmp." not in m.name])
        return write_error(e, zarr_target, done)
    return write_error(e, Path(e.filename) if e.filename else folder / f"{name}.tif")


def _segment_to_iter(source, output=None, model="auto", device: str = "auto", axes: str | None = None, *,
                    output_format: str | None = None, client=None, block_size=None, halo=None, resume: bool = False,
                    labels_group: str | None = None, track: bool = False, voxel_size=None,
                    should_stop: Callable[[], bool] | None = None, models: ModelCache | None = None,
                    name: str | None = None, objects: str = "auto", **options) -> Iterator[Progress]:
    from .io.files import read_image, write_labels
    from .model.choice import model_for_objects

    model = model_for_objects(model, objects)
    models = models or ModelCache(device)
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    name = name or (output_stem(path) if path is not None else "labels")
    if path is not None:
        blockwise = _wants_blocks(path, output_format, labels_group, client)
    else:
        blockwise = output_format == "zarr" or client is not None or not isinstance(source, np.ndarray)
    if blockwise:
        from .io.lazy import open_lazy
        from .io.omezarr import open_labels

        image = open_lazy(path) if path is not None else source
        axes = axes or getattr(image, "axes", None)
        if output is None:
            import tempfile

            output = tempfile.mkdtemp(prefix="napari-tower-")
        target = Path(output) / f"{name}.ome.zarr"
        m = models.get(pick_model(model, image if path is None else image, axes))
        yield Progress(0, 1, f"model {m.name}")
        out = None
        for p in blocks_iter(image, target, m, device, axes, client, block_size, halo, resume, should_stop,
                             labels_group=labels_group, models=models, voxel_size=voxel_size, **options):
            if p.result is not None:
                out = p.result
                continue  # the final report below carries the result
            yield p
        yield Progress(1, 1, "done", result=Segmented(open_labels(out), Path(out), None, m.name))
        return

    if path is not None:
        image, file_axes = read_image(path)
        axes = axes or file_axes or ("TYX" if track and image.ndim == 3 else None)
        if voxel_size is None:
            from .io.metadata import voxel_size as file_voxel_size

            voxel_size = file_voxel_size(path)
    else:
        image = source
    m, labels, fit, switched = yield from segment_judged(models, model, image, axes, objects, should_stop,
                                                         voxel_size=voxel_size, **options)
    warning = CELLS_INSTEAD if switched else (fit.message or None)
    graph = tracks = None
    if track:
        if not (axes or "").upper().startswith("T"):
            raise InputError("linking through time needs a time axis: pass axes TYX or TZYX")
        yield Progress(0, 1, "linking objects through time")
        labels, graph, tracks = _linked(labels, Path(output) / f"{name}_tracks.csv" if output is not None else None)
    written = None
    if output is not None:
        written = write_labels(Path(output) / f"{name}.tif", labels)
    yield Progress(1, 1, "done", result=Segmented(labels, written, int(labels.max(initial=0)), m.name, tracks, graph,
                                                 warning))


CELLS_INSTEAD = ("the nuclei model's result did not fit: segmented as whole cells with the cells model "
                 "(--objects nuclei keeps the nuclei model); if the cells are wrong, fine-tune on 2 frames")


def segment_judged(models: ModelCache, model, image, axes, objects: str = "auto", should_stop=None,
                   voxel_size=None, **options):
    """Segment an in-memory image with ``model`` (already through ``model_for_objects``; "auto"
    picks per image) and judge the result. Under model "auto" with objects "auto", a nuclei
    result that does not fit is segmented again with the bundled cells model, which is kept
    when its own result fits. Yields Progress; returns (model, labels, the first model's Fit,
    whether the cells model's labels replaced its own)."""
    from .model.choice import AUTO, CELLS, cells_available
    from .predict.tower_model import is_stained

    cells_fallback = objects == "auto" and isinstance(model, str) and model == AUTO
    m = models.get(pick_model(model, image, axes))
    yield Progress(0, 1, f"model {m.name}")
    vs = None if voxel_size is None else tuple(voxel_size)
    labels, fit = yield from _judged(m, image, axes, predict_config(m, **options, voxel_size=vs), should_stop)
    if fit.ok or not cells_fallback or "cell" in str(m.card.get("task", "")) or not cells_available():
        return m, labels, fit, False
    if is_stained(image, axes):
        # the cells model never saw a stain in colour (its card: DIC, phase, brightfield,
        # fluorescent stains); a doubtful H&E result is better reported than handed to it
        return m, labels, fit, False
    yield Progress(0, 1, "the nuclei model's result does not fit: trying the cells model")
    c = models.get(CELLS)
    c_labels, c_fit = yield from _judged(c, image, axes, predict_config(c, **options, voxel_size=vs), should_stop)
    return (c, c_labels, fit, True) if c_fit.ok else (m, labels, fit, False)


def _judged(m: TowerModel, image, axes, cfg, should_stop):
    """Labels of ``m`` (yielding its Progress, not the final report) and the Fit of them."""
    from .predict.segment import segment_iter
    from .predict.trust import collecting, judge_result

    labels = None
    with collecting() as maps:
        for p in segment_iter(m, image, axes, cfg, should_stop):
            if p.result is None:
                yield p
            else:
                labels = p.result
    return labels, judge_result(m, image, axes, labels, maps)


def _linked(labels: np.ndarray, csv: Path | None):
    """A movie's labels linked through time, its lineage graph, and (when asked) the tracks CSV:
    one row per object and frame, with its parent."""
    from .io.files import atomic_write_text
    from .predict.tracking import track, tracks_data

    labels, graph = track(labels)
    if csv is None:
        return labels, graph, None
    rows = tracks_data(labels)
    cols = ["track_id", "t"] + (["z"] if labels.ndim == 4 else []) + ["y", "x"]
    lines = [",".join(cols + ["parent"])]
    for r in rows:
        parent = graph.get(int(r[0]), [0])[0]
        lines.append(",".join([str(int(r[0])), str(int(r[1]))] + [f"{v:.2f}" for v in r[2:]] + [str(parent)]))
    atomic_write_text(csv, "\n".join(lines) + "\n")
    return labels, graph, csv
