"""Pretraining batches made by worker processes, so that a GPU is not left waiting.

Cutting regions and corrupting views is numpy work on one CPU core: ~80 ms per batch of
32 at crop 128, far longer than a GPU step on this network. With ``workers > 0`` batches
are made ahead by a pool of processes. Batch ``i`` draws from its own random stream,
``default_rng([seed, i])``, so the data do not depend on how many workers there are and a
resumed run continues at its step without saving worker state. (Without workers the
single stream of ``pretrain_iter`` is used, as before.)

Workers are fresh interpreters fed through pipes (``BatchPool``): safe beside CUDA, a Qt
event loop or an unguarded script, on every platform.
"""
from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import ViewSampler
from .proxy import ProxyConfig, corrupt


@dataclass
class BatchMaker:
    """Batch ``i`` -> (views, clean): each ``(2 * batch_size, crop, crop)`` float32.

    Rows ``[:batch_size]`` and ``[batch_size:]`` are view 1 and view 2 of the same regions;
    ``clean`` holds them before corruption (the restoration target). Without ``view_cfg``
    the views are the clean crops.
    """

    planes: Sequence[np.ndarray]
    crop: int
    batch_size: int
    seed: int
    independent_crops: bool
    view_cfg: ProxyConfig | None

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(index)])
        sampler = ViewSampler(self.planes, self.crop, rng, independent_crops=self.independent_crops)
        return two_views(sampler, self.batch_size, self.view_cfg, rng)


def two_views(sampler: ViewSampler, batch_size: int, view_cfg: ProxyConfig | None,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One batch, (views, clean), as ``BatchMaker`` describes, drawn from ``sampler`` and ``rng``."""
    c1, c2 = sampler.pairs(batch_size)
    clean = np.concatenate([c1, c2])
    if view_cfg is None:
        return clean, clean
    return np.stack([corrupt(c, view_cfg, rng) for c in clean]), clean


def default_workers(device_type: str) -> int:
    """Workers for ``device_type``: none on the CPU (its cores run the network), else up to 8."""
    if device_type == "cpu":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus - 1))


def _write_planes(planes: Sequence[np.ndarray]) -> str:
    fd, path = tempfile.mkstemp(prefix="napari-tower-planes-", suffix=".f32")
    with os.fdopen(fd, "wb") as f:
        for p in planes:
            f.write(np.ascontiguousarray(p, dtype=np.float32).tobytes())
    return path


def _map_planes(path: str, shapes) -> list[np.ndarray]:
    flat = np.memmap(path, dtype=np.float32, mode="r")
    out, o = [], 0
    for h, w in shapes:
        out.append(flat[o : o + h * w].reshape(h, w))
        o += h * w
    return out


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


class BatchPool:
    """Batches ``start, start + 1, ...`` in order, made ahead by ``workers`` processes.

    Worker ``k`` is a fresh interpreter (``python -m napari_tower.ssl._batch_worker``) that makes
    batches ``start + k, start + k + workers, ...`` and writes each, pickled, to its own pipe;
    the batches are read round-robin, and a worker blocks on its pipe until its batch is
    read. Fresh interpreters share no locks, threads or CUDA state with this process (a
    ``multiprocessing.Pool`` of forked workers hung on a 16-core GPU machine) and never
    re-import the caller's ``__main__`` (as "spawn" does, which fails for unguarded scripts).
    """

    def __init__(self, maker: BatchMaker, workers: int, start: int = 0):
        # the planes (hundreds of MB for a corpus) go to one file that every worker maps, not to
        # a copy per worker; the rest of the maker is small and is pickled
        self._planes_file = _write_planes(maker.planes)
        shapes = [p.shape for p in maker.planes]
        spec = pickle.dumps((self._planes_file, shapes, replace(maker, planes=[])), protocol=pickle.HIGHEST_PROTOCOL)
        # the workers import this package from where this process found it, even if that is not on
        # the default path (a source tree added to sys.path at run time)
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        self._procs = []
        try:
            for _ in range(workers):  # all start importing at once; each reads its spec when ready
                self._procs.append(subprocess.Popen([sys.executable, "-m", "napari_tower.ssl._batch_worker"],
                                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env))
            for k, p in enumerate(self._procs):
                p.stdin.write(struct.pack("<qq", start + k, workers) + spec)
                p.stdin.close()
        except BaseException:
            self.close()
            raise
        # a thread reads the pipes (~10 ms per 8 MB batch) while the GPU computes
        self._ready: queue.Queue = queue.Queue(maxsize=2)
        self._closing = False
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()

    def _read_all(self) -> None:
        k = 0
        while not self._closing:
            p = self._procs[k % len(self._procs)]
            try:
                (n,) = struct.unpack("<q", _read_exact(p.stdout, 8))
                item = pickle.loads(_read_exact(p.stdout, n))
            except (EOFError, OSError, ValueError):
                if not self._closing:
                    self._ready.put(RuntimeError(
                        f"a pretraining data worker stopped (exit code {p.wait()}; its error is printed above); "
                        "run without workers (--workers 0)"))
                return
            self._ready.put(item)
            k += 1
            if k == len(self._procs):  # every worker has mapped the planes: the file can go now (POSIX),
                self._drop_planes_file()  # so that not even a killed run leaves it behind

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        item = self._ready.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._closing = True
        for p in self._procs:
            p.kill()
        for p in self._procs:
            p.wait()
        if hasattr(self, "_reader"):
            while self._reader.is_alive():  # unblock a reader waiting to put
                try:
                    self._ready.get(timeout=0.1)
                except queue.Empty:
                    pass
        for p in self._procs:
            p.stdout.close()
        self._drop_planes_file()

    def _drop_planes_file(self) -> None:
        try:
            os.unlink(self._planes_file)
        except OSError:  # gone already; or Windows, which cannot remove a mapped file (close() tries again)
            pass


def serve() -> None:
    """Worker process: read the spec from stdin, write batches to stdout until killed."""
    import torch

    torch.set_num_threads(1)  # one process per core; the view resize uses torch
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, not into the batch stream
    data = sys.stdin.buffer.read()
    first, stride = struct.unpack("<qq", data[:16])
    path, shapes, maker = pickle.loads(data[16:])
    maker = replace(maker, planes=_map_planes(path, shapes))
    i = first
    try:
        while True:
            blob = pickle.dumps(maker(i), protocol=pickle.HIGHEST_PROTOCOL)
            out.write(struct.pack("<q", len(blob)))
            out.write(blob)
            out.flush()
            i += stride
    except (BrokenPipeError, KeyboardInterrupt):
        pass
