"""eval.backends: every joblib backend maps items exactly once, with sequential results."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading

import joblib
import numpy as np
import pytest
from joblib._parallel_backends import ThreadingBackend

from eval.backends import BACKENDS, map_unordered, parallel_backend
from tests.paths import ROOT

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # keep ray from writing a token to ~/.ray

ITEMS = list(range(12))


def work(item: int) -> np.ndarray:
    """A small seeded computation, so results are comparable across processes."""
    rng = np.random.default_rng(1000 + item)
    return rng.normal(size=4) * item + rng.integers(0, 100)


def _check_matches_sequential(pairs: list) -> None:
    indices = [i for i, _ in pairs]
    assert sorted(indices) == list(range(len(ITEMS)))  # every item exactly once
    got = dict(pairs)
    for i, item in enumerate(ITEMS):
        assert np.array_equal(got[i], work(item))


@pytest.mark.parametrize("name", ["loky", "threading", "sequential"])
def test_local_backends_match_sequential_loop(name):
    with parallel_backend(name, n_jobs=2) as n_jobs:
        assert n_jobs == (1 if name == "sequential" else 2)
        pairs = list(map_unordered(work, ITEMS, n_jobs=n_jobs))
    _check_matches_sequential(pairs)


def test_default_n_jobs():
    with parallel_backend() as n_jobs:
        assert n_jobs == -1
    with parallel_backend("sequential") as n_jobs:
        assert n_jobs == 1


def test_empty_items():
    assert list(map_unordered(work, [], n_jobs=2)) == []


class _NoGeneratorBackend(ThreadingBackend):
    """A backend that refuses return_as='generator*', like ray's."""

    supports_return_generator = False


def test_fallback_dispatches_consecutive_batches():
    joblib.register_parallel_backend("scd-test-nogen", _NoGeneratorBackend)
    calls: list[int] = []
    lock = threading.Lock()

    def record(item):
        with lock:
            calls.append(item)
        return work(item)

    with joblib.parallel_config(backend="scd-test-nogen"):
        with pytest.raises(ValueError, match="does not support return_as"):
            joblib.Parallel(n_jobs=2, return_as="generator_unordered")
        stream = map_unordered(record, ITEMS, n_jobs=2)
        first = next(stream)
        assert sorted(calls) == [0, 1, 2, 3]  # one batch of 2 * 2 workers, nothing more yet
        pairs = [first, *stream]
    assert sorted(calls) == ITEMS
    _check_matches_sequential(pairs)


def test_dask_local_cluster_and_shutdown():
    distributed = pytest.importorskip("distributed")
    with pytest.raises(RuntimeError, match="boom"):  # clean-up must also run on errors
        with parallel_backend("dask", n_jobs=2) as n_jobs:
            client = distributed.get_client()
            cluster = client.cluster
            assert n_jobs == 2 and len(client.scheduler_info()["workers"]) == 2
            assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
            stream = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
            assert list(stream(joblib.delayed(abs)(-1) for _ in range(2))) == [1, 1]  # supported
            pairs = list(map_unordered(work, ITEMS, n_jobs=n_jobs))
            raise RuntimeError("boom")
    _check_matches_sequential(pairs)
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_ray_local_instance_and_shutdown(monkeypatch):
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    created: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        created.append(real_mkdtemp(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    # ray's workers import this test module by name, so they need its folder on their path
    here = str(ROOT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    with pytest.raises(RuntimeError, match="boom"):  # one start; clean-up also on errors
        with parallel_backend("ray", n_jobs=2) as n_jobs:
            assert ray.is_initialized() and int(ray.cluster_resources()["CPU"]) == 2
            assert len(created) == 1 and os.path.basename(created[0]).startswith("scd-ray-")
            with pytest.raises(ValueError, match="does not support return_as"):
                joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
            pairs = list(map_unordered(work, ITEMS, n_jobs=n_jobs))
            raise RuntimeError("boom")
    _check_matches_sequential(pairs)
    assert not ray.is_initialized()
    assert not os.path.exists(created[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="spark"), "unknown backend"),
    (dict(name="loky", scheduler="tcp://127.0.0.1:8786"), "scheduler"),
    (dict(name="ray", scheduler="tcp://127.0.0.1:8786"), "scheduler"),
    (dict(name="dask", ray_address="auto"), "ray_address"),
    (dict(name="threading", ray_address="auto"), "ray_address"),
    (dict(name="loky", n_jobs=0), "n_jobs"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        with parallel_backend(**kwargs):
            pass
    if match != "n_jobs":
        assert all(name in str(info.value) for name in BACKENDS)


@pytest.mark.parametrize("name, module", [("dask", "distributed"), ("ray", "ray")])
def test_missing_optional_package_names_the_extra(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ValueError, match=rf"pip install 'scd\[{name}\]'"):
        with parallel_backend(name):
            pass


def test_import_is_lazy():
    code = ("import sys, eval.backends; "
            "print(sorted(m for m in ('dask', 'distributed', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(ROOT))
    assert out.stdout.strip() == "[]"
