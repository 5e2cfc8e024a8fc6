"""``scd certify``: certified intervals of the minimum distortion for test points, resumable.

Each test point gets ``[lower, upper]`` from :func:`eval.bounds.certify_model` (SCD ensembles
through :func:`scd.certify.certify`, the baselines through :mod:`eval.bounds`).  The run keeps its
settings and one record per finished point in ``<out>.run/`` (:class:`eval.runstore.RunStore`:
a restarted run with the same settings skips the finished points, other settings are
refused), and rewrites ``<out>`` (JSON) atomically after every point: the settings, the
package version and one record per point with ``index``, ``lower``, ``upper``, ``exact`` and
the method behind each bound.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from scd import __version__
from scd.certify import parse_norm

from .bounds import certify_model, model_kind
from .io import atomic_write_bytes
from .points import choose_points
from .runstore import RunStore

__all__ = ["certify_run", "table"]


def certify_run(model: Any, x: np.ndarray, y: np.ndarray, *, norm: str, n_samples: int,
                indices: Sequence[int] | None, time_limit: float | None, out: str | os.PathLike,
                settings: dict[str, Any], bounds: tuple[float, float] = (0.0, 1.0),
                save_examples: str | os.PathLike | None = None, quiet: bool = False) -> dict[str, Any]:
    """Bound the chosen test points of ``model`` and write ``out``; returns its payload.

    ``settings`` (the model file, dataset and options) identify the run for resuming.
    Points are the first ``n_samples`` test points the model classifies correctly, or
    ``indices`` (then a misclassified point gets ``lower = upper = 0``).
    """
    model_kind(model)  # refuses unsupported models before anything is written
    norm = parse_norm(norm)
    points = choose_points([model], x, y, n_samples, indices=indices)
    config = {**settings, "norm": norm, "time_limit": time_limit, "bounds": list(bounds),
              "indices": [int(i) for i in points]}
    store = RunStore(f"{os.fspath(out)}.run", {"kind": "certify", **config})
    bar = None
    if not quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), initial=sum(store.done(f"i{i}") for i in points), unit="point",
                   desc=f"certify L{norm}")
    for i in points:
        key = f"i{int(i)}"
        if store.done(key):
            continue
        bound = certify_model(model, x[i:i + 1], y[i:i + 1], norm=norm, bounds=bounds, time_limit=time_limit,
                              seed=int(i))[0]
        arrays = {"x_adv": bound.x_adv} if bound.x_adv is not None else None
        store.add({"key": key, "index": int(i), **bound.record()}, arrays)
        if bar is not None:
            bar.update(1)
        _write(store, out, config)
    if bar is not None:
        bar.close()
    payload = _write(store, out, config)
    if save_examples is not None:
        _save_examples(store, payload["records"], x.shape[1], save_examples)
    return payload


def _write(store: RunStore, out, config: dict[str, Any]) -> dict[str, Any]:
    records = [store.records[f"i{i}"] for i in config["indices"] if store.done(f"i{i}")]
    records = [{k: v for k, v in r.items() if k != "key"} for r in records]
    payload = {"settings": config, "scd_version": __version__, "records": records}
    atomic_write_bytes(out, json.dumps(payload, indent=1, allow_nan=False).encode())
    return payload


def _save_examples(store: RunStore, records: list[dict], d: int, path) -> None:
    """The examples at distance ``upper`` (NaN rows where none was found), as ``.npz``."""
    x_adv = np.full((len(records), d), np.nan, np.float32)
    for row, record in enumerate(records):
        if record["upper"] is not None:
            x_adv[row] = store.arrays(f"i{record['index']}")["x_adv"]
    nan = lambda v: np.nan if v is None else v
    buffer = io.BytesIO()
    np.savez_compressed(buffer, index=np.array([r["index"] for r in records]), x_adv=x_adv,
                        lower=np.array([nan(r["lower"]) for r in records], float),
                        upper=np.array([nan(r["upper"]) for r in records], float))
    atomic_write_bytes(path, buffer.getvalue())


def table(payload: dict[str, Any]) -> str:
    """The records as a plain-text table."""
    fmt = lambda v: "inf" if v is None else f"{v:.6g}"
    lines = [f"{'index':>6} {'lower':>11} {'upper':>11} {'exact':>5}  {'lower by':<16} {'upper by':<16} {'s':>6}"]
    for r in payload["records"]:
        lines.append(f"{r['index']:>6} {fmt(r['lower']):>11} {fmt(r['upper']):>11} {r['exact']!s:>5}  "
                     f"{r['lower_method']:<16} {r['upper_method'] or '-':<16} {r['seconds']:>6.1f}")
    return "\n".join(lines)
