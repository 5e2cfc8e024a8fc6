"""Model files round-trip exactly, are written atomically and never run code when loaded."""

import hashlib
import importlib.util
import io
import json
import os
import pickle
import sys
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import scd
from scd.persist import FORMAT_VERSION, load_bundle, save_bundle

SMALL = dict(n_votes=3, n_iters=15, hidden_nodes=5, updated_features=8, interval=5, random_state=0)


@pytest.mark.parametrize("cls", [scd.SCD01, scd.SCDCE, scd.SCD01BNN, scd.SCDCEBNN])
def test_save_load_round_trip(tmp_path, digits, cls):
    model = cls(**SMALL).fit(digits.x_train, digits.y_train)
    model.save(tmp_path / "m.scd")
    again = scd.load(tmp_path / "m.scd")
    assert type(again) is cls and again.get_params() == model.get_params()
    assert np.array_equal(again.predict_proba(digits.x_test), model.predict_proba(digits.x_test))
    assert np.array_equal(again.predict(digits.x_test, member=2), model.predict(digits.x_test, member=2))
    assert again.best_index_ == model.best_index_ and again.seed_ == model.seed_
    assert [p.name for p in tmp_path.iterdir()] == ["m.scd"]  # no temporary file left behind


def test_generic_classifier_with_string_labels(tmp_path, digits):
    y = np.where(digits.y_train == 1, "pos", "neg")
    model = scd.SCDClassifier(loss="ce", binary_weights=True, **SMALL).fit(digits.x_train, y)
    model.save(tmp_path / "m.scd")
    again = scd.load(tmp_path / "m.scd")
    assert again.loss == "ce" and again.binary_weights is True
    assert np.array_equal(again.predict(digits.x_test), model.predict(digits.x_test))


@pytest.fixture
def saved(tmp_path, digits):
    path = tmp_path / "m.scd"
    scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train).save(path)
    return path


def test_truncated_and_corrupt_files_raise(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        scd.load(saved)
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    saved.write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        scd.load(saved)
    saved.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a readable scd model"):
        scd.load(saved)


def test_missing_file_and_newer_version(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="nope.scd"):
        scd.load(tmp_path / "nope.scd")
    meta, arrays = load_bundle(saved)
    newer = tmp_path / "newer.scd"
    with zipfile.ZipFile(newer, "w") as zf:
        zf.writestr("metadata.json", json.dumps({**meta, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match="newer|Upgrade scd"):
        scd.load(newer)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickled_array_is_not_executed(tmp_path, saved):
    marker = tmp_path / "pwned"
    meta, arrays = load_bundle(saved)
    evil = tmp_path / "evil.scd"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Exploit(str(marker))], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("metadata.json", json.dumps(meta))
        for name, array in arrays.items():
            out = io.BytesIO()
            np.lib.format.write_array(out, array)
            zf.writestr(f"{name}.npy", buf.getvalue() if name == "W1" else out.getvalue())
    with pytest.raises(ValueError):
        scd.load(evil)
    assert not marker.exists()
    # and a plain pickle in place of the model file is refused as well
    evil.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(ValueError):
        scd.load(evil)
    assert not marker.exists()


def test_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "b.scd"
    save_bundle(path, "x", {}, {"a": np.arange(3)})
    with pytest.raises(ValueError, match="dtype object"):
        save_bundle(path, "x", {}, {"a": np.array([object()], dtype=object)})
    assert np.array_equal(load_bundle(path)[1]["a"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["b.scd"]


def test_load_model_reads_any_kind_and_refuses_others(tmp_path, saved, digits):
    from eval.baselines import load_model, model_info

    model = load_model(saved)
    assert isinstance(model, scd.SCD01)
    assert np.array_equal(model.predict(digits.x_test), scd.load(saved).predict(digits.x_test))
    assert model_info(saved)["kind"] == "scd-ensemble" and model_info(saved)["arrays"]["W1"] == [3, 64, 5]
    other = tmp_path / "other.scd"
    save_bundle(other, "scd-checkpoint", {}, {"x": np.zeros(2)})
    with pytest.raises(ValueError, match="not a model this package can load"):
        load_model(other)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.scd")
    (tmp_path / "junk.scd").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_model(tmp_path / "junk.scd")


# --------------------------------------------------------------------------- one read per load
_opened: list[str] | None = None  # paths opened while a count is running


def _record_opens(event, args):
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)  # audit hooks see every open: builtins, io, os.open, zipfile, numpy


def _opens_of(path, action):
    """How many times ``action()`` opens ``path`` (any way Python can open a file)."""
    global _opened
    _opened = []
    try:
        action()
        seen = list(_opened)
    finally:
        _opened = None
    return sum(os.path.realpath(p) == os.path.realpath(path) for p in seen)


def _tiny_models(digits):
    from eval.baselines import CNNEnsemble, MLPEnsemble, RandomForestEnsemble

    X, y = digits.x_train, digits.y_train
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield "scd", scd.SCDCE(**SMALL).fit(X, y)
        yield "mlp", MLPEnsemble(n_votes=2, max_iter=20, random_state=0, n_jobs=1).fit(X, y)
    yield "rf", RandomForestEnsemble(n_votes=3, random_state=0, n_jobs=1).fit(X, y)
    yield "cnn", CNNEnsemble(n_votes=1, epochs=1, random_state=0, device="cpu").fit(X, y)
    if importlib.util.find_spec("larq") is not None:
        from eval.baselines import BNNEnsemble

        yield "bnn", BNNEnsemble(n_votes=1, epochs=1, random_state=0).fit(X, y)


def test_every_model_file_is_opened_once_per_load(tmp_path, digits):
    from eval.baselines import load_model, load_with_fingerprint, model_info

    for name, model in _tiny_models(digits):
        path = tmp_path / f"{name}.scd"
        model.save(path)
        assert _opens_of(path, lambda: load_model(path)) == 1, name
        assert _opens_of(path, lambda: model_info(path)) == 1, name
        loaded = []
        assert _opens_of(path, lambda: loaded.append(load_with_fingerprint(path))) == 1, name
        again, fingerprint = loaded[0]
        assert fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()[:16], name
        assert type(again) is type(model), name
        assert np.array_equal(again.predict(digits.x_test), model.predict(digits.x_test)), name
    assert _opens_of(path, lambda: path.read_bytes()) == 1  # the count sees plain reads too
