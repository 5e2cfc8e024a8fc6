"""Every reference figure of eval.paper against the tables of the paper's plain text, so copies cannot drift."""
from __future__ import annotations

import re

import pytest

from eval import paper
from tests.paths import ROOT

PAPER = ROOT.parent / "shared" / "papers" / paper.PAPER_FILE  # ../shared/papers beside the checkout


@pytest.fixture(scope="module")
def text() -> list[str]:
    if not PAPER.exists():
        pytest.skip(f"the paper's text is not beside this checkout ({PAPER}); its figures cannot be checked")
    return PAPER.read_text(encoding="utf-8").splitlines()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(cell: str) -> int | float | None:
    """A printed figure: ``87`` is an int, ``.006`` and ``. 2`` (a stray space) floats, ``NA`` None;
    a percentage in parentheses (``64 (87%)``) is left to the caller."""
    cell = cell.replace(" ", "")
    if cell == "NA":
        return None
    return float(cell) if "." in cell else int(cell)


def _table(lines: list[str], number: int) -> list[list[str]]:
    """The rows (cells) of the markdown table captioned ``Table <number>:``: the one right
    after the caption, else the one right before it; separator rows left out."""
    at = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))

    def block(i: int, step: int) -> list[str]:
        while 0 <= i < len(lines) and not lines[i].strip():
            i += step
        rows = []
        while 0 <= i < len(lines) and lines[i].startswith("|"):
            rows.append(lines[i])
            i += step
        return rows if step > 0 else rows[::-1]

    rows = block(at + 1, 1) or block(at - 1, -1)
    assert rows, f"no table found for Table {number}"
    return [_cells(r) for r in rows if not re.fullmatch(r"[|\-\s]+", r)]


def _grid(rows: list[list[str]], key=str.lower) -> dict:
    """``{row label: {column label: figure}}`` of a table whose first row names the columns."""
    head = [h.lower() for h in rows[0]]
    return {key(r[0]): {head[j]: _number(c) for j, c in enumerate(r) if j and head[j]} for r in rows[1:]}


_ROWS = {"clean acc": "accuracy", "average min l_2 distortion": "distortion"}


def test_table1(text):
    rows = _table(text, 1)
    models = [h.lower() for h in rows[0][1:]]
    pairs = {r[0].lower(): {m: re.fullmatch(r"(\d+) \((\d+)%\)", c).groups() for m, c in zip(models, r[1:])}
             for r in rows[1:]}
    assert paper.TABLE1_SECONDS == {d: {m: int(s) for m, (s, _) in row.items()} for d, row in pairs.items()}
    assert paper.TABLE1_ACCURACY == {d: {m: int(a) for m, (_, a) in row.items()} for d, row in pairs.items()}


@pytest.mark.parametrize("number, table, key", [
    (2, "TABLE2", lambda label: _ROWS.get(label.lower(), label.lower())),
    (3, "TABLE3", str.lower),
    (6, "TABLE6", str.lower),
    (8, "TABLE8", lambda label: _ROWS.get(label.lower(), label.lower())),
])
def test_tables_of_one_header(text, number, table, key):
    assert getattr(paper, table) == _grid(_table(text, number), key)


def test_table4(text):
    """Three blocks, one per dataset: the dataset's name, a header of models, the image's row."""
    found, dataset, head = {}, None, []
    for row in _table(text, 4):
        named = [c for c in row if c]
        if row[0] == "Image 0":
            found[dataset] = {m: _number(c) for m, c in zip(head, row[1:]) if m}
        elif row[1:2] == ["SCD01"]:
            head = [c.lower() for c in row[1:]]
        elif len(named) == 1:
            dataset = named[0].lower()
    assert paper.TABLE4 == found


def test_table5(text):
    rows = _table(text, 5)
    widths = {r[0]: r[1:] for r in rows}
    assert rows[0][1] == "SCD01"
    assert paper.TABLE5 == {"distortion": {int(h): _number(d) for h, d in
                                           zip(widths["Hidden nodes"], widths["Distortion"]) if h}}


def test_table7(text):
    """Datasets span three columns each (Cl, Adv, Que); one row per model."""
    rows = _table(text, 7)
    datasets = [c.lower() for c in rows[0] if c]
    measures = [c.lower() for c in rows[1][1:]]
    found = {d: {m: {} for m in measures[:3]} for d in datasets}
    for row in rows[2:]:
        if not row[0]:
            continue
        for j, cell in enumerate(row[1:]):
            found[datasets[j // 3]][measures[j]][row[0].lower()] = _number(cell)
    assert paper.TABLE7 == found


def test_figure2_caption(text):
    caption = next(line for line in text if line.startswith("Figure 2:"))
    f = paper.FIGURE2
    assert (f"At distortion {f['eps']} both MLP and BNN have near {f['accuracy']['mlp']}% accuracy whereas SCD01 "
            f"has {f['accuracy']['scd01']}%") in caption
    assert f["accuracy"]["mlp"] == f["accuracy"]["bnn"]


def test_figure1_is_about_ensemble_size(text):
    assert any(line.startswith("Figure 1: Minimum L_2 image distortion as a function of ensemble size")
               for line in text)
    assert "to a much larger degree than ensembles of MLP and BNN, and than RF" in " ".join(text)


def test_cifar_view_is_tables_2_and_6():
    """The per-model view the reports use comes from Tables 2 and 6 (the CNN baseline is LeNet)."""
    for name, figures in paper.CIFAR.items():
        column = "lenet" if name == "cnn" else name
        assert figures == {"accuracy": paper.TABLE2["accuracy"][column], "hsj_l2": paper.TABLE2["hsj"][column],
                           "transfer": paper.TABLE6["prob"][column]}
    assert paper.CIFAR["scdce"]["hsj_l2"] == 3.36 and paper.CIFAR["bnn"]["hsj_l2"] == 0.76
