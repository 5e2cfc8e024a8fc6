"""Markdown tables and PNG plots of an evaluation run, built from its ``results.json`` only.

:func:`render` writes ``report.md`` (and plots when matplotlib is installed, the ``plots``
extra) into the run directory; ``scd eval report RUN_DIR`` calls it again on the saved
results, so a report can be rebuilt, restyled or moved without rerunning anything.
:func:`figures` are its plots.  What a plot claims is on it: every title names the dataset, the
attack with its norm, and n (:func:`subtitle`); intervals are drawn and say which they are
(bootstrap over images for distortions and transfer, :func:`transfer_intervals`; Wilson for
accuracies); ensemble sizes and query budgets are on log axes.  Distortion runs whose records
carry query-budget curves also get ``budget.png`` and a budget table (:func:`budget_table`).
:func:`plot_examples` draws an original input and its adversarial versions against each model
(the paper's Figure 3; images are shown as images, their perturbations on one shared colour
scale, other inputs as curves).  :func:`plot_attack` draws the query-budget and
robust-accuracy curves of an ``scd attack`` record.  :func:`substitute_table` and
:func:`plot_substitute` are the substitute curve's table and plot, shared with the benchmark
scripts.

Where the run is on CIFAR-10 0 vs 1 and a model's name is one of the paper's (``scd01``,
``scdce``, ``scdcebnn``, ``mlp``, ``bnn``, ``resnet50``, ``rf``, ``lenet``/``cnn``), the tables
show the paper's figure (:mod:`eval.paper`) next to ours.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_open
from .paper import CIFAR as PAPER_CIFAR

# PAPER_CIFAR: the paper's figures per model, kept under their old name

__all__ = ["PAPER_CIFAR", "attack_label", "attacked_population", "budget_table", "dataset_label", "examples_figure",
           "figures", "norm_label", "plot_attack", "plot_examples", "plot_substitute", "render", "substitute_table",
           "subtitle", "transfer_intervals", "wilson_interval"]


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
    lines = [("| model | members | train accuracy | test accuracy | 95 % CI (Wilson) | test points | paper (%) | "
             "training time | predict rows/s |"), "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        fit = "n/a" if m.get("fit_seconds") is None else f"{m['fit_seconds']:.1f} s"
        lines.append(f"| {name} | {m['members']} | {m['train_accuracy']:.4f} | {m['test_accuracy']:.4f} | "
                     f"{_ci(wilson_interval(m))} | {m.get('n_test', 'n/a')} | {_paper(results, name, 'accuracy')} | "
                     f"{fit} | {m['predict_rows_per_second']:.0f} |")
    return lines


def _distortion_tables(results: dict[str, Any]) -> list[str]:
    d = norm_label(results["distance"])
    lines = [(f"| model | success | mean min. {d} | 95 % CI | median min. {d} | 95 % CI | paper (mean) | "
             "median queries | time |"), "|---|---|---|---|---|---|---|---|---|"]
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
    curves = _budget_curves(results)
    if curves:
        lines += ["", ("Query budget: per model, over every (image, run) attack, the fraction that had found an "
                  f"adversarial example within each number of queries, and the median best {d} so far (n/a while "
                  "more than half had not):"), "", *budget_table(curves, results["distance"])]
    matrix = results.get("transfer_matrix")
    if matrix:
        names = matrix["sources"]
        lines += ["", ("Cross-model transfer of the closest adversarial examples (fraction of each source model's "
                  "examples that the column's model also misclassifies, all predicted in one batch; SCD answers "
                  "depend on the row alone, so only a baseline's diagonal can fall below 1, where an example lies "
                  "within float32 rounding of its boundary):"), "",
                  "| source \\ target | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for src in names:
            lines.append(f"| {src} | " + " | ".join(_f(matrix["fooled_fraction"][src][dst]) for dst in names) + " |")
    if results.get("intervals"):  # scd eval intervals
        from .intervals import interval_tables

        lines += ["", *interval_tables(results)]
    return lines


def _size_tables(results: dict[str, Any]) -> list[str]:
    d = norm_label(results["distance"])
    lines = [(f"| model | members k | success | median min. {d} | 95 % CI (median) | mean | 95 % CI (mean) | "
             "misclassified (left out) |"), "|---|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        for r in m["sizes"]:
            lines.append(f"| {name} | {r['k']} | {_success(r)} | {_f(r['median'])} | {_ci(r['median_ci'])} | "
                         f"{_f(r['mean'])} | {_ci(r['mean_ci'])} | {r['misclassified']} |")
    return lines


def _transfer_tables(results: dict[str, Any]) -> list[str]:
    lines = [("| model | members | mean transfer probability | 95 % CI (bootstrap over images) | images | paper | "
             "members' attack success | median member L2 | time |"), "|---|---|---|---|---|---|---|---|---|"]
    intervals = transfer_intervals(results)
    for name, m in results["models"].items():
        t = intervals[name]
        lines.append(f"| {name} | {m['members_attacked']}/{m['n_members']} | {_f(m['mean_probability'], 4)} | "
                     f"{_ci(t['ci'])} | {t['n']} | {_paper(results, name, 'transfer')} | "
                     f"{_f(m['member_success_rate'])} | {_f(m['median_member_l2'])} | {m['seconds']:.0f} s |")
    return lines


def substitute_table(eps: Sequence[float], models: dict[str, dict[str, Any]], over: str,
                     columns: tuple[str, str] = ("{name}: transfer", "{name}: noise")) -> list[str]:
    """Markdown rows of the substitute curve: per L∞ budget in ``eps``, each model's accuracy on
    the transferred examples and on the Gaussian-noise control, under a caption naming the
    images the accuracy is over (``over``: all test images, or only correctly classified ones,
    which changes every figure).

    ``models`` maps names to their ``adversarial_accuracy`` and ``noise_accuracy`` lists (one
    value per budget); ``columns`` are the two column headings, with ``{name}`` for the model.
    """
    head = " | ".join(f"{columns[0].format(name=n)} | {columns[1].format(name=n)}" for n in models)
    lines = [f"Target accuracy over {over}:", "", f"| L∞ ε | {head} |", "|---" * (1 + 2 * len(models)) + "|"]
    for k, e in enumerate(eps):
        cells = [f"{m['adversarial_accuracy'][k]:.3f} | {m['noise_accuracy'][k]:.3f}" for m in models.values()]
        lines.append(f"| {e:.4g} | " + " | ".join(cells) + " |")
    return lines


def attacked_population(n: int) -> str:
    """Whom ``scd eval substitute``'s accuracy is over: its attacked points, drawn among the test
    images every model classifies correctly (so every accuracy starts at 1)."""
    return f"the {n} attacked test images, all classified correctly by every model (so 1 at ε = 0)"


def _substitute_tables(results: dict[str, Any]) -> list[str]:
    names = list(results["models"])
    if not names:
        return []
    lines = substitute_table(results["models"][names[0]]["eps"], results["models"],
                             attacked_population(len(results["config"]["points"])))
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
    plots = [_save(fig, run_dir / name) for name, fig in figures(results).items()]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    # the evaluation checklist's section, where it has been run (imported here: it imports this module)
    from .checklist import report_section

    section = report_section(run_dir)
    lines += ["", *section] if section else []
    report = run_dir / "report.md"
    with atomic_open(report, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return [report, *plots]


# ------------------------------------------------------------------------------- labels
def norm_label(distance: str) -> str:
    """``L2``, ``L∞``, ... for a distance field (``l2``, ``linf``, ...)."""
    return {"l0": "L0", "l1": "L1", "l2": "L2", "linf": "L∞"}.get(distance, distance)


def dataset_label(data: dict[str, Any]) -> str:
    """The dataset of a run's config, with its classes when chosen: ``cifar10 (0 vs 1)``,
    ``mnist (10 classes)``."""
    classes = data.get("classes")
    if not classes:
        return data["name"]
    if isinstance(classes, str):  # "all"
        return f"{data['name']} ({classes} classes)"
    return f"{data['name']} ({' vs '.join(map(str, classes)) if len(classes) == 2 else f'{len(classes)} classes'})"


def attack_label(attack: dict[str, Any], runs: int | None = None) -> str:
    """An attack's dict form (:meth:`~attacks.spec.AttackSpec.to_dict`) in words:
    ``HopSkipJump L2, 100 iterations, best of 10 runs``."""
    from attacks import ATTACKS, AttackSpec

    spec = AttackSpec.from_dict(attack)
    extra = [f"{spec.iters} iterations"] if spec.iters is not None else []
    if spec.max_queries is not None:
        extra.append(f"at most {spec.max_queries} queries")
    if runs and runs > 1:
        extra.append(f"best of {runs} runs")
    return f"{ATTACKS[spec.method].__name__} {norm_label(spec.distance)}" + "".join(f", {e}" for e in extra)


def subtitle(results: dict[str, Any]) -> str:
    """What a run measured, for plot titles: the dataset, the attack and its norm, and n."""
    c, kind = results["config"], results["kind"]
    parts = [dataset_label(c["data"])]
    if kind == "accuracy":
        n = {m.get("n_test") for m in results["models"].values()}
        parts.append(f"n = {n.pop()} test points" if len(n) == 1 and None not in n else "test split")
    elif kind == "substitute":
        seeds = len(c["substitute"]["seeds"])
        parts += ["FGSM (L∞) on a substitute model",
                  f"n = {len(c['points'])} images, {seeds} substitute{'s' if seeds > 1 else ''}"]
    else:
        label = attack_label(c["attack"], c.get("runs"))
        parts += [f"{label} on each member alone" if kind == "transfer" else label, f"n = {len(c['points'])} images"]
    return " · ".join(parts)


def _title(results: dict[str, Any]) -> str:
    return f"{_TITLES[results['kind']]}\n{subtitle(results)}"


# ------------------------------------------------------------------------------- plots
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
    """Write ``fig`` as a PNG to ``path`` atomically, and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # a title wider than the figure is kept whole
    plt.close(fig)
    with atomic_open(path, "wb") as fh:
        fh.write(buffer.getvalue())
    return path


def _panels(plt, title: str, n: int = 1, width: float = 6.4, **options: Any):
    """A figure of ``n`` side-by-side panels (a list of axes) with a grid and ``title``."""
    fig, axes = plt.subplots(1, n, figsize=(width, 4.0), squeeze=False, layout="constrained", **options)
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9.5)
    return fig, list(axes[0])


def _ci_bars(centre: Sequence[float], ci: Sequence[Any]) -> np.ndarray:
    """``(2, n)`` distances below and above each centre to its interval (0 where there is none)."""
    return np.array([[0.0, 0.0] if c is None or c[0] is None else [m - c[0], c[1] - m]
                     for m, c in zip(centre, ci)]).T.reshape(2, len(centre))


def _draw_distortion(ax, results: dict[str, Any]) -> None:
    """Per model (or hidden width), each image's minimum distortion, the median and its 95 %
    bootstrap interval; a width run also joins the means."""
    models, norm = results["models"], norm_label(results["distance"])
    names = list(models)
    for i, n in enumerate(names):
        m = models[n]
        values = np.sort([v for v in m["per_sample"] if v is not None])
        spread = ((np.arange(len(values)) % 5) - 2) * 0.05  # zig-zag, so that equal values stay apart
        ax.scatter(i + spread, values, s=16, alpha=0.6, color=f"C{i}",
                   label="one image (its smallest over runs)" if i == 0 else None)
        if m["median"] is not None:
            ax.hlines(m["median"], i - 0.3, i + 0.3, colors="k", lw=2, label="median" if i == 0 else None)
            if m.get("median_ci"):
                ax.fill_between([i - 0.3, i + 0.3], *m["median_ci"], color="k", alpha=0.12, lw=0,
                                label="95 % bootstrap CI of the median" if i == 0 else None)
        else:
            ax.annotate("no success", (i, 0), ha="center", va="bottom", fontsize=8)
    if results["kind"] == "width":
        ax.plot(range(len(names)), [models[n]["mean"] for n in names], "k--", lw=1, label="mean")
    ax.set_xticks(range(len(names)), [f"{n}\n{models[n]['n_success']}/{models[n]['n']}" for n in names])
    what = "hidden nodes" if results["kind"] == "width" else "model"
    ax.set_xlabel(f"{what} (images with an adversarial example found / attacked)", fontsize=9)
    ax.set_ylabel(f"minimum {norm} distortion per image")
    ax.legend(fontsize=8)


def _draw_size(ax, results: dict[str, Any]) -> None:
    """Median minimum distortion against the ensemble size k on a log axis, with the medians'
    95 % bootstrap intervals; the models are set slightly apart so that the bars stay visible."""
    from matplotlib.ticker import NullLocator

    models = results["models"]
    ks = sorted({r["k"] for m in models.values() for r in m["sizes"]})
    for i, (n, m) in enumerate(models.items()):
        rows = [r for r in m["sizes"] if r["median"] is not None]
        if not rows:
            continue
        k = np.array([r["k"] for r in rows], np.float64) * 1.04 ** (i - (len(models) - 1) / 2)
        med = [r["median"] for r in rows]
        ax.errorbar(k, med, yerr=_ci_bars(med, [r.get("median_ci") for r in rows]), fmt="o-", color=f"C{i}",
                    capsize=3, ms=5, label=n)
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("ensemble size k: its first k members (log scale)")
    ax.set_ylabel(f"median minimum {norm_label(results['distance'])}\n(95 % bootstrap CI over images)")
    ax.legend(fontsize=8)


def transfer_intervals(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model of a transfer run: the mean transfer probability over images, its 95 %
    bootstrap interval over images (seeded with the run's seed; None from fewer than two) and
    ``n``, the images where at least one member's attack succeeded."""
    from .stats import bootstrap_ci

    seed = int(results["config"].get("seed", 0))
    out = {}
    for name, m in results["models"].items():
        values = [p for p in m.get("probability", []) if p is not None]
        lo, hi = bootstrap_ci(values, "mean", seed=seed)
        out[name] = {"mean": m["mean_probability"], "ci": None if math.isnan(lo) else [lo, hi], "n": len(values)}
    return out


def _draw_transfer(ax, results: dict[str, Any]) -> None:
    """Bars of the mean transfer probability with their bootstrap intervals and n."""
    stats = transfer_intervals(results)
    names = list(stats)
    means = [stats[n]["mean"] or 0.0 for n in names]
    ax.bar(range(len(names)), means, color=[f"C{i}" for i in range(len(names))], alpha=0.8)
    ax.errorbar(range(len(names)), means, yerr=_ci_bars(means, [stats[n]["ci"] for n in names]), fmt="none",
                capsize=5, ecolor="k")
    for i, n in enumerate(names):
        top = stats[n]["ci"][1] if stats[n]["ci"] else means[i]
        text = f"n = {stats[n]['n']} images" if stats[n]["mean"] is not None else "n/a: no member\nattack succeeded"
        ax.annotate(text, (i, top), textcoords="offset points", xytext=(0, 3), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("mean transfer probability over images\n(95 % bootstrap CI; n images)")
    ax.margins(y=0.15)


def _draw_substitute(ax, models: dict[str, dict[str, Any]]) -> None:
    for i, (n, m) in enumerate(models.items()):
        color = f"C{i}"
        ax.plot(m["eps"], m["adversarial_accuracy"], "o-", color=color, label=f"{n}: substitute")
        ax.plot(m["eps"], m["noise_accuracy"], "s--", color=color, alpha=0.6, label=f"{n}: Gaussian noise")
    ax.set_xlabel("L∞ distortion ε")
    ax.set_ylabel("target accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)


def _accuracy_figure(plt, results: dict[str, Any]):
    """Two panels on the same rows of models: test accuracy (Wilson 95 % interval when the run
    recorded the test size; the paper's figure as x), and training time on a log axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    models = results["models"]
    names = list(models)[::-1]  # the first model on top
    fig, (acc, fit) = _panels(plt, _title(results), 2, width=8.0, sharey=True)
    y = np.arange(len(names))
    values = [models[n]["test_accuracy"] for n in names]
    intervals = [wilson_interval(models[n]) for n in names]
    acc.errorbar(values, y, xerr=_ci_bars(values, intervals), fmt="o", color="C0", capsize=4, label="ours")
    paper = [(float(p) / 100, i) for i, n in enumerate(names) if (p := _paper(results, n, "accuracy"))]
    if paper:
        acc.plot(*zip(*paper), "x", color="C3", label="paper")
        acc.legend(fontsize=8)
    for v, i in zip(values, y):
        acc.annotate(f"{v:.3f}", (v, i), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    acc.set_yticks(y, names)
    acc.set_xlabel("test accuracy" + (" with its 95 % Wilson CI" if any(intervals) else ""))
    acc.margins(x=0.15, y=0.15)
    for n, i in zip(names, y):
        seconds = models[n].get("fit_seconds")
        if seconds:
            fit.plot([seconds], [i], "o", color="C1")
            fit.annotate(f"{seconds:,.0f} s" if seconds >= 100 else f"{seconds:.3g} s", (seconds, i), textcoords="offset points", xytext=(0, 6), ha="center",
                         fontsize=8)
        else:
            fit.annotate("not recorded", (0.5, i), xycoords=("axes fraction", "data"), ha="center", fontsize=8)
    fit.set_xscale("log")
    fit.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    fit.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    fit.xaxis.set_minor_formatter(NullFormatter())
    fit.margins(x=0.15)
    fit.set_xlabel("training time (s, log scale, as saved with the model)")
    return fig


def wilson_interval(model: dict[str, Any]) -> tuple[float, float] | None:
    """The 95 % Wilson interval of an accuracy record's test accuracy; None without its test size."""
    from .stats import wilson_ci

    n = model.get("n_test")
    return None if not n else wilson_ci(round(model["test_accuracy"] * n), n)


def _budget_figure(plt, curves: dict[str, dict[str, Any]], norm: str, title: str):
    """Two panels against the query budget (log axis): the fraction of attacks that had found an
    adversarial example, and the median best distance (a gap where over half had not)."""
    fig, (rate, dist) = _panels(plt, title, 2, width=8.5)
    for i, (name, c) in enumerate(curves.items()):
        rate.plot(c["queries"], c["success_rate"], "o-", color=f"C{i}", label=name)
        dist.plot(c["queries"], [np.nan if d is None else d for d in c["median_distance"]], "o-", color=f"C{i}",
                  label=name)
    queries = sorted({q for c in curves.values() for q in c["queries"]})
    for ax in (rate, dist):
        ax.set_xscale("log")
        ax.set_xticks(queries, [f"{q:,}" for q in queries])
        ax.set_xlabel("queries per attack (log scale)")
        ax.margins(x=0.1)
    rate.set_ylim(-0.02, 1.02)
    rate.set_ylabel("attacks with an adversarial example")
    dist.set_ylabel(f"median best {norm_label(norm)} so far\n(failures count as infinite)")
    rate.legend(fontsize=8)
    return fig


def budget_table(curves: dict[str, dict[str, Any]], norm: str) -> list[str]:
    """Markdown rows of query-budget curves (:func:`eval.stats.budget_summary`, one per model):
    per budget, the success rate and the median best distance so far."""
    queries = sorted({q for c in curves.values() for q in c["queries"]})
    lines = ["| model | attacks | " + " | ".join(f"within {q:,} queries: success / median {norm_label(norm)}"
                                                for q in queries) + " |", "|---" * (len(queries) + 2) + "|"]
    for name, c in curves.items():
        by_q = dict(zip(c["queries"], zip(c["success_rate"], c["median_distance"])))
        cells = [f"{by_q[q][0]:.2f} / {_f(by_q[q][1])}" if q in by_q else "" for q in queries]
        lines.append(f"| {name} | {c.get('n', '')} | " + " | ".join(cells) + " |")
    return lines


def _robust_accuracy_figure(plt, curve: dict[str, Any], title: str):
    """Robust accuracy against ε with 95 % Wilson intervals over the ``points`` samples."""
    from .stats import wilson_ci

    fig, (ax,) = _panels(plt, title)
    n = int(curve["points"])
    eps, acc = np.asarray(curve["eps"], np.float64), np.asarray(curve["robust_accuracy"], np.float64)
    lo, hi = np.array([wilson_ci(round(a * n), n) for a in acc]).T
    ax.fill_between(eps, lo, hi, color="C0", alpha=0.2, label="95 % Wilson CI")
    ax.plot(eps, acc, "o-", color="C0", label=f"robust accuracy ({curve['from']})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{norm_label(curve['norm'])} budget ε")
    ax.set_ylabel(f"robust accuracy (n = {n} points)")
    ax.legend(fontsize=8)
    return fig


_PLOTS = {"distortion": ("distortion.png", _draw_distortion), "width": ("distortion.png", _draw_distortion),
          "size": ("ensemble_size.png", _draw_size), "transfer": ("transfer.png", _draw_transfer),
          "substitute": ("substitute.png", lambda ax, results: _draw_substitute(ax, results["models"]))}


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The plots of a run's summary as matplotlib figures, by file name (``{}`` without
    matplotlib): one per measurement, plus the query-budget curves of a distortion run whose
    records carry them (``budget.png``)."""
    plt = _pyplot()
    if plt is None:
        return {}
    kind = results["kind"]
    if kind == "accuracy":
        return {"accuracy.png": _accuracy_figure(plt, results)}
    name, draw = _PLOTS[kind]
    fig, (ax,) = _panels(plt, _title(results), width=7.0 if kind in ("distortion", "width") else 6.4)
    draw(ax, results)
    out = {name: fig}
    if results.get("intervals"):  # scd eval intervals
        from .intervals import accuracy_figure

        out["certified_accuracy.png"] = accuracy_figure(plt, results)
    curves = _budget_curves(results)
    if curves:
        out["budget.png"] = _budget_figure(plt, curves, results["distance"],
                                           f"Best distortion against the query budget\n{subtitle(results)}")
    return out


def _budget_curves(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: m["budget_curve"] for n, m in results["models"].items() if m.get("budget_curve")}


def _spec_of(config: dict[str, Any]) -> dict[str, Any]:
    """The attack's dict form inside the flat config of an ``scd attack`` record."""
    from dataclasses import fields

    from attacks import AttackSpec

    return {f.name: config[f.name] for f in fields(AttackSpec) if f.name in config}


def plot_attack(record: dict[str, Any], stem: str | os.PathLike) -> list[Path]:
    """The plots of an ``scd attack`` JSON record: its query-budget curve as
    ``<stem>_budget.png`` and its robust-accuracy curve as ``<stem>_robust_accuracy.png``, for
    those the record has; none without matplotlib.  Returns the files written."""
    plt = _pyplot()
    if plt is None or record["config"].get("method") == "substitute":
        return []
    spec = _spec_of(record["config"])
    about = f"{dataset_label(record['dataset'])} · {attack_label(spec)} · n = {len(record['samples'])} points"
    stem = Path(stem)
    out = []
    if record.get("budget_curve"):
        from attacks import AttackSpec

        fig = _budget_figure(plt, {Path(record["config"]["model_path"]).stem: record["budget_curve"]},
                             AttackSpec.from_dict(spec).distance, f"Best distortion against the query budget\n{about}")
        out.append(_save(fig, stem.with_name(stem.name + "_budget.png")))
    if record.get("robust_accuracy"):
        fig = _robust_accuracy_figure(plt, record["robust_accuracy"], f"Robust accuracy against ε\n{about}")
        out.append(_save(fig, stem.with_name(stem.name + "_robust_accuracy.png")))
    return out


def plot_substitute(models: dict[str, dict[str, Any]], out: str | os.PathLike, *,
                    title: str = _TITLES["substitute"]) -> Path:
    """Plot target accuracy against the L∞ budget (the paper's Figure 2): per model, the
    transferred examples (solid) and the Gaussian-noise control (dashed).

    ``models`` maps names to ``eps``, ``adversarial_accuracy`` and ``noise_accuracy`` lists;
    the PNG is written atomically to ``out``.  Needs matplotlib (the ``plots`` extra).
    """
    fig, (ax,) = _panels(_pyplot(required=True), title)
    _draw_substitute(ax, models)
    return _save(fig, Path(out))


def examples_figure(original: np.ndarray, adversarial: dict[str, np.ndarray], *,
                    input_shape: tuple[int, ...] | None = None, norm: str = "l2", title: str = ""):
    """The figure of :func:`plot_examples` (a matplotlib figure; needs matplotlib).

    Image inputs: the top row shows the original and each model's adversarial version, labelled
    with the model and its ``norm`` distance; the bottom row each perturbation's size per pixel
    (the largest over the colour channels), all on one colour scale from 0 to the largest value
    over the panels, with one colour bar, so that brighter means larger in every panel.
    """
    from attacks import distances

    plt = _pyplot(required=True)
    original = np.asarray(original, np.float64).ravel()
    dist = {name: float(distances(original[None], np.asarray(x, np.float64).reshape(1, -1))[norm][0])
            for name, x in adversarial.items()}
    label = norm_label(norm)
    image = input_shape is not None and len(input_shape) in (2, 3) and min(input_shape[:2]) > 1
    if not image:
        fig, (ax,) = _panels(plt, title, width=8.0)
        ax.plot(original, "k-", lw=1.5, label="original")
        for name, x in adversarial.items():
            ax.plot(np.ravel(x), lw=1, alpha=0.85, label=f"{name} ({label} {dist[name]:.2f})")
        ax.set_xlabel("feature (time step)")
        ax.set_ylabel("value")
        ax.legend(fontsize=8)
        return fig
    cols = 1 + len(adversarial)
    fig, axes = plt.subplots(2, cols, figsize=(max(2.1 * cols + 0.8, 6.4), 4.9), squeeze=False, layout="constrained")
    show = lambda v: np.clip(np.asarray(v).reshape(input_shape), 0, 1).squeeze()
    gray = {"cmap": "gray", "vmin": 0, "vmax": 1}
    axes[0, 0].imshow(show(original), **gray)
    axes[0, 0].set_title("original", fontsize=9)
    axes[1, 0].axis("off")
    size = {}
    for name, x in adversarial.items():
        delta = np.abs(np.asarray(x, np.float64).ravel() - original).reshape(input_shape)
        size[name] = delta.max(axis=-1) if delta.ndim == 3 else delta
    top = max([float(s.max()) for s in size.values()] + [0.0]) or 1.0  # one scale for every panel
    im = None
    for j, name in enumerate(adversarial, 1):
        axes[0, j].imshow(show(adversarial[name]), **gray)
        axes[0, j].set_title(f"{name}\n{label} = {dist[name]:.3g}", fontsize=9)
        im = axes[1, j].imshow(size[name], cmap="magma", vmin=0.0, vmax=top)
        axes[1, j].set_title(f"largest {size[name].max():.3g}", fontsize=8)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    if im is not None:
        channels = "\n(largest channel)" if len(input_shape) == 3 and input_shape[-1] > 1 else ""
        fig.colorbar(im, ax=list(axes[1, 1:]), shrink=0.9, label=f"|perturbation| per pixel{channels}")
    if title:
        fig.suptitle(title, fontsize=9.5)
    return fig


def plot_examples(original: np.ndarray, adversarial: dict[str, np.ndarray], out: str | os.PathLike, *,
                  input_shape: tuple[int, ...] | None = None, norm: str = "l2", title: str = "") -> Path:
    """Plot ``original`` and each model's adversarial version of it (the paper's Figure 3).

    Inputs whose ``input_shape`` is an image (``(h, w)`` or ``(h, w, c)``) are drawn as images
    with their perturbations on one shared colour scale (:func:`examples_figure`); all others as
    curves over the feature index.  Each model is labelled with its ``norm`` distance.
    """
    return _save(examples_figure(original, adversarial, input_shape=input_shape, norm=norm, title=title), Path(out))
