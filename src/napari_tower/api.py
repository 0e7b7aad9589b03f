"""The public Python API: ``load_model``, ``segment``, ``segment_to``, ``finetune``, ``export``...

Nothing here imports Qt or napari; the widget, the CLI and notebooks all call these. The work
itself lives one layer down (``pipeline.py``, ``predict/``, ``blocks/``, ``train/``, ``ssl/``,
``sharing/``); nothing below imports this module back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import InputError
from .pipeline import ModelCache, Segmented, segment_to_iter
from .predict.tower_model import TowerModel, list_models, predict_config
from .predict.tower_model import choose_model as _choose_model
from .predict.tower_model import load_model as _load_model
from .progress import Progress, run_to_end

__all__ = ["ModelCache", "Segmented", "TowerModel", "choose_model", "cluster_client", "list_models", "load_model", "output_folder",
           "predict_config", "segment", "segment_iter", "segment_to", "segment_to_iter", "segment_blocks", "segment_blocks_iter",
           "track", "finetune", "finetune_iter", "pretrain", "pretrain_iter", "export", "export_iter"]


def load_model(model: str | os.PathLike | TowerModel = "default", device: str = "auto") -> TowerModel:
    """Load a model by name (bundled or saved user model) or from a model directory.

    Parameters
    ----------
    model : str or path
        ``"default"``, another name from :func:`list_models`, a directory holding
        ``weights.safetensors`` and ``card.json``, or a ``.zip``: napari-tower's model zip or a
        bioimage.io package made by :func:`export` (its attached safetensors weights and card are
        used, so the labels are the same as the source model's).
    device : {"auto", "cpu", "cuda", "mps"}
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    napari_tower.errors.ModelError
        Unknown name, missing or corrupt weights (sha256 mismatch), unavailable device, or a zip
        that napari-tower did not make (e.g. a bioimage.io package from another tool).
    """
    return _load_model(model, device)


def choose_model(image, axes: str | None = None) -> str:
    """The bundled model that ``model="auto"`` (the default) uses for ``image``.

    ``"nuclei-fluo"`` (the fluorescence specialist) for 2D images and movies that are single
    channel with a dark background, ``"default"`` (the general model) for stains,
    brightfield and Z stacks. Decided once per image from a sample of its planes.
    """
    return _choose_model(image, axes)


def cluster_client(scheduler: str | None = None, scheduler_file: str | None = None, workers: int | None = None):
    """A context manager giving a ``distributed.Client`` (a scheduler address, its JSON file, or
    ``workers`` local processes), closed on exit; None when none is given. Pass it as ``client=``."""
    from .blocks.cluster import cluster_client as _cluster_client

    return _cluster_client(scheduler, scheduler_file, workers)


def output_folder(path: str | os.PathLike) -> Path:
    """Create the output folder, or raise :class:`~napari_tower.errors.OutputError` with one line
    saying why it cannot be (a file in its path, no permission): check it once before a batch."""
    from .io.output_errors import prepare_folder

    return prepare_folder(path)


def segment_to(source, output=None, model="auto", device: str = "auto", axes: str | None = None,
               **options) -> Segmented:
    """Segment a file or an array and write its labels: the one path from reading to written labels.

    It reads the file's axes and voxel size, picks the model under ``"auto"``, segments the image
    whole (labels to ``OUTPUT/<name>.tif``) or block by block (``OUTPUT/<name>.ome.zarr``; zarr
    inputs, dask arrays, inputs over 512 MiB, ``output_format="zarr"`` or a ``client``), and links
    movies through time with ``track=True``. See :func:`napari_tower.pipeline.segment_to_iter`
    for every option; :func:`segment_to_iter` is the same as a generator of Progress.

    Returns
    -------
    Segmented
        The labels (in memory, or lazily opened from the OME-Zarr), the written path, the
        number of objects where known, and the model's name.
    """
    return run_to_end(segment_to_iter(source, output, model, device, axes, **options))


def segment_iter(
    image,
    model: str | os.PathLike | TowerModel = "auto",
    device: str = "auto",
    axes: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    **options,
) -> Iterator[Progress]:
    """Like :func:`segment`, as a generator of :class:`~napari_tower.progress.Progress`.

    The final report carries the labels in ``result``. ``should_stop`` is polled between
    planes; when it returns True, :class:`~napari_tower.errors.Cancelled` is raised.
    """
    from .model.choice import model_for_objects
    from .pipeline import CELLS_INSTEAD, segment_judged

    objects = options.pop("objects", "auto")
    model = model_for_objects(model, objects)
    m, labels, fit, switched = yield from segment_judged(ModelCache(device), model, image, axes, objects, should_stop,
                                                         **options)
    message = CELLS_INSTEAD if switched else (None if fit.ok else f"model {m.name}: {fit.message}")
    if message:
        import warnings

        from .errors import FitWarning

        warnings.warn(message, FitWarning, stacklevel=3)
    yield Progress(1, 1, "done", result=labels)


def segment(
    image,
    model: str | os.PathLike | TowerModel = "auto",
    device: str = "auto",
    axes: str | None = None,
    **options,
) -> np.ndarray:
    """Instance-segment nuclei in a 2D image, an RGB stain, a 2D+t movie or a 3D stack.

    Parameters
    ----------
    image : array-like
        ``(Y, X)``, ``(Y, X, 3|4)`` RGB(A), ``(Z|T, Y, X)`` or ``(T, Z, Y, X)``; any
        numeric dtype. Large images are processed in overlapping tiles.
    model : str, path or TowerModel
        ``"auto"`` (the bundled ``"nuclei-fluo"`` for 2D fluorescence, else ``"default"``;
        see :func:`choose_model`; a result that looks like specks is segmented again with
        ``"cells"`` when that result fits, with a FitWarning saying so), a name from
        :func:`list_models` (``"cells"`` for whole cells), a model directory, or a model from
        :func:`load_model`.
    device : {"auto", "cpu", "cuda", "mps"}
    axes : str, optional
        e.g. ``"YX"``, ``"YXC"``, ``"ZYX"``, ``"TYX"``, ``"TZYX"``. Guessed when omitted
        (a 3D array without colour axis is taken as a Z stack; pass ``"TYX"`` for movies).
    **options
        ``objects`` ("auto", "nuclei" or "cells", with ``model="auto"``: "nuclei" keeps the
        nuclei models without the cells fallback, "cells" takes the ``cells`` model),
        ``prob_threshold``, ``split_depth`` (lower splits touching objects more),
        ``nonconvex_split_depth`` (a second, shallower split of objects that are not convex;
        0 = off), ``seed_threshold``, ``min_size``, ``tile``, ``overlap``,
        ``precision`` ("auto" or "fp32"), ``scale`` (a resize factor, or "auto": a second
        pass, resized so that they are ~20 px across, when the objects found are under 14 or
        over 30 px; the nuclei models' setting), ``tta`` (average over the four 90-degree rotations, 4x slower),
        ``stitch_threshold``; for Z stacks ``voxel_size=(z, y, x)`` (Z is resampled to the XY
        pixel size; default isotropic), ``z_assembly`` ("3d": the volume as a whole, from the
        maps of its XY, XZ and YZ planes; "stitch": XY planes linked by overlap),
        ``views_3d`` ("all" or "xy"), ``min_volume_fraction``; for movies ``track=True``
        (ids kept through time, see :func:`track`). See
        :class:`~napari_tower.config.PredictConfig`; the model card's values otherwise.

    Returns
    -------
    numpy.ndarray
        Integer instance labels, 0 = background, with the image's shape minus the colour
        axis. Z stacks get 3D objects; movies get per-frame objects with unique ids.

    Raises
    ------
    napari_tower.errors.InputError
        Unsupported shape or axes, NaN/inf values, non-numeric data.
    napari_tower.errors.ModelError
        The model cannot be found or read, or the device is unavailable.
    """
    return run_to_end(segment_iter(image, model, device, axes, **options))


def segment_blocks_iter(
    image,
    output: str | os.PathLike,
    model: str | os.PathLike | TowerModel = "auto",
    device: str = "auto",
    axes: str | None = None,
    client=None,
    block_size=None,
    halo=None,
    resume: bool = False,
    should_stop: Callable[[], bool] | None = None,
    skip_below: float = 0.05,
    labels_group: str | None = None,
    **options,
) -> Iterator[Progress]:
    """Like :func:`segment_blocks`, as a generator of Progress (one report per block)."""
    from .pipeline import blocks_iter

    yield from blocks_iter(image, output, model, device, axes, client, block_size, halo, resume, should_stop,
                           skip_below, labels_group, **options)


def segment_blocks(image, output: str | os.PathLike, model="auto", device: str = "auto", axes: str | None = None,
                   client=None, **options) -> Path:
    """Segment an image of any size block by block into the OME-Zarr ``output``.

    Parameters
    ----------
    image : path, array, dask array or zarr array
        A file or ``.zarr`` folder (opened lazily, see :func:`napari_tower.io.lazy.open_lazy`)
        or an array; single channel, axes YX, ZYX, TYX or TZYX.
    output : path
        The ``.ome.zarr`` folder to write (written as ``output.part``, renamed when done);
        ignored with ``labels_group``.
    client : distributed.Client, optional
        Run the blocks as tasks on this dask cluster; each worker loads the model once.
        Without one, blocks run one after another in this process.
    **options
        ``block_size`` and ``halo`` (per spatial axis, e.g. ``(64, 512, 512)``), ``resume``
        (keep blocks an interrupted run already wrote), ``skip_below``, ``labels_group``
        (a name: write into the OME-Zarr input's own ``labels/<name>`` instead), and everything
        :func:`segment` takes.

    Returns
    -------
    pathlib.Path
        The output folder; ``napari_tower.io.omezarr.open_labels(path)`` opens it lazily.
    """
    return run_to_end(segment_blocks_iter(image, output, model, device, axes, client, **options))


def track(labels) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Link the objects of a label movie ``(T, Y, X)`` or ``(T, Z, Y, X)`` through time.

    Each frame's objects are matched to the previous frame's by optimal assignment on IoU:
    a matched object keeps its id, a new object gets a new id, and a division gives both
    daughters new ids.

    Returns
    -------
    labels : numpy.ndarray
        uint32 labels, same shape, ids persistent through time.
    graph : dict
        ``{daughter_id: [mother_id]}`` for every division, as napari's Tracks layer takes it
        (``napari_tower.predict.tracking.tracks_data(labels)`` gives the Tracks layer data).
    """
    from .predict.tracking import track as _track

    labels = np.asarray(labels)
    if labels.ndim not in (3, 4):
        raise InputError(f"track needs a (T, Y, X) or (T, Z, Y, X) label movie, got shape {labels.shape}")
    return _track(labels)


def finetune_iter(images, labels, base="auto", **kwargs) -> Iterator[Progress]:
    """Like :func:`finetune`, as a generator of Progress (loss, validation scores).

    The final report's ``result`` is the saved model directory. ``should_stop`` (a
    callable) ends training early; the model trained so far is still saved.
    """
    from .train.finetune import finetune_iter as _finetune_iter

    return _finetune_iter(images, labels, base=base, **kwargs)


def finetune(
    images,
    labels,
    base: str | os.PathLike = "auto",
    sparse: bool = False,
    max_minutes: float | None = 3.0,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    name: str | None = None,
    output: str | os.PathLike | None = None,
    **kwargs,
) -> Path:
    """Fine-tune a model on a few annotated images and save it.

    Parameters
    ----------
    images, labels : array or list of arrays
        Images and their annotations, same shapes (labels without the colour axis).
        Stacks and movies are fine: planes holding any annotation are used.
    base : str or path
        ``"auto"`` (the bundled model that already segments the annotated planes best:
        ``default``, ``nuclei-fluo`` or ``cells``), ``"none"`` (random initialisation),
        ``"tower"`` (pretrained TOWER weights), a bundled or saved model name, or a directory.
    sparse : bool
        False: dense instance labels (0 = background). True: 0 = not annotated (ignored),
        1 = background, >= 2 = objects (scribbles, partly annotated images).
    max_minutes, epochs : float, int
        Time budget, or a number of passes over the annotated pixels (deterministic).
    seed : int
    device : {"auto", "cpu", "cuda", "mps"}
    name, output : str, path
        Save to ``output`` if given, else to the user model folder under ``name``.
    **kwargs
        ``validation=(image, labels)`` to keep the best weights on a held-out plane,
        ``axes``, ``lr``, ``batch_size``, ``crop``, ``should_stop``, ``freeze_encoder``
        (None: keep the base's encoder when it already finds >= 0.2 AP@0.5 of the annotated
        objects, train the decoder and heads only), ``scale`` ("auto":
        objects over 40 px across are learnt and segmented downscaled to ~30 px, as
        cellpose does; or a fixed factor, recorded in the model's card).

    Returns
    -------
    pathlib.Path
        The saved model directory; load it with :func:`load_model` or ``--model DIR``.
    """
    return run_to_end(finetune_iter(images, labels, base, sparse=sparse, max_minutes=max_minutes, epochs=epochs,
                                    seed=seed, device=device, name=name, output=output, **kwargs))


def pretrain_iter(images, output: str | os.PathLike, method: str = "tower", max_minutes: float | None = 30.0,
                  max_steps: int | None = None, device: str = "auto", resume: bool = False,
                  should_stop: Callable[[], bool] | None = None, base: str | os.PathLike | None = None,
                  **config) -> Iterator[Progress]:
    """Like :func:`pretrain`, as a generator of Progress; the final ``result`` is the model folder."""
    from .ssl.data import collect_planes
    from .ssl.pretrain import make_config, pretrain_iter as _pretrain_iter

    planes = collect_planes(images if isinstance(images, (list, tuple)) else [images])
    cfg = make_config(method=method, **config)
    return _pretrain_iter(planes, cfg, device, output, max_steps=max_steps, max_minutes=max_minutes,
                          resume=resume, should_stop=should_stop, base=base)


def pretrain(images, output: str | os.PathLike, method: str = "tower", max_minutes: float | None = 30.0,
             max_steps: int | None = None, device: str = "auto", resume: bool = False,
             base: str | os.PathLike | None = None, **config) -> Path:
    """Self-supervised TOWER pretraining on unlabelled images (no annotation needed).

    Parameters
    ----------
    images : list of arrays and/or paths
        2D images, RGB stains, stacks and movies (every plane is a sample); files and folders.
    output : path
        Model folder: checkpoints while running, then ``weights.safetensors`` + ``card.json``.
        Use it as ``base`` in :func:`finetune`.
    method : {"tower", "simclr", "byol"}
    max_minutes, max_steps : budget (the whole run, across resumptions).
    resume : bool
        Continue from the checkpoint in ``output``.
    base : None, "tower", "default" or a model folder
        Start from these weights instead of a random network (None): continuing the bundled
        TOWER pretraining on one's own unlabelled images.
    **config
        :class:`napari_tower.ssl.pretrain.PretrainConfig` fields (``lambda_nce``,
        ``temperature``, ``crop``, ``batch_size``, ``lr``, ``use_proxy``, ``use_nce``,
        ``use_restore``, ``seed``).
    """
    return run_to_end(pretrain_iter(images, output, method, max_minutes, max_steps, device, resume, base=base, **config))


def export_iter(model: str | os.PathLike, path: str | os.PathLike, format: str = "bioimageio", image=None,
                **kwargs) -> Iterator[Progress]:
    """Like :func:`export`, as a generator of Progress; the final ``result`` is the zip path."""
    if format == "zip":
        from .model.weights import export_model

        yield Progress(0, 1, "packing")
        yield Progress(1, 1, "written", result=export_model(model, path))
        return
    if format != "bioimageio":
        raise InputError(f"unknown export format {format!r}: use 'bioimageio' or 'zip'")
    from .sharing.bioimageio import export_bioimageio_iter

    yield from export_bioimageio_iter(model, path, image=image, **kwargs)


def export(model: str | os.PathLike, path: str | os.PathLike, format: str = "bioimageio", image=None,
           progress: Callable[[Progress], None] | None = None, **kwargs) -> Path:
    """Pack a model into one zip to share.

    Parameters
    ----------
    model : str or path
        A model name or folder (as for :func:`load_model`).
    path : path
        The ``.zip`` to write.
    format : {"bioimageio", "zip"}
        ``"bioimageio"``: a bioimage.io model package (model format 0.5) that runs without
        napari-tower (TorchScript, and a PyTorch state dict with the architecture source), with
        the percentile normalisation as preprocessing, test tensors, a cover made from a real
        prediction, a README saying how the output maps become instances, and the card's
        post-processing settings in ``config.napari_tower``. ``"zip"``: napari-tower's own archive.
        Both load back with :func:`load_model` and give the same labels as ``model``.
    image : array, optional
        bioimageio: a 2D gray image for the test tensors and the cover (centre crop up to
        256x256; default: the bundled nuclei sample).
    **kwargs
        bioimageio: ``authors`` (list of names), ``license`` (SPDX), ``name``, ``description``,
        ``check`` (None: run ``bioimageio test`` when bioimageio.core is importable; True: require
        it; False: skip).

    Raises
    ------
    napari_tower.errors.ModelError
        The model cannot be read, or the written package fails ``bioimageio test``.
    """
    return run_to_end(export_iter(model, path, format, image, **kwargs), progress)
