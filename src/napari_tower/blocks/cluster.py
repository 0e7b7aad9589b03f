"""Connect to a dask.distributed cluster for block-wise runs (or start a local one)."""
from __future__ import annotations

import contextlib
from typing import Iterator

from ..errors import InputError


@contextlib.contextmanager
def cluster_client(scheduler: str | None = None, scheduler_file: str | None = None,
                   workers: int | None = None) -> Iterator[object]:
    """A ``distributed.Client`` for a scheduler address, a scheduler file or ``workers`` local
    processes (one thread each), closed on exit; None when none of them is given.

    Raises
    ------
    InputError
        The scheduler cannot be reached (one clear line instead of distributed's traceback).
    """
    if not (scheduler or scheduler_file or workers):
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler or scheduler_file:
            client = Client(scheduler, scheduler_file=scheduler_file, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
    except Exception as e:  # noqa: BLE001 (OSError, TimeoutError, ValueError for a bad address...)
        if cluster is not None:
            cluster.close()
        raise InputError(f"cannot reach the dask cluster: {e}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
