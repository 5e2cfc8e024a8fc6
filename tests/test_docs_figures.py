"""The README's and docs/benchmarks.md's figures are the records' (#30): both are rebuilt from
``benchmarks/results/*.json`` by ``benchmarks/report.py``, and a stale file fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_doc_is_its_records(report):
    assert (ROOT / "docs" / "benchmarks.md").read_text() == report.render_report(), (
        "docs/benchmarks.md differs from its records: run python benchmarks/report.py")


def test_readme_blocks_are_their_records(report):
    text = (ROOT / "README.md").read_text()
    names = [m.group("name") for m in report._BLOCK.finditer(text)]
    assert set(names) == set(report.README_BLOCKS), "every README block has a builder, and every builder a block"
    assert text == report.render_readme(text), "a README figure differs from its record: run python benchmarks/report.py"


def test_a_changed_figure_is_caught(report):
    text = (ROOT / "README.md").read_text()
    stale = text.replace("<!-- begin generated: accuracy -->\n", "<!-- begin generated: accuracy -->\n| SCD01 | 100 | 0.999 |\n", 1)
    assert stale != text and report.render_readme(stale) == report.render_readme(text) != stale
    with pytest.raises(ValueError, match="no builder"):
        report.render_readme("<!-- begin generated: nonsense -->\n<!-- end generated -->")


def test_results_doc_is_its_records():
    """docs/results.md is rendered from the run summaries kept in docs/results/<dataset>/."""
    spec = importlib.util.spec_from_file_location("results_doc", ROOT / "benchmarks" / "results_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert any((ROOT / "docs" / "results").glob("*/distortion.json")), "no run summaries in docs/results/"
    assert (ROOT / "docs" / "results.md").read_text() == module.render(), (
        "docs/results.md differs from its records: run python benchmarks/results_doc.py --render-only")
