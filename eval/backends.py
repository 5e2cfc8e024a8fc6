"""Choosing the joblib backend that runs the evaluation suite's independent work units.

:func:`parallel_backend` activates one of joblib's local backends, a dask cluster (an
existing scheduler or a local one it starts and stops) or ray (an existing cluster or a
local instance it starts and stops), and yields the ``n_jobs`` to give ``joblib.Parallel``.
:func:`map_unordered` runs a function over items under the active backend and yields
each result as it finishes, so callers can persist results one by one.  dask and ray are
imported only when asked for, so importing this module stays cheap.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import joblib

__all__ = ["BACKENDS", "map_unordered", "parallel_backend"]

BACKENDS = ("loky", "threading", "sequential", "dask", "ray")


def _check_n_jobs(n_jobs: int | None) -> None:
    if n_jobs is None:
        return
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")


def _local_workers(n_jobs: int | None) -> int:
    """Workers for a cluster we start: ``n_jobs``, all CPUs for None, joblib's meaning
    for negative values (-1 all CPUs, -2 all but one, ...)."""
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return cpus
    return n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


def _missing(extra: str, exc: ImportError) -> ValueError:
    return ValueError(f"the {extra!r} backend needs optional packages that are not installed "
                      f"({exc}); install them with: pip install 'scd[{extra}]'")


@contextlib.contextmanager
def parallel_backend(
    name: str = "loky",
    *,
    n_jobs: int | None = None,
    scheduler: str | None = None,
    ray_address: str | None = None,
) -> Iterator[int]:
    """Activate joblib backend ``name`` inside the block and yield the ``n_jobs`` to use.

    ``loky`` / ``threading`` / ``sequential`` are plain joblib (``n_jobs`` default -1;
    1 for sequential).  ``dask`` connects to ``scheduler`` if given, else starts a local
    cluster on 127.0.0.1 with one single-threaded worker process per job; ``ray``
    connects to ``ray_address`` if given, else starts a local instance with ``n_jobs``
    CPUs in a fresh temporary directory.  Whatever this function started is shut down
    on exit, also when the block raises.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if scheduler is not None and name != "dask":
        raise ValueError(f"scheduler is only used by the 'dask' backend, not {name!r}; "
                         f"choose one of {BACKENDS}")
    if ray_address is not None and name != "ray":
        raise ValueError(f"ray_address is only used by the 'ray' backend, not {name!r}; "
                         f"choose one of {BACKENDS}")
    _check_n_jobs(n_jobs)
    if name == "dask":
        with _dask(n_jobs, scheduler) as (client, effective):
            with joblib.parallel_config(backend="dask", n_jobs=effective, client=client):
                yield effective
    elif name == "ray":
        with _ray(n_jobs, ray_address):
            effective = -1 if n_jobs is None else n_jobs
            with joblib.parallel_config(backend="ray", n_jobs=effective):
                yield effective
    else:
        effective = 1 if name == "sequential" else (-1 if n_jobs is None else n_jobs)
        extra = {"initializer": _end_with_parent} if name == "loky" else {}
        with joblib.parallel_config(backend=name, n_jobs=effective, **extra):
            yield effective


def _end_with_parent() -> None:
    """Initializer of every loky worker: end it (at once, mid-task too) when the process that
    started it is gone, which a ``kill -9`` of a run leaves no one else to do; loky alone lets
    a busy worker compute until its task ends."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="scd-end-with-parent", daemon=True).start()


@contextlib.contextmanager
def _dask(n_jobs: int | None, scheduler: str | None) -> Iterator[tuple[Any, int]]:
    """A distributed Client (and the LocalCluster behind it when we start one)."""
    try:
        import distributed
        import joblib._dask  # noqa: F401  (joblib's dask backend needs dask itself too)
    except ImportError as exc:
        raise _missing("dask", exc) from exc
    if scheduler is not None:
        client = distributed.Client(scheduler)
        try:
            yield client, (-1 if n_jobs is None else n_jobs)
        finally:
            client.close()
        return
    cluster = distributed.LocalCluster(
        host="127.0.0.1", n_workers=_local_workers(n_jobs), threads_per_worker=1,
        processes=True, dashboard_address=None)
    try:
        client = distributed.Client(cluster)
        try:
            yield client, int(sum(client.nthreads().values()))
        finally:
            client.close()
    finally:
        cluster.close()


@contextlib.contextmanager
def _ray(n_jobs: int | None, address: str | None) -> Iterator[None]:
    """ray connected (or started locally), with its joblib backend registered."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else ray writes a token to ~/.ray
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as exc:
        raise _missing("ray", exc) from exc
    register_ray()
    started = not ray.is_initialized()  # an instance that is already up is left running
    temp_dir = None
    if started:
        if address is not None:
            ray.init(address=address)
        else:
            temp_dir = tempfile.mkdtemp(prefix="scd-ray-")
            try:
                ray.init(num_cpus=_local_workers(n_jobs), include_dashboard=False, _node_ip_address="127.0.0.1",
                         _temp_dir=temp_dir, log_to_driver=False, ignore_reinit_error=True)
            except BaseException:
                shutil.rmtree(temp_dir, ignore_errors=True)
                raise
    try:
        yield
    finally:
        if started:
            ray.shutdown()
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)


def _indexed(function: Callable[[Any], Any], index: int, item: Any) -> tuple[int, Any]:
    """A joblib task: ``function(item)`` tagged with the item's position."""
    return index, function(item)


def map_unordered(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    n_jobs: int,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, function(items[index]))`` for every item as the results arrive.

    Uses ``return_as="generator_unordered"`` under the active joblib backend; where the
    backend refuses that (ray), ``"generator"``; where it refuses both, consecutive
    batches of ``2 * workers`` items, each a plain list-returning call.  Every item is
    yielded exactly once, with the result ``function`` gives when run sequentially.
    """
    _check_n_jobs(n_jobs)
    items = list(items)
    if not items:
        return
    for return_as in ("generator_unordered", "generator"):
        try:
            parallel = joblib.Parallel(n_jobs=n_jobs, return_as=return_as)
        except ValueError as exc:
            if "does not support return_as" not in str(exc):
                raise
            continue
        yield from parallel(joblib.delayed(_indexed)(function, i, item)
                            for i, item in enumerate(items))
        return
    batch = max(1, 2 * joblib.effective_n_jobs(n_jobs))
    with joblib.Parallel(n_jobs=n_jobs) as parallel:  # one pool for all batches
        for start in range(0, len(items), batch):
            yield from parallel(joblib.delayed(_indexed)(function, i, items[i])
                                for i in range(start, min(start + batch, len(items))))
