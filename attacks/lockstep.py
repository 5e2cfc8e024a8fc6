"""Several attack calls on one model in lock-step: every model call carries the rows of all of them.

An evaluation attacks the same images with several seeds (runs).  Each run alone sends the
model small batches (binary searches, step searches, early gradient estimates); run side by
side, their requests can share one model call.  :func:`run_lockstep` runs each job (an attack
call on the model it is given) in its own thread on a proxy of the model; whenever every
unfinished job is waiting for an answer, the waiting requests are concatenated (in job
order) and answered by one model call per ``rows_per_call`` rows, and each job gets its own
rows back.

Each job still has its own :class:`~attacks.oracle.Oracle` (made from the proxy), so its
queries, calls, budget and seeds are counted and drawn exactly as if it ran alone; only the
model sees bigger batches.  For a model whose answer for a row does not depend on the rows
batched with it (SCD ensembles by design, trees) the results are identical to running the
jobs one after the other.  The batches are the same on every run (a round holds the next
request of every unfinished job), so other models are deterministic too, up to their own
batch-dependent rounding.  With ``batch_invariant=True`` (the caller vouches that a row's
answer does not depend on its batch-mates) a round starts as soon as ``rows_per_call`` rows
are waiting, so the model works while the other jobs prepare their next requests; the
batches then depend on timing, the answers do not.

Threads: the jobs' own work (noise, clipping, bookkeeping) runs in their threads, numpy
releasing the GIL; the merged model calls run in the calling thread.  ``threads`` sets
torch's intra-op threads for the duration (process-wide; restored after): many small calls
on a busy machine run several times faster on one thread than on torch's default.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .adapters import is_torch_module

__all__ = ["run_lockstep"]

_MERGED = ("predict", "predict_proba")


def run_lockstep(model: Any, jobs: Sequence[Callable[[Any], Any]], *, rows_per_call: int = 1024,
                 threads: int | None = None, batch_invariant: bool = False) -> list[Any]:
    """Run ``job(m)`` for every job, with ``m`` a proxy of ``model`` that merges the jobs'
    ``predict``/``predict_proba`` calls (see the module docstring); returns their results in
    order.  The first job (in order) that raised has its exception re-raised after all ended.

    A torch module, or a single job, runs the jobs one after the other on ``model`` itself.
    """
    if not isinstance(rows_per_call, int) or isinstance(rows_per_call, bool) or rows_per_call < 1:
        raise ValueError(f"rows_per_call must be a positive integer, got {rows_per_call!r}.")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}.")
    with _torch_threads(threads):
        if len(jobs) <= 1 or is_torch_module(model):
            return [job(model) for job in jobs]
        hub = _Hub(model, len(jobs), rows_per_call, batch_invariant)
        results: list[Any] = [None] * len(jobs)
        errors: list[BaseException | None] = [None] * len(jobs)

        def work(k: int) -> None:
            try:
                results[k] = jobs[k](_Shared(model, hub, k))
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
                errors[k] = exc
            finally:
                hub.finish()

        workers = [threading.Thread(target=work, args=(k,), name=f"scd-lockstep-{k}", daemon=True)
                   for k in range(len(jobs))]
        for w in workers:
            w.start()
        hub.serve()
        for w in workers:
            w.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


class _torch_threads:
    """Set torch's intra-op threads inside the block (no-op for None, or without torch)."""

    def __init__(self, threads: int | None):
        self.threads = threads
        self.before = None

    def __enter__(self):
        torch = sys.modules.get("torch")
        if self.threads is not None and torch is not None:
            self.before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            sys.modules["torch"].set_num_threads(self.before)


class _Hub:
    """Collects one request per unfinished job, answers them with merged model calls."""

    def __init__(self, model: Any, n_jobs: int, rows_per_call: int, eager: bool):
        self.model = model
        self.rows = rows_per_call
        self.eager = eager  # start a round once a call's worth of rows waits
        self.waiting = 0  # rows in self.requests
        self.cond = threading.Condition()
        self.requests: dict[int, tuple[str, np.ndarray]] = {}
        self.answers: dict[int, tuple[bool, Any]] = {}
        self.alive = n_jobs

    def ask(self, job: int, name: str, x: np.ndarray) -> Any:
        with self.cond:
            self.requests[job] = (name, x)
            self.waiting += len(x)
            self.cond.notify_all()
            while job not in self.answers:
                self.cond.wait()
            ok, value = self.answers.pop(job)
        if not ok:
            raise value
        return value

    def finish(self) -> None:
        with self.cond:
            self.alive -= 1
            self.cond.notify_all()

    def serve(self) -> None:
        while True:
            with self.cond:
                while self.alive and len(self.requests) < self.alive and not (self.eager and self.waiting >= self.rows):
                    self.cond.wait()
                if not self.requests:
                    return
                batch = sorted(self.requests.items())
                self.requests.clear()
                self.waiting = 0
            answers = {}
            for name in _MERGED:
                group = [(k, x) for k, (n, x) in batch if n == name]
                if group:
                    answers.update(self._answer(name, group))
            with self.cond:
                self.answers.update(answers)
                self.cond.notify_all()

    def _answer(self, name: str, group: list[tuple[int, np.ndarray]]) -> dict[int, tuple[bool, Any]]:
        try:
            x = np.concatenate([x for _, x in group])
            fn = getattr(self.model, name)
            out = np.concatenate([np.asarray(fn(x[i:i + self.rows])) for i in range(0, len(x), self.rows)])
            bounds = np.cumsum([0] + [len(x) for _, x in group])
            return {k: (True, out[bounds[j]:bounds[j + 1]]) for j, (k, _) in enumerate(group)}
        except Exception as exc:  # noqa: BLE001 (every job of the group sees the model's error)
            return {k: (False, exc) for k, _ in group}


class _Shared:
    """The model as job ``job`` sees it: ``predict``/``predict_proba`` of one row array go
    through the hub; everything else is the model's own."""

    def __init__(self, model: Any, hub: _Hub, job: int):
        self._model, self._hub, self._job = model, hub, job

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._model, name)
        if name not in _MERGED or not callable(value):
            return value

        def merged(X, *args, **kwargs):
            if args or kwargs or not isinstance(X, np.ndarray) or X.ndim != 2:
                return value(X, *args, **kwargs)
            return self._hub.ask(self._job, name, X)

        return merged
