"""Text data (MR, IMDB, Yelp, AG News), the WordCNN and ``scd eval text`` end to end on tiny corpora."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from eval.datasets import load_dataset
from scd.text import Embedding, tokenize
from tests.paths import SHARED_DATA

MR_NPZ = SHARED_DATA / "mr_polarity.npz"
_WORLD = ["war", "election", "minister", "government", "treaty", "border"]
_SPORTS = ["game", "team", "score", "coach", "league", "match"]
_OTHER = ["the", "a", "today", "news", "report", "new"]


def _tiny_embedding() -> Embedding:
    rng = np.random.default_rng(1)
    words = _WORLD + _SPORTS + _OTHER
    base = {0: np.array([1.0, 0, 0]), 1: np.array([0, 1.0, 0]), 2: np.array([0, 0, 1.0])}
    vectors = [base[i // 6] + 0.6 * rng.normal(size=3) for i in range(len(words))]
    return Embedding(words, np.array(vectors), name="tiny")


def _corpus(n: int, seed: int) -> list[tuple[int, str, str]]:
    """AG-style rows (class, title, description): classes 1 World, 2 Sports, 3 Business (ignored)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = 1 + i % 3
        topic = {1: _WORLD, 2: _SPORTS, 3: _OTHER}[label]
        words = list(rng.choice(topic, 3)) + list(rng.choice(_OTHER, 2)) + list(rng.choice(_WORLD + _SPORTS, 1))
        rows.append((label, " ".join(words[:2]).title(), " ".join(words[2:])))
    return rows


def _write_ag(folder, n_train=60, n_test=30):
    folder.mkdir(parents=True)
    for part, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        lines = "".join(f'"{c}","{t}","{d}"\n' for c, t, d in _corpus(n, seed))
        (folder / f"{part}.csv").write_text(lines, encoding="utf-8")


@pytest.mark.parametrize("name, url_part", [("mr", "rt-polaritydata.tar.gz"), ("imdb", "aclImdb_v1.tar.gz"),
                                            ("yelp", "yelp_review_polarity_csv.tgz"), ("ag", "ag_news_csv.tgz")])
def test_missing_text_data_says_how_to_get_it(tmp_path, name, url_part):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, data_dir=tmp_path, download=False, embedding=_tiny_embedding())
    message = str(info.value)
    for part in ("https://", url_part, str(tmp_path), "SCD_DATA_DIR", "--data-dir"):
        assert part in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not MR_NPZ.is_file(), reason="needs shared/data/mr_polarity.npz")
def test_mr_official_files_give_the_npz_split(tmp_path):
    with np.load(MR_NPZ) as z:
        x, y = z["x"], z["y"]
    folder = tmp_path / "rt-polaritydata"
    folder.mkdir()
    for label, name in ((1, "rt-polarity.pos"), (0, "rt-polarity.neg")):  # the official bytes, per the data README
        (folder / name).write_bytes(b"".join(s.encode("latin-1") + b"\n" for s in x[y == label]))
    emb = _tiny_embedding()
    from_files = load_dataset("mr", data_dir=tmp_path, embedding=emb)
    from_npz = load_dataset("mr", data_dir=SHARED_DATA, embedding=emb)
    assert from_files.tokens_test == from_npz.tokens_test and len(from_files.tokens_train) == 7996
    np.testing.assert_array_equal(from_files.y_train, from_npz.y_train)
    (folder / "rt-polarity.neg").write_bytes(b"changed\n")
    with pytest.raises(ValueError, match="rt-polarity.neg is not the official file"):
        load_dataset("mr", data_dir=tmp_path, embedding=emb)


def test_imdb_archive_and_ag_csv(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for part in ("train", "test"):
            for sub, text in (("pos", "A great<br />game"), ("neg", "bad war")):
                data = text.encode()
                info = tarfile.TarInfo(f"aclImdb/{part}/{sub}/0_7.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(buffer.getvalue())
    imdb = load_dataset("imdb", data_dir=tmp_path, embedding=_tiny_embedding(), download=False)
    assert imdb.tokens_train == (("bad", "war"), ("a", "great", "game")) and imdb.y_train.tolist() == [0, 1]
    _write_ag(tmp_path / "ag_news_csv")
    ag = load_dataset("ag", data_dir=tmp_path, embedding=_tiny_embedding())
    rows = [r for r in _corpus(60, 0) if r[0] in (1, 2)]
    assert ag.tokens_train == tuple(tuple(tokenize(f"{t} {d}")) for _, t, d in rows)
    assert ag.y_train.tolist() == [int(c == 2) for c, _, _ in rows]
    assert ag.x_train.min() >= 0 and ag.x_train.max() <= 1
    np.testing.assert_allclose(ag.features(ag.tokens_test), ag.x_test)


@pytest.mark.slow
def test_train_and_eval_text_end_to_end(tmp_path):
    data = tmp_path / "data"
    _write_ag(data / "ag_news_csv")
    vectors = tmp_path / "tiny.txt"
    emb = _tiny_embedding()
    vectors.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in zip(emb.words, emb.vectors)))
    runner = CliRunner()
    common = ["--data", "ag", "--data-dir", str(data), "--embedding", str(vectors)]
    for kind, extra in (("rf", ["--votes", "3", "--jobs", "1"]), ("wordcnn", ["--votes", "2", "--epochs", "2"])):
        res = runner.invoke(main, ["train", "--model", kind, *extra, *common, "--quiet", "--device", "cpu",
                                   "--out", str(tmp_path / f"{kind}.scd")])
        assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    args = ["eval", "text", "--model", f"rf={tmp_path / 'rf.scd'}", "--model", f"wordcnn={tmp_path / 'wordcnn.scd'}",
            *common, "--synonyms", str(vectors), "--min-cosine", "0", "--n", "8", "--chunk", "3",
            "--backend", "sequential", "--quiet", "--out", str(run)]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    results = json.loads((run / "results.json").read_text())
    from eval.baselines import load_model

    ds = load_dataset("ag", data_dir=data, embedding=emb)
    rf = load_model(tmp_path / "rf.scd")
    for m in results["models"].values():
        assert m["n"] == 8 and m["pending"] == 0
        assert 0 <= m["adversarial_accuracy"] <= m["clean_accuracy_points"]
        assert {"clean_accuracy", "adversarial_accuracy", "mean_queries"} <= set(m)
    # the clean accuracy is the model's own on the test features (scikit-learn's score)
    assert results["models"]["rf"]["clean_accuracy"] == pytest.approx(rf.score(ds.x_test, ds.y_test))
    assert "| rf |" in (run / "report.md").read_text()
    records = (run / "records.jsonl").read_bytes()
    assert runner.invoke(main, args).exit_code == 0  # resumes: nothing left to do, nothing rerun
    assert (run / "records.jsonl").read_bytes() == records
    res = runner.invoke(main, ["eval", "report", str(run)])
    assert res.exit_code == 0 and "| wordcnn |" in res.output


def test_archive_is_downloaded_and_checked(tmp_path, monkeypatch):
    import functools
    import hashlib
    import http.server
    import threading

    from eval.datasets import text

    _write_ag(tmp_path / "build" / "ag_news_csv")
    www = tmp_path / "www"
    www.mkdir()
    with tarfile.open(www / "ag_news_csv.tgz", "w:gz") as tar:
        tar.add(tmp_path / "build" / "ag_news_csv", arcname="ag_news_csv")
    sha256 = hashlib.sha256((www / "ag_news_csv.tgz").read_bytes()).hexdigest()
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ag_news_csv.tgz"
    try:
        monkeypatch.setattr(text, "TEXT_ARCHIVES", {"ag": (url, "0" * 64)})
        with pytest.raises(ValueError, match="checksum mismatch"):
            load_dataset("ag", data_dir=tmp_path / "bad", embedding=_tiny_embedding())
        assert not (tmp_path / "bad" / "ag_news_csv.tgz").exists()
        monkeypatch.setattr(text, "TEXT_ARCHIVES", {"ag": (url, sha256)})
        ds = load_dataset("ag", data_dir=tmp_path / "good", embedding=_tiny_embedding())
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "good" / "ag_news_csv.tgz").is_file() and len(ds.y_train) == 40
