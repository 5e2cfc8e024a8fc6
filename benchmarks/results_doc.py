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
import functools
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import paper  # noqa: E402
from eval.io import atomic_write_bytes  # noqa: E402
from eval.checklist import flag_lines, format_table  # noqa: E402
from eval.report import attacked_population, norm_label, substitute_table  # noqa: E402

DOC = ROOT / "docs" / "results.md"
FIGURES = ROOT / "docs" / "results"
NOTES = ROOT / "benchmarks" / "results_notes.md"


MEASUREMENTS = ("accuracy", "distortion", "distortion_linf", "transfer", "size", "substitute")
PLOTS = (  # (run, its plot, the name in docs/results/ after the dataset's)
    ("accuracy", "accuracy.png", "accuracy.png"), ("distortion", "distortion.png", "distortion.png"),
    ("distortion", "certified_accuracy.png", "certified_accuracy_l2.png"),
    ("distortion_linf", "certified_accuracy.png", "certified_accuracy_linf.png"),
    ("distortion", "checklist.png", "checklist.png"), ("distortion", "budget.png", "budget.png"),
    ("size", "ensemble_size.png", "ensemble_size.png"), ("transfer", "transfer.png", "transfer.png"),
    ("substitute", "substitute.png", "substitute.png"))


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
        if (folder / "distortion" / "checklist.json").exists():
            atomic_write_bytes(FIGURES / data / "checklist.json", (folder / "distortion" / "checklist.json").read_bytes())
        for run, png, name in PLOTS:
            if (folder / run / png).exists():
                shutil.copyfile(folder / run / png, FIGURES / f"{data}_{name}")
        for old in FIGURES.glob(f"{data}_examples_*.png"):
            old.unlink()
        for src in sorted((folder / "distortion").glob("examples_*.png"))[:1]:
            shutil.copyfile(src, FIGURES / f"{data}_{src.name}")


def _fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def _paper(name: str, what: str, cifar: bool):
    return paper.CIFAR.get(name, {}).get(what, "") if cifar else ""


SCD_MODELS = ("scd01", "scdce", "scdcebnn")
CERTIFY = ROOT / "benchmarks" / "results"


def _pair(dist: dict, a: str, b: str) -> dict | None:
    """The intervals' conclusion for "a harder than b", oriented so that ``verdict == a`` confirms it."""
    for t in (dist.get("intervals") or {}).get("paired_tests", []):
        c = t["conclusion"]
        if {t["a"], t["b"]} == {a, b}:
            if t["a"] == a:
                return c
            return dict(c, a=a, b=b, a_provably_harder=c["b_provably_harder"], b_provably_harder=c["a_provably_harder"],
                        sign_test_p_a=c["sign_test_p_b"], sign_test_p_b=c["sign_test_p_a"])
    return None


def _table2_claim(dist: dict) -> list[str]:
    """SCD harder than every baseline: decided per pair by the certified intervals."""
    names = list(dist["models"])
    scd = [m for m in names if m in SCD_MODELS]
    others = [m for m in names if m not in SCD_MODELS]
    iv = dist.get("intervals")
    head = "**SCD harder to attack than MLP, BNN, RF and LeNet (Table 2).**"
    if not iv:
        return [f"* {head} Cannot decide: this run has attack distances (upper bounds) only; "
                "run `scd eval intervals` on it."]
    confirmed, refuted, open_ = [], [], []
    for a in scd:
        for b in others:
            c = _pair(dist, a, b)
            if c is None or not c["n"]:
                open_.append(f"{a} vs {b}: no common interval")
                continue
            detail = (f"{a} vs {b}: {a} provably harder on {c['a_provably_harder']} of {c['n']} images, {b} on "
                      f"{c['b_provably_harder']}")
            if c["verdict"] == a:
                confirmed.append(detail + f" (sign test p = {c['sign_test_p_a']:.3g})")
            elif c["verdict"] == b:
                refuted.append(detail + f" (sign test p = {c['sign_test_p_b']:.3g})")
            else:
                open_.append(detail)
    uncertified = [m for m, e in iv["models"].items() if not e.get("certified")]
    verdict = ("Refuted" if refuted else "Confirmed" if not open_ else
               "Partly confirmed, partly undecided" if confirmed else "Cannot decide")
    lines = [f"* {head} **{verdict}** by the certified intervals ({norm_label(iv['distance'])} on {iv['n_points']} images; a "
             "pair is decided only when one model's lower bound exceeds the other's best upper bound on enough "
             "images for a one-sided sign test at 0.05; `docs/intervals.md`)."]
    for label, group in (("Confirmed", confirmed), ("Refuted (the baseline is provably harder)", refuted),
                         ("Undecided", open_)):
        if group:
            lines.append(f"  {label}: " + "; ".join(group) + ".")
    if uncertified:
        lines.append("  Without a certificate (lower bound 0, so never provably harder): " + ", ".join(uncertified)
                     + ".")
    over = [f"{n} {dist['models'][n]['median'] / e['median_upper']:.2g}x" for n, e in iv["models"].items()
            if e.get("median_upper") and dist["models"].get(n, {}).get("median")]
    if over:
        lines.append("  The run's attack against the best upper bound (its median over the intervals' median upper "
                     "bound; 1x: the attack found the closest examples known): " + ", ".join(over) + ".")
    return lines


@functools.lru_cache(maxsize=None)
def _certify_images(votes: int) -> dict[int, dict] | None:
    """One ``bench_certify.py`` record's images by test index (read once; the Figure 1 and 2
    paragraphs of every dataset share it)."""
    path = CERTIFY / f"certify_cifar_{votes}v.json"
    return {i["index"]: i for i in json.loads(path.read_text())["images"]} if path.exists() else None


def _same_as_table(size: dict, dist: dict | None, members: dict[str, int]) -> str:
    """Whether each curve's full-size point repeats the distortion table per image (the same
    model, images, attack and seeds must give the same distances)."""
    if not dist or size["config"]["points"] != dist["config"]["points"]:
        return ""
    out = []
    for name, m in size["models"].items():
        full = dist["models"].get(name, {}).get("per_sample")
        at = [r for r in m["sizes"] if r.get("per_sample") is not None and full is not None
              and r["k"] == members.get(name)]
        for r in at:
            same = r["per_sample"] == full
            out.append(f"{name} at k = {r['k']}: {'identical' if same else '**different**'}")
    return (" The curves' full-size points against the distortion table, image by image: " + "; ".join(out) + "."
            if out else "")


def _figure1_claim(size: dict, cifar: bool, dist: dict | None, members: dict[str, int]) -> list[str]:
    """Robustness grows with ensemble size: the attack's medians by size, and on CIFAR the
    certified intervals of one SCD01 at 1 and 100 votes (``bench_certify.py``)."""
    lines = []
    growth = []
    for name, m in size["models"].items():
        by_k = {r["k"]: r["median"] for r in m["sizes"] if r["median"] is not None}
        if len(by_k) > 1:
            lo, hi = min(by_k), max(by_k)
            growth.append(f"{name} {by_k[lo]:.2f} at k = {lo} and {by_k[hi]:.2f} at k = {hi}")
    attack = "HopSkipJump's median minimum L2: " + "; ".join(growth) + "."
    attack += _same_as_table(size, dist, members)
    one, hundred = (_certify_images(1), _certify_images(100)) if cifar else (None, None)
    if one and hundred:
        common = sorted(set(one) & set(hundred))
        proven = {norm: sum(hundred[i][f"interval_{norm}"]["lower"] > one[i][f"interval_{norm}"]["upper"]
                            for i in common) for norm in ("2", "inf")}
        verdict = "Confirmed for SCD01" if min(proven.values()) > len(common) // 2 else "Cannot decide"
        lines.append(f"* **Robustness grows with ensemble size (Figure 1).** **{verdict}** by certified intervals, "
                     f"attack-independent: for one 100-vote SCD01 (`benchmarks/bench_certify.py`), the 100-vote "
                     f"ensemble's certified lower bound exceeds the exact minimum distortion of its first vote on "
                     f"{proven['2']} of {len(common)} images in L2 and {proven['inf']} in L∞. For the baselines only the "
                     f"attack speaks (an upper bound, so a flat curve may be a stalled attack): {attack}")
    else:
        lines.append(f"* **Robustness grows with ensemble size (Figure 1).** Cannot decide from bounds here (no "
                     f"certified intervals by ensemble size on this dataset); the attack alone: {attack}")
    return lines


def _table6_claim(transfer: dict, cifar: bool) -> list[str]:
    probs = [f"{n} {m['mean_probability']:.3f}" + (f" (paper {_paper(n, 'transfer', cifar)})"
                                                    if _paper(n, "transfer", cifar) != "" else "")
             for n, m in transfer["models"].items() if m.get("mean_probability") is not None]
    return ["* **Low transfer inside the ensemble (Table 6).** Cannot decide by intervals: the probability that an "
            "example crafted on one member fools another depends on where the attack stopped, not on a minimum "
            "distortion. Measured with the attack of this run: " + "; ".join(probs) + "."]


def _figure2_claim(sub: dict, cifar: bool) -> list[str]:
    fig2 = paper.FIGURE2
    at = []
    for name, m in sub["models"].items():
        eps = [round(e, 6) for e in m["eps"]]
        if fig2["eps"] in eps:
            at.append(f"{name} {m['adversarial_accuracy'][eps.index(fig2['eps'])]:.2f}"
                      + (f" (paper about {fig2['accuracy'][name] / 100:.2f})" if name in fig2["accuracy"] else ""))
    line = (f"* **The substitute attack needs a larger distortion against SCD (Figure 2).** Confirmed for this attack "
            f"only: target accuracy under the substitute's FGSM at ε = {fig2['eps']}: " + "; ".join(at) + ".")
    hundred = _certify_images(100) if cifar else None
    if hundred:
        upper = [i["interval_inf"]["upper"] for i in hundred.values() if i["interval_inf"]["upper"] is not None]
        line += (f" It is not robustness at that ε: a 100-vote SCD01 has confirmed adversarial examples within L∞ "
                 f"{max(upper):.3g} of {len(upper)} of its {len(hundred)} certified images (median "
                 f"{float(np.median(upper)):.3g}; `benchmarks/bench_certify.py`), far inside ε = {fig2['eps']}; SCD "
                 "resists the transfer of the substitute's examples, not perturbations of that size.")
    return [line]


def _claims(dist: dict | None, size: dict | None, transfer: dict | None, sub: dict | None, cifar: bool,
            members: dict[str, int]) -> list[str]:
    """One paragraph per claim of the paper: confirmed, refuted or undecided by the records, and why."""
    lines = ["The paper's claims, decided from these records:", ""]
    if dist:
        lines += _table2_claim(dist)
    if size:
        lines += _figure1_claim(size, cifar, dist, members)
    if transfer:
        lines += _table6_claim(transfer, cifar)
    if sub:
        lines += _figure2_claim(sub, cifar)
    return lines + [""]


def _interval_tables(iv: dict) -> list[str]:
    """Per model the certified intervals' summary, then every image's [lower, upper] per model."""
    fmt = lambda v: "none" if v is None else f"{v:.3g}"  # noqa: E731
    by = lambda found: ", ".join(f"{who} ({k})" for who, k in found.items())  # noqa: E731
    lines = [f"Certified intervals of the minimum {norm_label(iv['distance'])} distortion (`scd eval intervals`, "
             f"{iv['time_limit']:g} s of exact search per model and image; lower: the certificate, upper: the closest "
             f"confirmed example over {', '.join(iv['attacks'])} and the certificate's own search):", "",
             "| model | images | median lower | median upper | median upper/lower | exact | upper found by | "
             "lower bound from |", "|---|---|---|---|---|---|---|---|"]
    for name, e in iv["models"].items():
        if not e.get("certified"):
            lines.append(f"| {name} | {e['n']} | none | {fmt(e['median_upper'])} | - | - | "
                         f"{by(e['upper_found_by'])} | no certificate |")
            continue
        methods = sorted({r["lower_method"] for r in e["rows"] if r.get("lower_method")})
        ratio = "inf" if e["median_ratio"] is None else f"{e['median_ratio']:.2f}"
        lines.append(f"| {name} | {e['n']} | {fmt(e['median_lower'])} | {fmt(e['median_upper'])} | {ratio} "
                     f"| {e['exact']}/{e['n']} | {by(e['upper_found_by'])} | {', '.join(methods)} |")
    names = list(iv["models"])
    rows: dict[int, dict[str, str]] = {}
    for name, e in iv["models"].items():
        for r in e["rows"]:
            lower = "0" if r.get("misclassified") else ("none" if r["lower"] is None else f"{r['lower']:.3g}")
            upper = "inf" if r["upper"] is None else f"{r['upper']:.3g}"
            rows.setdefault(r["index"], {})[name] = f"[{lower}, {upper}]" + ("*" if r.get("exact") else "")
    lines += ["", "Per image (* = exact):", "", "| test index | " + " | ".join(names) + " |",
              "|---" * (len(names) + 1) + "|"]
    for index in sorted(rows):
        lines.append(f"| {index} | " + " | ".join(rows[index].get(n, "-") for n in names) + " |")
    return lines + [""]


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
    for run in (dist, _load(folder, "distortion_linf")):
        if run and run.get("intervals"):
            lines += _interval_tables(run["intervals"])
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
                  f"{fig2['accuracy']['scd01']} %).", "",
                  *substitute_table(next(iter(sub["models"].values()))["eps"], sub["models"],
                                    attacked_population(len(sub["config"]["points"])),
                                    columns=("{name}", "{name} + noise")), ""]
    checklist = _load(folder, "checklist")
    if checklist:
        lines += [f"Evaluation checklist of the distortion run (`scd eval checklist`, `docs/checklist.md`): the attack "
                  f"again with twice the iterations and runs on {checklist['settings']['subset']} images, success "
                  "against ε, and random noise of the same norm:", "", *format_table(checklist), "",
                  *flag_lines(checklist), ""]
    lines += _claims(dist, size, transfer, sub, cifar,
                     {n: a["members"] for n, a in (acc or {"models": {}})["models"].items()})
    for _, _, name in PLOTS:
        if (FIGURES / f"{data}_{name}").exists():
            lines.append(f"![{data} {Path(name).stem.replace('_', ' ')}](results/{data}_{name})")
    for dst in sorted(FIGURES.glob(f"{data}_examples_*.png"))[:1]:
        lines.append(f"![{data} examples](results/{dst.name})")
    return lines + [""]


def _text_section() -> list[str]:
    """Table 7's MR row from ``benchmarks/results/text_mr.json`` (``docs/text.md`` has its commands)."""
    path = CERTIFY / "text_mr.json"
    if not path.exists():
        return []
    runs = json.loads(path.read_text())
    mr = paper.TABLE7["mr"]
    lines = ["## Text: MR sentence polarity (paper Table 7)", "",
             "TextFooler-style word substitution against 8-member ensembles of every model on 50-d GloVe vectors "
             "(`benchmarks/results/text_mr.json`; commands in [`docs/text.md`](text.md)); clean accuracy on the whole "
             "test set, adversarial accuracy and mean queries over the attacked documents:", "",
             "| model (MR) | n | clean % | adv. % | mean queries | paper Cl | paper Adv | paper Que |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs.values():
        for name, m in run["models"].items():
            base = {"wordcnn": "cnn"}.get(name, name)
            cells = [mr[k].get(base, "") for k in ("cl", "adv", "que")]
            lines.append(f"| {name} | {m['n']} | {100 * m['clean_accuracy']:.1f} | {100 * m['adversarial_accuracy']:.1f} "
                         f"| {m['mean_queries']:.0f} | " + " | ".join(str(c) for c in cells) + " |")
    return lines + ["", "(`_hard`: the same fitted model switched to hard voting.)", ""]


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
    return "\n".join(lines + _text_section())


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
