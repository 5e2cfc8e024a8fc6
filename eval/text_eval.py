"""``scd eval text``: TextFooler against saved models on a text dataset (the paper's Table 7).

The run draws ``n`` test documents with ``seed`` (uniformly, whether or not a model classifies
them correctly: Table 7's adversarial accuracy is over all of them) and plans, per model, one
``clean`` unit (accuracy on the whole test set) and one attack unit per ``chunk`` documents.
Units are persisted one by one in the run directory (:class:`~eval.runstore.RunStore`), so an
interrupted run resumes where it stopped, with the same records on any backend (the attack
draws no randomness).

Each model sees the documents as it was trained: averaged word vectors scaled as the
dataset's training features (:meth:`~eval.datasets.text.TextDataset.features`; SCD ensembles,
MLP, BNN, RF), or the stacked word vectors of its first ``input_shape[0]`` words
(:class:`~eval.baselines.WordCNNEnsemble`).  Per model ``results.json`` holds
``clean_accuracy`` (test set), ``adversarial_accuracy`` (fraction of the ``n`` documents still
classified correctly after the attack), ``mean_queries`` (over the documents attacked, i.e.
first classified correctly) and a few examples; ``report.md`` has the table (with Table 7's
figures beside ours on the paper's datasets) and the examples, substitutions marked
``~~old~~ **new**``.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_open, exclusive, sweep_temporary
from .paper import TABLE7
from .runstore import RunStore
from .units import fingerprint, load_cached

__all__ = ["PAPER_NAMES", "evaluate_text", "finish_text", "mark", "model_inputs"]

PAPER_NAMES = {"scd01": "scd01", "scdce": "scdce", "mlp": "mlp", "bnn": "bnn", "rf": "rf", "wordcnn": "cnn",
               "cnn": "cnn"}
"""Our model names (lower case) and the column of the paper's Table 7 they correspond to."""

_EXAMPLES = 3


@functools.lru_cache(maxsize=2)
def _dataset(name: str, classes: tuple[int, int] | None, data_dir: str | None, embedding: str | None) -> Any:
    from eval.datasets import TEXT_DATASETS, load_dataset

    if name not in TEXT_DATASETS:
        raise ValueError(f"scd eval text needs text data ({', '.join(TEXT_DATASETS)}), not {name!r}.")
    return load_dataset(name, classes=classes, data_dir=data_dir, embedding=embedding)


def _load(data: dict[str, Any]) -> Any:
    classes = tuple(data["classes"]) if data.get("classes") else None
    return _dataset(data["name"], classes, data.get("data_dir"), data.get("embedding"))


@functools.lru_cache(maxsize=2)
def _synonyms(spec: str | None) -> Any:
    from scd.text import load_embedding

    return load_embedding(spec)


def model_inputs(model: Any, ds: Any, documents: Any) -> np.ndarray:
    """What ``model`` takes for tokenised ``documents``: stacked word vectors for a WordCNN,
    else the dataset's scaled averaged word vectors; ``ValueError`` if it takes neither."""
    from eval.baselines import WordCNNEnsemble

    if isinstance(model, WordCNNEnsemble):
        length, dim = model.input_shape_
        if dim != ds.embedding.dim:
            raise ValueError(f"the WordCNN takes {dim}-d word vectors, but {ds.embedding.name} has {ds.embedding.dim}.")
        return ds.embedding.stack(documents, length)
    if model.n_features_in_ != ds.embedding.dim:
        raise ValueError(f"the model takes {model.n_features_in_} features, but averaged {ds.embedding.name} "
                         f"vectors have {ds.embedding.dim}.")
    return ds.features(documents)


def _attacker(options: dict[str, Any]) -> Any:
    from attacks.textfooler import TextFooler

    a = options["attack"]
    return TextFooler(_synonyms(a.get("synonyms")), k=a["k"], min_cosine=a["min_cosine"], vocabulary=a["vocabulary"],
                      min_similarity=a["min_similarity"], max_queries=a.get("max_queries"))


def _run_unit(unit: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """One unit: ``clean`` (test accuracy of one model) or ``attack`` (TextFooler on a chunk)."""
    start = time.perf_counter()
    ds = _load(unit["data"])
    model = load_cached(unit["model_path"])
    record: dict[str, Any] = {"key": unit["key"], "kind": unit["kind"], "model": unit["model"]}
    if unit["kind"] == "clean":
        pred = model.predict(model_inputs(model, ds, ds.tokens_test))
        record.update(test_accuracy=float(np.mean(np.asarray(pred) == ds.y_test)), n_test=len(ds.y_test))
    else:
        ids = np.asarray(unit["ids"], np.int64)
        classify = lambda docs: model.predict_proba(model_inputs(model, ds, docs))
        result = _attacker(unit["options"]).attack(classify, [ds.tokens_test[i] for i in ids], ds.y_test[ids],
                                                   sample_ids=ids)
        record.update(sample_ids=ids.tolist(), success=result.success.tolist(),
                      already_adversarial=result.already_adversarial.tolist(), queries=result.queries.tolist(),
                      substitutions=[[list(s) for s in subs] for subs in result.substitutions],
                      similarity=result.similarity.tolist(), words=[len(d) for d in result.original])
    record["seconds"] = time.perf_counter() - start
    return record, {}


def evaluate_text(models: dict[str, str], data: dict[str, Any], out: str | os.PathLike, *, options: dict[str, Any],
                  backend: str = "loky", n_jobs: int | None = None, scheduler: str | None = None,
                  ray_address: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) TextFooler against ``models`` (name -> model file) into ``out`` and return
    the summary (``results.json``).  ``data``: ``name``, ``classes``, ``data_dir``, ``embedding``;
    ``options``: ``n``, ``seed``, ``chunk`` and ``attack`` (``k``, ``min_cosine``, ``vocabulary``,
    ``min_similarity``, ``max_queries``, ``synonyms``: an embedding file or None for the default)."""
    from .backends import map_unordered, parallel_backend

    if not models:
        raise ValueError("give at least one model (--model NAME=PATH).")
    ds = _load(data)
    _attacker(options)  # checks the attack's settings before anything is written
    loaded = {name: load_cached(path) for name, path in models.items()}
    for name, model in loaded.items():
        try:
            model_inputs(model, ds, ds.tokens_test[:1])
        except ValueError as exc:
            raise ValueError(f"model {name!r}: {exc}") from None
    n = int(options["n"])
    if not 1 <= n <= len(ds.y_test):
        raise ValueError(f"n must lie between 1 and the {len(ds.y_test)} test documents, got {n}.")
    points = np.sort(np.random.default_rng(int(options["seed"])).choice(len(ds.y_test), n, replace=False))
    config = {"kind": "text", "data": data, **options, "points": points.tolist(),
              "models": {name: {"path": os.path.abspath(p), "sha256": fingerprint(p)} for name, p in models.items()}}
    run_dir = Path(out)
    units = []
    for name, path in models.items():
        common = {"model": name, "model_path": os.path.abspath(path), "data": data, "options": options}
        units.append(dict(common, key=f"{name}.clean", kind="clean"))
        chunk = int(options["chunk"])
        for c in range(0, n, chunk):
            units.append(dict(common, key=f"{name}.c{c // chunk}", kind="attack", ids=points[c:c + chunk].tolist()))
    with exclusive(run_dir, "run directory"), \
            parallel_backend(backend, n_jobs=n_jobs, scheduler=scheduler, ray_address=ray_address) as jobs:
        sweep_temporary(run_dir)
        store = RunStore(run_dir, config)
        pending = [u for u in units if not store.done(u["key"])]
        from tqdm.auto import tqdm

        with tqdm(total=len(units), initial=len(units) - len(pending), desc="eval text", unit="unit",
                  disable=quiet) as bar:
            for _, (record, arrays) in map_unordered(_run_unit, pending, n_jobs=jobs):
                store.add(record, arrays)
                bar.update(1)
    return finish_text(store)


def summarize_text(store: RunStore) -> dict[str, Any]:
    """The JSON summary of a text run's records (``results.json``)."""
    from importlib.metadata import version

    config = store.config
    points = config["points"]
    data = config["data"]
    results: dict[str, Any] = {"kind": "text", "config": config, "package_version": version("scd"),
                               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {}}
    ds = None
    for name in config["models"]:
        recs = [r for r in store.records.values() if r["model"] == name]
        clean = next((r for r in recs if r["kind"] == "clean"), None)
        attacks = sorted((r for r in recs if r["kind"] == "attack"), key=lambda r: r["sample_ids"][0])
        flat = {k: [v for r in attacks for v in r[k]] for k in
                ("sample_ids", "success", "already_adversarial", "queries", "substitutions", "similarity", "words")}
        done = len(flat["sample_ids"])
        correct = [not a for a in flat["already_adversarial"]]
        robust = [c and not s for c, s in zip(correct, flat["success"])]
        attacked = [q for q, c in zip(flat["queries"], correct) if c]
        changed = [len(sub) / max(1, w) for sub, w, s in zip(flat["substitutions"], flat["words"], flat["success"]) if s]
        examples = []
        for sid, sub, s in zip(flat["sample_ids"], flat["substitutions"], flat["success"]):
            if s and len(examples) < _EXAMPLES:
                if ds is None:
                    ds = _load(data)
                examples.append({"sample_id": sid, "label": int(ds.y_test[sid]),
                                 "text": mark(ds.tokens_test[sid], sub), "substitutions": sub})
        results["models"][name] = {
            "clean_accuracy": None if clean is None else clean["test_accuracy"],
            "clean_accuracy_points": float(np.mean(correct)) if done else None,
            "adversarial_accuracy": float(np.mean(robust)) if done else None,
            "mean_queries": float(np.mean(attacked)) if attacked else None,
            "median_queries": float(np.median(attacked)) if attacked else None,
            "success_rate": float(np.mean([s for s, c in zip(flat["success"], correct) if c])) if attacked else None,
            "mean_changed_fraction": float(np.mean(changed)) if changed else None,
            "n": done, "pending": len(points) - done,
            "seconds": float(sum(r["seconds"] for r in recs)), "examples": examples,
        }
    return results


def mark(tokens: Any, substitutions: Any) -> str:
    """``tokens`` joined by spaces, each substituted word as ``~~old~~ **new**``."""
    words = list(tokens)
    for pos, old, new in substitutions:
        words[int(pos)] = f"~~{old}~~ **{new}**"
    return " ".join(words)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def render_text(results: dict[str, Any], run_dir: str | os.PathLike) -> Path:
    """Write ``report.md``: the Table-7 table (the paper's figures beside ours) and the examples."""
    config = results["config"]
    data = config["data"]["name"]
    paper = TABLE7.get(data) if not config["data"].get("classes") else None
    a = config["attack"]
    lines = [f"# TextFooler on {data} ({len(config['points'])} test documents, seed {config['seed']})", "",
             (f"Synonyms: {a.get('synonyms') or 'glove-6b-50d'}, k={a['k']}, cosine >= {a['min_cosine']}, among "
              f"the first {a['vocabulary']} words; sentence similarity (mean-vector cosine) >= "
              f"{a['min_similarity']}; query budget {a.get('max_queries') or 'none'}."), "",
             "| model | clean acc. % | adv. acc. % | mean queries | success % | words changed % |"
             + (" paper Cl | paper Adv | paper Que |" if paper else ""),
             "|---|---|---|---|---|---|" + ("---|---|---|" if paper else "")]
    for name, m in results["models"].items():
        queries = "n/a" if m["mean_queries"] is None else f"{m['mean_queries']:.0f}"
        row = (f"| {name} | {_pct(m['clean_accuracy'])} | {_pct(m['adversarial_accuracy'])} | {queries} | "
               f"{_pct(m['success_rate'])} | {_pct(m['mean_changed_fraction'])} |")
        if paper:
            col = PAPER_NAMES.get(name.lower())
            row += "".join(f" {paper[k].get(col, '')} |" if col else " |" for k in ("cl", "adv", "que"))
        if m["pending"]:
            row += f" ({m['pending']} documents not yet run)"
        lines.append(row)
    lines += ["", ("Adversarial accuracy is over all the documents drawn (a misclassified one counts as not "
                   "robust); queries are over the documents first classified correctly."), ""]
    for name, m in results["models"].items():
        if m["examples"]:
            lines += [f"## {name}: examples", ""]
            lines += [f"- test document {e['sample_id']} (label {e['label']}): {e['text']}" for e in m["examples"]]
            lines.append("")
    path = Path(run_dir) / "report.md"
    with atomic_open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path


def finish_text(store: RunStore) -> dict[str, Any]:
    """Summarise a text run into ``results.json`` and ``report.md``."""
    results = summarize_text(store)
    store.write_json("results.json", results)
    render_text(results, store.dir)
    return results
