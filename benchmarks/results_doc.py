"""Rebuild ``docs/results.md`` from the evaluation runs of ``benchmarks/eval_cifar.sh``.

    python benchmarks/results_doc.py [--runs runs]     # collect the runs, then render
    python benchmarks/results_doc.py --render-only     # render from the collected records

Collecting copies ``RUNS/<dataset>/<measurement>/results.json`` of every dataset that has been
run to ``docs/results/<dataset>/<measurement>.json`` (the records the document cites, kept in
the repository) and the plots to ``docs/results/``; rendering builds the document from those
records alone, so ``tests/test_docs_figures.py`` can check that every figure in it is its
record's.  Our numbers stand next to the paper's (CIFAR-10 0 vs 1).  The findings paragraph
of each dataset is ``benchmarks/results_notes.md`` (hand-written after reading the numbers).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import paper  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402
from eval.report import substitute_table  # noqa: E402

DOC = ROOT / "docs" / "results.md"
FIGURES = ROOT / "docs" / "results"
NOTES = ROOT / "benchmarks" / "results_notes.md"


MEASUREMENTS = ("accuracy", "distortion", "transfer", "size", "substitute")
PLOTS = (("accuracy", "accuracy.png"), ("distortion", "distortion.png"), ("distortion", "budget.png"),
         ("size", "ensemble_size.png"), ("transfer", "transfer.png"), ("substitute", "substitute.png"))


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def collect(runs: Path) -> None:
    """Copy every dataset's run results and plots from ``runs`` into ``docs/results/``."""
    for folder in sorted(runs.iterdir()):
        if not (folder.is_dir() and any((folder / r / "results.json").exists() for r in ("accuracy", "distortion"))):
            continue
        data = folder.name
        (FIGURES / data).mkdir(parents=True, exist_ok=True)
        for name in MEASUREMENTS:
            src = folder / name / "results.json"
            if src.exists():
                atomic_write_bytes(FIGURES / data / f"{name}.json", src.read_bytes())
        for run, png in PLOTS:
            if (folder / run / png).exists():
                shutil.copyfile(folder / run / png, FIGURES / f"{data}_{png}")
        for old in FIGURES.glob(f"{data}_examples_*.png"):
            old.unlink()
        for src in sorted((folder / "distortion").glob("examples_*.png"))[:1]:
            shutil.copyfile(src, FIGURES / f"{data}_{src.name}")


def _fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def _paper(name: str, what: str, cifar: bool):
    return paper.CIFAR.get(name, {}).get(what, "") if cifar else ""


def _section(data: str, folder: Path) -> list[str]:
    cifar = data == "cifar10"
    acc, dist = _load(folder, "accuracy"), _load(folder, "distortion")
    transfer, size, sub = _load(folder, "transfer"), _load(folder, "size"), _load(folder, "substitute")
    first = next(r for r in (acc, dist, transfer, size, sub) if r)
    d = first["config"]["data"]
    lines = [f"## {d['name']} {tuple(d['classes']) if d.get('classes') else ''}", ""]
    if acc and dist:
        lines += ["Clean test accuracy and HopSkipJump minimum L2 (mean and median over the same test images, "
                  "95 % bootstrap interval of the mean), and the transfer probability inside each ensemble:", "",
                  "| model | members | test accuracy | paper | HSJ mean min. L2 [95 % CI] | median | paper (mean) | "
                  "transfer probability | paper |", "|---|---|---|---|---|---|---|---|---|"]
        for name, a in acc["models"].items():
            m = dist["models"].get(name, {})
            t = (transfer or {"models": {}})["models"].get(name, {})
            ci = m.get("mean_ci")
            ci = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] is not None else ""
            lines.append(f"| {name} | {a['members']} | {a['test_accuracy']:.4f} | {_paper(name, 'accuracy', cifar)} | "
                         f"{_fmt(m.get('mean'))}{ci} ({m.get('n_success', 0)}/{m.get('n', 0)}) | {_fmt(m.get('median'))} | "
                         f"{_paper(name, 'hsj_l2', cifar)} | {_fmt(t.get('mean_probability'), 4)} | "
                         f"{_paper(name, 'transfer', cifar)} |")
        c = dist["config"]
        a = {k: v for k, v in c["attack"].items() if v is not None}
        lines += ["", f"HopSkipJump {a}, {c['runs']} run(s) per image, start `{c['start']}`, test points {c['points']}; "
                  f"the transfer runs attack each member with {transfer['config']['attack'] if transfer else 'n/a'} "
                  f"on {len(transfer['config']['points']) if transfer else 0} images.", ""]
        tests = [t for t in dist.get("paired_tests", []) if "scd01" in (t["a"], t["b"])]
        if tests:
            lines += ["Paired tests of SCD01's per-image distortion against each other model:", "",
                      "| vs | pairs | mean difference | Wilcoxon p | paired t p |", "|---|---|---|---|---|"]
            for t in tests:
                other, sign = (t["b"], 1) if t["a"] == "scd01" else (t["a"], -1)
                diff = None if t["mean_difference"] is None else sign * t["mean_difference"]
                lines.append(f"| {other} | {t['n']} | {_fmt(diff)} | {_fmt(t['wilcoxon_p'], 4)} | {_fmt(t['t_p'], 4)} |")
            lines.append("")
    if size:
        ks = sorted({r["k"] for m in size["models"].values() for r in m["sizes"]})
        lines += [f"Median minimum L2 against ensemble size (first k members; {len(size['config']['points'])} images; "
                  f"paper: {paper.FIGURE1}):", "", "| model | " + " | ".join(f"k = {k}" for k in ks) + " |",
                  "|---" * (len(ks) + 1) + "|"]
        for name, m in size["models"].items():
            by_k = {r["k"]: r["median"] for r in m["sizes"]}
            lines.append(f"| {name} | " + " | ".join(_fmt(by_k.get(k)) if k in by_k else "" for k in ks) + " |")
        lines.append("")
    if sub:
        s, fig2 = sub["config"]["substitute"], paper.FIGURE2
        lines += [f"Substitute-model attack (FGSM on a substitute, {s['rounds']} augmentation rounds x {s['epochs']} "
                  f"epochs, seeds {s['seeds']}, {len(sub['config']['points'])} attacked images; paper Figure 2: at "
                  f"ε = {fig2['eps']} the MLP near {fig2['accuracy']['mlp']} %, SCD01 near "
                  f"{fig2['accuracy']['scd01']} %): target accuracy", "",
                  *substitute_table(next(iter(sub["models"].values()))["eps"], sub["models"],
                                    columns=("{name}", "{name} + noise")), ""]
    for _, png in PLOTS:
        if (FIGURES / f"{data}_{png}").exists():
            lines.append(f"![{data} {Path(png).stem.replace('_', ' ')}](results/{data}_{png})")
    for dst in sorted(FIGURES.glob(f"{data}_examples_*.png"))[:1]:
        lines.append(f"![{data} examples](results/{dst.name})")
    return lines + [""]


def render() -> str:
    """The text of ``docs/results.md``, from the records in ``docs/results/`` and the notes."""
    notes = NOTES.read_text() if NOTES.exists() else ""
    lines = ["# Results: the paper's measurements with `scd eval`", "",
             "Generated by `python benchmarks/results_doc.py` from the runs of `bash benchmarks/eval_cifar.sh` "
             "(commands and settings in that script; every run directory holds its config, per-unit records and "
             "per-sample figures; their summaries are kept in `docs/results/<dataset>/`). Distortions are over "
             "successful attacks only, each success confirmed on the real model.", "", notes.strip(), ""]
    for folder in sorted(p for p in FIGURES.iterdir() if p.is_dir()):
        if any((folder / f"{r}.json").exists() for r in ("accuracy", "distortion")):
            lines += _section(folder.name, folder)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--render-only", action="store_true", help="render from docs/results/ without collecting")
    args = parser.parse_args()
    if not args.render_only:
        collect(Path(args.runs))
    atomic_write_bytes(DOC, render().encode())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
