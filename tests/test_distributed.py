"""Blocks on a dask.distributed LocalCluster: same output as one process, even when a
worker process is killed mid-run."""
import os
import signal
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")

import _fake_models  # noqa: E402
from _fake_models import BlobModel, balls  # noqa: E402

from napari_tower.blocks.run import segment_blocks_iter  # noqa: E402
from napari_tower.config import PredictConfig  # noqa: E402
from napari_tower.io.lazy import LazyImage  # noqa: E402
from napari_tower.io.omezarr import open_labels  # noqa: E402
from napari_tower.progress import run_to_end  # noqa: E402

CFG = PredictConfig(min_size=5, norm_range=(0.0, 1000.0))


def _make_model(delay):  # picklable loader: each worker builds its model once
    return BlobModel(delay)


@pytest.fixture
def cluster():
    import cloudpickle

    # the workers cannot import the tests folder: ship the stand-in model by value
    cloudpickle.register_pickle_by_value(_fake_models)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c, distributed.Client(c) as client:
        yield client
    cloudpickle.unregister_pickle_by_value(_fake_models)
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _image():
    centres = [(y, x) for y in range(12, 160, 26) for x in range(10, 160, 31)]
    truth = balls((160, 160), centres, 7)
    return (truth > 0).astype(np.uint16) * 800 + 20


def _run(tmp_path, name, model, client=None, on_progress=None):
    import functools

    gen = segment_blocks_iter(model if client is None else functools.partial(_make_model, 0.3 if on_progress else 0),
                              LazyImage(_image(), "YX"), tmp_path / name, CFG, block_shape=(40, 40), halo=12,
                              client=client, skip_below=0)
    return np.asarray(open_labels(run_to_end(gen, on_progress)))


@pytest.mark.slow
def test_cluster_matches_one_process_and_survives_a_killed_worker(tmp_path, cluster):
    local = _run(tmp_path, "local.ome.zarr", BlobModel())
    assert local.max() > 20
    assert np.array_equal(_run(tmp_path, "cluster.ome.zarr", None, cluster), local)

    pids = cluster.run(os.getpid)  # worker address -> process id (nannies restart killed workers)
    killed = []

    def kill_one(p):
        if p.step >= 3 and not killed:  # blocks are in flight on both workers
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    t0 = time.monotonic()
    out = _run(tmp_path, "killed.ome.zarr", None, cluster, on_progress=kill_one)
    assert killed, "the run ended before a worker could be killed"
    assert np.array_equal(out, local)
    assert time.monotonic() - t0 < 120
    assert not (tmp_path / "killed.ome.zarr.part").exists()
