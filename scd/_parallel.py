"""Splitting the votes of an ensemble into groups and training the groups.

Each group is one batched tensor program (:func:`scd._train.train_votes`).  On one CPU the
groups run one after another with torch using every core (``n_jobs=None``), or as
``n_jobs`` joblib tasks that share the cores; under ``joblib.parallel_config(backend="dask"
| "ray")`` the same tasks go to a cluster.  With several GPUs each GPU trains its own groups
in a thread, taking whichever GPU is free.  Groups finish in order, and ``on_group`` sees each
finished group (the checkpoint hook); ``on_snapshot`` sees each group's mid-vote state every
few hundred iterations, so an interrupted fit loses at most those iterations of the groups
in flight.  Worker processes on this machine report their iterations to the progress bar,
and their snapshots, through a queue, so the bar moves while a group trains (a
10,000-iteration vote takes minutes); cluster backends (dask, ray) checkpoint whole groups
only.
"""

from __future__ import annotations

import os
import queue as queues
import signal
import threading
from contextlib import contextmanager
from multiprocessing.managers import SyncManager
from typing import Callable, Iterable, Iterator, Sequence

import joblib
import numpy as np
import torch

from ._train import TrainConfig, train_votes

__all__ = ["auto_group_size", "run_groups"]


_CPU_GROUP_ELEMENTS = 1 << 21  # candidate-matrix elements per CPU group: larger groups lose cache


def auto_group_size(n_votes: int, n_samples: int, n_features: int, cfg: TrainConfig,
                    n_devices: int, gpu: bool) -> int:
    """Votes per group: an equal share per GPU; on a CPU, groups whose candidate matrices
    stay cache-friendly (batching tiny problems, single votes for large ones), at least one
    group per worker (``n_devices`` = joblib workers there)."""
    share = -(-n_votes // n_devices)
    if gpu:
        return share
    n_candidates = 2 * min(cfg.updated_features, n_features)
    batch = max(2, int(n_samples * cfg.nrows))
    return int(max(1, min(share, _CPU_GROUP_ELEMENTS // max(1, n_candidates * batch))))


def _train_on_cpu(XT: np.ndarray, y: np.ndarray, votes, seed, cfg, threads, start, queue=None,
                  progress=True) -> dict:
    """A joblib task: train one group on this worker's CPU with ``threads`` torch threads,
    putting its snapshots, and its iteration counts when the parent shows ``progress``, on
    ``queue``."""
    torch.set_num_threads(threads)
    report = None if queue is None or not progress else _QueueReport(queue, every=max(1, cfg.n_iters // 1000))
    snap = None if queue is None else lambda v, arrays: queue.put((v, arrays))
    arrays = train_votes(torch.from_numpy(np.array(XT)), y, votes, seed, cfg, report, start, snap)
    if report is not None:
        report.flush()
    return arrays


class _QueueReport:
    """Sums a worker's iteration counts and puts them on the queue every ``every`` calls: at
    most about 1,000 queue round trips per group, whatever its length."""

    def __init__(self, queue, every: int):
        self.queue, self.every = queue, every
        self.pending = self.calls = 0

    def __call__(self, n: int) -> None:
        self.pending += n
        self.calls += 1
        if self.calls % self.every == 0:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.queue.put(self.pending)
        self.pending = 0


class _ProgressRelay:
    """A queue that worker processes put iteration counts and snapshots ``(votes, arrays)``
    on, and a thread in this process that passes them to ``progress`` and ``on_snapshot``.
    The queue lives in a manager process that ignores SIGINT, so Ctrl-C interrupts the fit,
    not the relay."""

    def __init__(self, progress: Callable[[int], None] | None, on_snapshot: Callable | None):
        self.progress, self.on_snapshot = progress, on_snapshot
        self.manager = SyncManager()
        self.manager.start(signal.signal, (signal.SIGINT, signal.SIG_IGN))
        self.queue = self.manager.Queue()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (item := self.queue.get()) is not None:
            if isinstance(item, tuple):
                self.on_snapshot(*item)
            else:
                self.progress(item)

    def close(self) -> None:
        try:
            self.queue.put(None)  # after every worker's last count: the queue is FIFO
            self.thread.join(timeout=10)
        finally:
            self.manager.shutdown()


def _local_processes() -> bool:
    """Whether joblib's active backend runs its tasks in processes of this machine (loky,
    multiprocessing), which can reach the relay's manager; cluster backends cannot."""
    backend, _ = joblib.parallel.get_active_backend()
    return type(backend).__name__ in ("LokyBackend", "MultiprocessingBackend")


def run_groups(
    X: np.ndarray,
    y: np.ndarray,
    groups: list[list[int]],
    seed: int,
    cfg: TrainConfig,
    devices: list[torch.device],
    n_jobs: int | None,
    on_group: Callable[[list[int], dict], None],
    progress: Callable[[int], None] | None = None,
    starts: Sequence[dict | None] | None = None,
    on_snapshot: Callable[[list[int], dict], None] | None = None,
) -> None:
    """Train every group and hand each result to ``on_group`` in group order; ``progress``
    (if given) sees every finished vote-iteration, ``on_snapshot`` every mid-vote snapshot
    (from other threads than the caller's where the groups run in parallel); group ``i``
    continues from ``starts[i]`` (see :func:`scd._train.train_votes`)."""
    XT = np.ascontiguousarray(X.T)  # feature-major, computed once for all groups
    starts = list(starts) if starts is not None else [None] * len(groups)
    if devices[0].type == "cuda":
        results = _run_on_gpus(XT, y, groups, seed, cfg, devices, progress, starts, on_snapshot)
    elif n_jobs in (None, 1):
        XT_t = torch.from_numpy(XT)
        results = ((g, train_votes(XT_t, y, g, seed, cfg, progress, s, on_snapshot)) for g, s in zip(groups, starts))
    else:
        results = _run_on_cpu_workers(XT, y, groups, seed, cfg, n_jobs, progress, starts, on_snapshot)
    for votes, arrays in results:
        on_group(votes, arrays)


def _run_on_cpu_workers(XT, y, groups, seed, cfg, n_jobs, progress, starts, on_snapshot) -> Iterable:
    n_workers = joblib.effective_n_jobs(n_jobs)
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    wanted = progress is not None or on_snapshot is not None
    relay = _ProgressRelay(progress, on_snapshot) if wanted and _local_processes() else None
    queue = None if relay is None else relay.queue
    try:
        tasks = (joblib.delayed(_train_on_cpu)(XT, y, g, seed, cfg, threads, s, queue, progress is not None)
                 for g, s in zip(groups, starts))
        outputs = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
        for votes, arrays in zip(groups, outputs):
            if relay is None and progress is not None:
                progress(len(votes) * cfg.n_iters)
            yield votes, arrays
    finally:
        if relay is not None:
            relay.close()


def _run_on_gpus(XT, y, groups, seed, cfg, devices, progress, starts, on_snapshot) -> Iterable:
    data = {d: torch.from_numpy(XT).to(d) for d in devices}
    free = _DevicePool(devices)

    def task(votes: list[int], start) -> dict:
        with free.take() as device, torch.cuda.device(device):
            return train_votes(data[device], y, votes, seed, cfg, progress, start, on_snapshot)

    tasks = (joblib.delayed(task)(g, s) for g, s in zip(groups, starts))
    outputs = joblib.Parallel(n_jobs=len(devices), backend="threading", return_as="generator")(tasks)
    yield from zip(groups, outputs)


class _DevicePool:
    """Devices handed to one task at a time: a task takes whichever is free (one thread per
    device), so no device trains two groups while another waits.  A group's result does not
    depend on which device trains it."""

    def __init__(self, devices):
        self.free = queues.SimpleQueue()
        for d in devices:
            self.free.put(d)

    @contextmanager
    def take(self) -> Iterator[torch.device]:
        device = self.free.get()
        try:
            yield device
        finally:
            self.free.put(device)


def fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    """A short hash of the training data, to refuse resuming a checkpoint on other data."""
    import hashlib

    h = hashlib.sha256()
    h.update(repr(X.shape).encode())
    h.update(np.ascontiguousarray(X).data)
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]
