"""Markdown tables and PNG plots of an evaluation run, built from its ``results.json`` only.

:func:`render` writes ``report.md`` (and plots when matplotlib is installed, the ``plots``
extra) into the run directory; ``scd eval report RUN_DIR`` calls it again on the saved
results, so a report can be rebuilt, restyled or moved without rerunning anything.
:func:`plot_examples` draws an original input and its adversarial versions against each model
(the paper's Figure 3; images are shown as images, other inputs as curves).
:func:`substitute_table` and :func:`plot_substitute` are the substitute curve's table and plot,
shared with the benchmark scripts.

Where the run is on CIFAR-10 0 vs 1 and a model's name is one of the paper's (``scd01``,
``scdce``, ``scdcebnn``, ``mlp``, ``bnn``, ``resnet50``, ``rf``, ``lenet``/``cnn``), the tables
show the paper's figure (:mod:`eval.paper`) next to ours.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .io import atomic_open
from .paper import CIFAR as PAPER_CIFAR  # the paper's figures per model; kept under its old name

__all__ = ["PAPER_CIFAR", "plot_examples", "plot_substitute", "render", "substitute_table"]


def _paper(results: dict[str, Any], name: str, what: str) -> str:
    data = results["config"]["data"]
    if data["name"] != "cifar10" or (data.get("classes") and list(data["classes"]) != [0, 1]):
        return ""
    value = PAPER_CIFAR.get(name.lower(), {}).get(what)
    if value is None:
        return ""
    if what == "hsj_l2" and (results["config"].get("attack", {}).get("method") != "hsj"
                             or results.get("distance") != "l2"):
        return ""
    return f"{value}"


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _success(m: dict[str, Any]) -> str:
    """Successes over the points attacked, and how many are still to run in an unfinished run."""
    pending = m.get("pending") or 0
    return f"{m['n_success']}/{m['n']}" + (f" ({pending} not yet run)" if pending else "")


def _ci(pair: Any) -> str:
    return "n/a" if not pair or pair[0] is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _settings(results: dict[str, Any]) -> list[str]:
    c = results["config"]
    data = c["data"]
    classes = data.get("classes")
    named = "(default classes)" if not classes else classes if isinstance(classes, str) else tuple(classes)
    lines = [f"Dataset: {data['name']} {named}; "
             f"package {results['package_version']}; summarised {results['date']}."]
    if c.get("attack"):
        a = {k: v for k, v in c["attack"].items() if v is not None}
        lines.append(f"Attack: {a}; runs per image: {c.get('runs', 1)} (the minimum is kept); seed {c.get('seed')}; "
                     f"start: {c.get('start', 'uniform')}.")
    if c.get("points") is not None:
        shown = c["points"] if len(c["points"]) <= 20 else c["points"][:20] + ["..."]
        lines.append(f"Test points ({len(c['points'])}, classified correctly by every model): "
                     f"{', '.join(map(str, shown))} (all in results.json).")
    if c.get("width"):
        lines.append(f"Trained ensembles: {c['width']}.")
    if c.get("substitute"):
        lines.append(f"Substitute settings: {c['substitute']}; {len(c.get('seed_points', []))} seed points.")
    if c.get("attack"):
        lines.append("Distortions are over successful attacks only; success is judged by re-querying the real "
                     "model on the final, clipped example.")
    return lines


def _accuracy_tables(results: dict[str, Any]) -> list[str]:
    lines = ["| model | members | train accuracy | test accuracy | paper (%) | training time | predict rows/s |",
             "|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        fit = "n/a" if m.get("fit_seconds") is None else f"{m['fit_seconds']:.1f} s"
        lines.append(f"| {name} | {m['members']} | {m['train_accuracy']:.4f} | {m['test_accuracy']:.4f} | "
                     f"{_paper(results, name, 'accuracy')} | {fit} | {m['predict_rows_per_second']:.0f} |")
    return lines


def _distortion_tables(results: dict[str, Any]) -> list[str]:
    d = results["distance"].upper().replace("LINF", "L∞")
    lines = [f"| model | success | mean min. {d} | 95 % CI | median min. {d} | 95 % CI | paper (mean) | "
             "median queries | time |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        lines.append(f"| {name} | {_success(m)} | {_f(m['mean'])} | {_ci(m['mean_ci'])} | "
                     f"{_f(m['median'])} | {_ci(m['median_ci'])} | {_paper(results, name, 'hsj_l2')} | "
                     f"{_f(m['median_queries'], 0)} | {m['seconds']:.0f} s |")
    if results.get("paired_tests"):
        lines += ["", "Paired tests over the images where both attacks succeeded:", "",
                  "| a | b | pairs | mean a − b | median a − b | Wilcoxon p | paired t p |", "|---|---|---|---|---|---|---|"]
        for t in results["paired_tests"]:
            lines.append(f"| {t['a']} | {t['b']} | {t['n']} | {_f(t['mean_difference'])} | "
                         f"{_f(t['median_difference'])} | {_f(t['wilcoxon_p'], 4)} | {_f(t['t_p'], 4)} |")
    matrix = results.get("transfer_matrix")
    if matrix:
        names = matrix["sources"]
        lines += ["", "Cross-model transfer of the closest adversarial examples (fraction of each source model's "
                  "examples that the column's model also misclassifies, all predicted in one batch; SCD answers "
                  "depend on the row alone, so only a baseline's diagonal can fall below 1, where an example lies "
                  "within float32 rounding of its boundary):", "",
                  "| source \\ target | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for src in names:
            lines.append(f"| {src} | " + " | ".join(_f(matrix["fooled_fraction"][src][dst]) for dst in names) + " |")
    return lines


def _size_tables(results: dict[str, Any]) -> list[str]:
    d = results["distance"].upper()
    lines = [f"| model | members k | success | median min. {d} | mean | 95 % CI (mean) | misclassified (left out) |",
             "|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        for r in m["sizes"]:
            lines.append(f"| {name} | {r['k']} | {_success(r)} | {_f(r['median'])} | "
                         f"{_f(r['mean'])} | {_ci(r['mean_ci'])} | {r['misclassified']} |")
    return lines


def _transfer_tables(results: dict[str, Any]) -> list[str]:
    lines = ["| model | members | mean transfer probability | paper | members' attack success | median member L2 | "
             "time |", "|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        lines.append(f"| {name} | {m['members_attacked']}/{m['n_members']} | {_f(m['mean_probability'], 4)} | "
                     f"{_paper(results, name, 'transfer')} | {_f(m['member_success_rate'])} | "
                     f"{_f(m['median_member_l2'])} | {m['seconds']:.0f} s |")
    return lines


def substitute_table(eps: Sequence[float], models: dict[str, dict[str, Any]],
                     columns: tuple[str, str] = ("{name}: transfer", "{name}: noise")) -> list[str]:
    """Markdown rows of the substitute curve: per L∞ budget in ``eps``, each model's accuracy on
    the transferred examples and on the Gaussian-noise control.

    ``models`` maps names to their ``adversarial_accuracy`` and ``noise_accuracy`` lists (one
    value per budget); ``columns`` are the two column headings, with ``{name}`` for the model.
    """
    head = " | ".join(f"{columns[0].format(name=n)} | {columns[1].format(name=n)}" for n in models)
    lines = [f"| L∞ ε | {head} |", "|---" * (1 + 2 * len(models)) + "|"]
    for k, e in enumerate(eps):
        cells = [f"{m['adversarial_accuracy'][k]:.3f} | {m['noise_accuracy'][k]:.3f}" for m in models.values()]
        lines.append(f"| {e:.4g} | " + " | ".join(cells) + " |")
    return lines


def _substitute_tables(results: dict[str, Any]) -> list[str]:
    names = list(results["models"])
    if not names:
        return []
    lines = substitute_table(results["models"][names[0]]["eps"], results["models"])
    lines += ["", "| model | clean accuracy | substitute agreement | target queries per seed | seeds | time |",
              "|---|---|---|---|---|---|"]
    for n in names:
        m = results["models"][n]
        lines.append(f"| {n} | {m['clean_accuracy']:.3f} | {m['agreement']:.3f} | {m['queries']:.0f} | "
                     f"{m['seeds']} | {m['seconds']:.0f} s |")
    return lines


_TITLES = {"accuracy": "Clean accuracy and training time", "distortion": "Minimum adversarial distortion",
           "width": "Minimum adversarial distortion against hidden width", "size":
           "Minimum adversarial distortion against ensemble size", "transfer": "Transferability inside each ensemble",
           "substitute": "Substitute-model attack with the Gaussian-noise control"}
_TABLES = {"accuracy": _accuracy_tables, "distortion": _distortion_tables, "width": _distortion_tables,
           "size": _size_tables, "transfer": _transfer_tables, "substitute": _substitute_tables}


def render(results: dict[str, Any], run_dir: str | os.PathLike) -> list[Path]:
    """Write ``report.md`` and the run's plots into ``run_dir``; returns the files written."""
    run_dir = Path(run_dir)
    kind = results["kind"]
    lines = [f"# {_TITLES[kind]}", "", *_settings(results), "", *_TABLES[kind](results), ""]
    plots = _plots(results, run_dir)
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    report = run_dir / "report.md"
    with atomic_open(report, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return [report, *plots]


def _pyplot(required: bool = False):
    """matplotlib's pyplot on the Agg back end; None without matplotlib, unless ``required``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if required:
            raise ValueError("plotting needs matplotlib: pip install 'scd[plots]'.") from None
        return None
    return plt


def _save(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    with atomic_open(path, "wb") as fh:
        fh.write(buffer.getvalue())
    return path


def _figure(plt, draw: Callable[[Any], None], path: Path, title: str) -> Path:
    """One plot drawn by ``draw(ax)``, with a grid and ``title``, written to ``path``."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    draw(ax)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return path


def _draw_distortion(ax, results: dict[str, Any]) -> None:
    """Per model (or hidden width), each image's minimum distortion and the median (width: the mean too)."""
    models, width = results["models"], results["kind"] == "width"
    names = list(models)
    xs = [int(n[1:]) for n in names] if width else list(range(len(names)))
    for x, n in zip(xs, names):
        values = [v for v in models[n]["per_sample"] if v is not None]
        ax.scatter([x] * len(values), values, s=14, alpha=0.6)
        if models[n]["median"] is not None:
            ax.plot([x, x] if width else [x - 0.25, x + 0.25], [models[n]["median"]] * 2, "k-", lw=2)
    if width:
        ax.plot(xs, [models[n]["mean"] for n in names], "k--", label="mean")
        ax.set_xlabel("hidden nodes")
        ax.legend()
    else:
        ax.set_xticks(xs, names)
    ax.set_ylabel(f"minimum {results['distance'].upper()} per image")


def _draw_size(ax, results: dict[str, Any]) -> None:
    for n, m in results["models"].items():
        rows = [r for r in m["sizes"] if r["median"] is not None]
        ax.plot([r["k"] for r in rows], [r["median"] for r in rows], "o-", label=n)
    ax.set_xlabel("ensemble size k (first k members)")
    ax.set_ylabel(f"median minimum {results['distance'].upper()}")
    ax.legend()


def _draw_transfer(ax, results: dict[str, Any]) -> None:
    names = list(results["models"])
    ax.bar(names, [results["models"][n]["mean_probability"] or 0.0 for n in names])
    ax.set_ylabel("transfer probability inside the ensemble")


def _draw_substitute(ax, models: dict[str, dict[str, Any]]) -> None:
    for i, (n, m) in enumerate(models.items()):
        color = f"C{i}"
        ax.plot(m["eps"], m["adversarial_accuracy"], "o-", color=color, label=f"{n}: substitute")
        ax.plot(m["eps"], m["noise_accuracy"], "s--", color=color, alpha=0.6, label=f"{n}: Gaussian noise")
    ax.set_xlabel("L∞ distortion ε")
    ax.set_ylabel("target accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)


def _draw_accuracy(ax, results: dict[str, Any]) -> None:
    names = list(results["models"])
    ax.bar(names, [results["models"][n]["test_accuracy"] for n in names])
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)


_PLOTS = {"accuracy": ("accuracy.png", _draw_accuracy), "distortion": ("distortion.png", _draw_distortion),
          "width": ("distortion.png", _draw_distortion), "size": ("ensemble_size.png", _draw_size),
          "transfer": ("transfer.png", _draw_transfer),
          "substitute": ("substitute.png", lambda ax, results: _draw_substitute(ax, results["models"]))}


def _plots(results: dict[str, Any], run_dir: Path) -> list[Path]:
    plt = _pyplot()
    if plt is None:
        return []
    kind = results["kind"]
    name, draw = _PLOTS[kind]
    return [_figure(plt, lambda ax: draw(ax, results), run_dir / name, _TITLES[kind])]


def plot_substitute(models: dict[str, dict[str, Any]], out: str | os.PathLike, *,
                    title: str = _TITLES["substitute"]) -> Path:
    """Plot target accuracy against the L∞ budget (the paper's Figure 2): per model, the
    transferred examples (solid) and the Gaussian-noise control (dashed).

    ``models`` maps names to ``eps``, ``adversarial_accuracy`` and ``noise_accuracy`` lists;
    the PNG is written atomically to ``out``.  Needs matplotlib (the ``plots`` extra).
    """
    return _figure(_pyplot(required=True), lambda ax: _draw_substitute(ax, models), Path(out), title)


def plot_examples(original: np.ndarray, adversarial: dict[str, np.ndarray], out: str | os.PathLike, *,
                  input_shape: tuple[int, ...] | None = None, title: str = "") -> Path:
    """Plot ``original`` and each model's adversarial version of it (the paper's Figure 3).

    Inputs whose ``input_shape`` is an image (``(h, w)`` or ``(h, w, c)``) are drawn as images
    with their perturbations; all others as curves over the feature index.
    """
    plt = _pyplot(required=True)
    out = Path(out)
    image = input_shape is not None and len(input_shape) in (2, 3) and min(input_shape[:2]) > 1
    if image:
        fig, axes = plt.subplots(2, 1 + len(adversarial), figsize=(2.2 * (1 + len(adversarial)), 4.6), squeeze=False)
        show = lambda v: np.clip(v.reshape(input_shape), 0, 1).squeeze()  # noqa: E731
        axes[0, 0].imshow(show(original), cmap="gray", vmin=0, vmax=1)
        axes[0, 0].set_title("original", fontsize=9)
        axes[1, 0].axis("off")
        for j, (name, x) in enumerate(adversarial.items(), 1):
            axes[0, j].imshow(show(x), cmap="gray", vmin=0, vmax=1)
            axes[0, j].set_title(f"{name}: L2 {np.linalg.norm(x - original):.2f}", fontsize=9)
            delta = (x - original).reshape(input_shape)
            delta = np.abs(delta).sum(-1) if delta.ndim == 3 else np.abs(delta)
            axes[1, j].imshow(delta, cmap="magma")
            axes[1, j].set_title("|perturbation|", fontsize=8)
        for a in axes.ravel():
            a.set_xticks([])
            a.set_yticks([])
    else:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        ax.plot(original, "k-", lw=1.5, label="original")
        for name, x in adversarial.items():
            ax.plot(x, lw=1, alpha=0.85, label=f"{name} (L2 {np.linalg.norm(x - original):.2f})")
        ax.set_xlabel("feature (time step)")
        ax.set_ylabel("value")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    path = _save(fig, out)
    plt.close(fig)
    return path
