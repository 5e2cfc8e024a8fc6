"""Plots and tables of ``scd eval`` reports and ``scd attack`` records, built from small
synthetic results: what each plot claims (scales, intervals, titles) is checked against the
numbers it was given, recomputed here independently."""

import json

import numpy as np
import pytest
from scipy import stats

from eval.report import (
    examples_figure,
    figures,
    plot_attack,
    render,
    transfer_intervals,
)
from eval.runstore import RunStore
from eval.suite import summarize

pytest.importorskip("matplotlib")

HSJ = {"method": "hsj", "norm": None, "iters": 7, "init_size": None, "theta": None, "max_queries": None}
DATA = {"name": "cifar10", "classes": [0, 1], "data_dir": None, "path": None}


def _results(kind, models, **config):
    return {"kind": kind, "package_version": "0", "date": "today", "models": models, "distance": "l2",
            "config": {"kind": kind, "data": DATA, "attack": HSJ, "runs": 3, "seed": 0, "points": list(range(12)),
                       **config}}


def _size_results():
    rows = [{"k": k, "n": 12, "n_success": 12, "median": 0.5 * k ** 0.5, "mean": 0.5 * k ** 0.5,
             "median_ci": [0.4 * k ** 0.5, 0.7 * k ** 0.5], "mean_ci": None, "misclassified": 0, "pending": 0}
            for k in (1, 2, 5, 10, 20, 50)]
    return _results("size", {"scd01": {"sizes": rows}, "mlp": {"sizes": rows[:4]}})


def _transfer_results():
    rng = np.random.default_rng(1)
    models = {}
    for name, p in (("scd01", 0.1), ("mlp", 0.4)):
        probability = np.clip(rng.normal(p, 0.1, 12), 0, 1).tolist()
        probability[3] = None  # no member's attack succeeded on this image
        models[name] = {"probability": probability, "mean_probability": float(np.nanmean(np.array(probability, float))),
                        "members_attacked": 8, "n_members": 8, "member_success_rate": 1.0, "median_member_l2": 0.5,
                        "seconds": 1.0}
    return _results("transfer", models, runs=1)


def _accuracy_results(n_test=2000):
    models = {name: {"members": 8, "train_accuracy": 0.99, "test_accuracy": acc, "n_test": n_test,
                     "predict_rows_per_second": 1e4, "fit_seconds": fit}
              for name, acc, fit in (("scd01", 0.871, 65.8), ("mlp", 0.902, 11.2), ("rf", 0.884, None))}
    return _results("accuracy", models)


def _distortion_results():
    models = {name: {"n": 12, "n_success": 11, "mean": 1.0, "median": 0.9, "mean_ci": [0.8, 1.2],
                     "median_ci": [0.7, 1.1], "per_sample": [None] + list(np.linspace(0.5, 1.5, 11)),
                     "misclassified": 0, "pending": 0, "median_queries": 100.0, "seconds": 1.0}
              for name in ("scd01", "mlp")}
    return _results("distortion", models)


def _json(values):
    return [None if np.isnan(v) else float(v) for v in values]


def _wilson(k, n):
    """The 95 % Wilson score interval from its closed form."""
    z, p = stats.norm.ppf(0.975), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _vertical_segments(ax):
    """(x, low, high) of every vertical error bar drawn on ``ax``."""
    from matplotlib.container import ErrorbarContainer

    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer) and c.lines[2]:
            out += [(s[0][0], s[0][1], s[1][1]) for s in c.lines[2][0].get_segments()]
    return out


@pytest.mark.parametrize("kind, make, n", [("size", _size_results, "n = 12 images"),
                                           ("transfer", _transfer_results, "n = 12 images"),
                                           ("distortion", _distortion_results, "n = 12 images"),
                                           ("accuracy", _accuracy_results, "n = 2000 test points")])
def test_titles_name_the_dataset_the_attack_the_norm_and_n(kind, make, n):
    title = next(iter(figures(make()).values())).get_suptitle()
    assert "cifar10 (0 vs 1)" in title and n in title
    if kind != "accuracy":
        assert "HopSkipJump L2, 7 iterations" in title


def test_ensemble_size_axis_is_logarithmic_and_draws_the_recorded_intervals():
    results = _size_results()
    ax = figures(results)["ensemble_size.png"].axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "5", "10", "20", "50"]
    drawn = sorted((round(lo, 9), round(hi, 9)) for _, lo, hi in _vertical_segments(ax))
    recorded = sorted((round(r["median_ci"][0], 9), round(r["median_ci"][1], 9))
                      for m in results["models"].values() for r in m["sizes"])
    assert drawn == recorded


def test_transfer_bars_carry_bootstrap_intervals_over_images_and_n(tmp_path):
    results = _transfer_results()
    intervals = transfer_intervals(results)
    for name, m in results["models"].items():
        values = np.array([p for p in m["probability"] if p is not None])
        assert intervals[name]["n"] == 11 and intervals[name]["mean"] == pytest.approx(values.mean())
        # scipy's percentile bootstrap of the mean, with its own resampling, agrees to within resampling noise
        ref = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20000,
                              random_state=np.random.default_rng(0)).confidence_interval
        assert intervals[name]["ci"] == pytest.approx([ref.low, ref.high], abs=0.01)
    ax = figures(results)["transfer.png"].axes[0]
    drawn = sorted((lo, hi) for _, lo, hi in _vertical_segments(ax))
    np.testing.assert_allclose(drawn, sorted(tuple(t["ci"]) for t in intervals.values()))
    assert sum("n = 11 images" in t.get_text() for t in ax.texts) == 2
    render(results, tmp_path)
    lo, hi = intervals["mlp"]["ci"]
    assert f"| mlp | 8/8 | {intervals['mlp']['mean']:.4f} | [{lo:.3f}, {hi:.3f}] | 11 |" in (
        tmp_path / "report.md").read_text()


def test_accuracy_plot_shows_accuracy_with_wilson_intervals_and_training_time_on_a_log_axis(tmp_path):
    results = _accuracy_results()
    acc_ax, fit_ax = figures(results)["accuracy.png"].axes
    low, high = acc_ax.get_xlim()
    assert 0.8 < low < 0.871 and 0.902 < high <= 1.0  # zoomed on the differences, not 0 to 1
    assert fit_ax.get_xscale() == "log"
    assert sorted(x for line in fit_ax.get_lines() for x in line.get_xdata()) == [11.2, 65.8]
    assert any("not recorded" in t.get_text() for t in fit_ax.texts)  # rf saved no training time
    segments = [s for c in acc_ax.containers for s in c.lines[2][0].get_segments()]
    drawn = sorted((s[0][0], s[1][0]) for s in segments)
    expected = sorted(_wilson(round(m["test_accuracy"] * 2000), 2000) for m in results["models"].values())
    np.testing.assert_allclose(drawn, expected, atol=1e-9)
    render(results, tmp_path)
    lo, hi = _wilson(round(0.871 * 2000), 2000)
    assert f"| scd01 | 8 | 0.9900 | 0.8710 | [{lo:.3f}, {hi:.3f}] | 2000 |" in (tmp_path / "report.md").read_text()


def test_examples_share_one_colour_scale_with_a_colour_bar():
    rng = np.random.default_rng(0)
    shape = (6, 5, 3)
    original = rng.uniform(0.2, 0.8, np.prod(shape))
    adversarial = {"small": original + rng.normal(0, 0.01, original.shape),
                   "large": original + rng.normal(0, 0.2, original.shape)}
    fig = examples_figure(original, adversarial, input_shape=shape, norm="l2", title="t")
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "magma"]
    largest = max(np.abs(x - original).reshape(shape).max(axis=-1).max() for x in adversarial.values())
    assert len(maps) == 2 and all(im.get_clim() == pytest.approx((0.0, largest)) for im in maps)
    bars = [ax for ax in fig.axes if "perturbation" in ax.get_ylabel()]
    assert len(bars) == 1 and bars[0].get_ylim() == pytest.approx((0.0, largest))
    titles = [ax.get_title() for ax in fig.axes]
    for name, x in adversarial.items():
        assert f"{name}\nL2 = {np.linalg.norm(x - original):.3g}" in titles


def test_budget_curves_of_a_distortion_run_come_from_its_records(tmp_path):
    """The table's and the plot's numbers are the per-budget success rates and medians over every
    (image, run) attack of the records, failures (None) counting as infinitely far."""
    rng = np.random.default_rng(3)
    config = {"kind": "distortion", "data": {"name": "digits", "classes": None, "data_dir": None, "path": None},
              "attack": HSJ, "n": 4, "runs": 2, "seed": 0, "points": [5, 6, 7, 8],
              "models": {m: {"path": str(tmp_path / f"{m}.model"), "sha256": "0"} for m in ("a", "b")}}
    store = RunStore(tmp_path, config)
    columns = {"a": [], "b": []}
    for model in ("a", "b"):
        for run in (0, 1):
            d = np.sort(rng.uniform(0.5, 3.0, (3, 4)), axis=0)[::-1]  # each sample's best only shrinks
            d[:, 0] = [np.nan, np.nan, 1.0] if run == 0 else np.nan  # found late, or never
            if model == "b":
                d[:, 1] = 0.0
            already = [False, model == "b", False, False]
            store.add({"key": f"{model}.r{run}.c0", "kind": "attack", "model": model, "run": run,
                       "sample_ids": [5, 6, 7, 8], "success": np.isfinite(d[-1]).tolist(), "l2": _json(d[-1]),
                       "l0": [1.0] * 4, "l1": [1.0] * 4, "linf": [1.0] * 4, "already_adversarial": already,
                       "queries": [10] * 4, "calls": [1] * 4, "budget_queries": [100, 1000, 10000],
                       "distance_at": [_json(row) for row in d],
                       "seconds": 0.1}, {})
            columns[model].append(d[:, ~np.array(already)])
    results = summarize(store)
    for model, parts in columns.items():
        d = np.where(np.isnan(np.hstack(parts)), np.inf, np.hstack(parts))
        curve = results["models"][model]["budget_curve"]
        assert curve["n"] == d.shape[1] == (8 if model == "a" else 6)
        assert curve["success_rate"] == pytest.approx([np.isfinite(row).mean() for row in d])
        assert [np.inf if m is None else m for m in curve["median_distance"]] == pytest.approx(
            [np.median(row) for row in d])
    render(results, tmp_path)
    report = (tmp_path / "report.md").read_text()
    a = results["models"]["a"]["budget_curve"]
    assert (f"| a | 8 | {a['success_rate'][0]:.2f} / {a['median_distance'][0]:.3f} | "
            f"{a['success_rate'][1]:.2f} / {a['median_distance'][1]:.3f} |") in report
    assert "![budget](budget.png)" in report and (tmp_path / "budget.png").exists()


def test_attack_record_plots(tmp_path):
    """``scd attack --out R.json`` draws R_budget.png and R_robust_accuracy.png from its record."""
    record = {"config": {"method": "hsj", "norm": "inf", "iters": 5, "model_path": "/m/scd01.scd", "eps": [0.1]},
              "dataset": {"name": "digits", "classes": [0, 1]}, "samples": [{}] * 10,
              "budget_curve": {"queries": [100, 1000, 10000], "median_distance": [None, 0.3, 0.2],
                               "success_rate": [0.4, 0.8, 0.9], "n": 10},
              "robust_accuracy": {"eps": [0.05, 0.1, 0.2, 0.4], "robust_accuracy": [0.9, 0.6, 0.2, 0.0],
                                  "norm": "linf", "points": 10, "from": "the distances of one run"}}
    paths = plot_attack(json.loads(json.dumps(record)), tmp_path / "r")
    assert [p.name for p in paths] == ["r_budget.png", "r_robust_accuracy.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    record["config"]["method"] = "substitute"
    assert plot_attack(record, tmp_path / "s") == []


def test_accuracy_records_written_without_the_test_size_get_it_from_the_dataset(tmp_path):
    from eval.datasets import load_dataset

    data = {"name": "digits", "classes": None, "data_dir": None, "path": None}
    store = RunStore(tmp_path, {"kind": "accuracy", "data": data, "seed": 0, "models": {"m": {"path": "x"}}})
    store.add({"key": "m", "kind": "accuracy", "model": "m", "sample_ids": [], "members": 1, "train_accuracy": 1.0,
               "test_accuracy": 0.5, "predict_rows_per_second": 1.0, "fit_seconds": None, "seconds": 0.1}, {})
    assert summarize(store)["models"]["m"]["n_test"] == len(load_dataset("digits").y_test)
