"""Property-based tests (hypothesis) of the model loaders and the user-file readers (issue 32):
whatever the bytes, a load ends in a working model or a ValueError, never another exception."""

import io
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scd
from eval.datasets import load_dataset
from eval.datasets._common import scale_unit
from scd.persist import check_npy_header, load_model
from tests.crafted import entries_of, npy_declaring, zip_bytes

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


@pytest.fixture(scope="module")
def saved_bytes(digits, tmp_path_factory):
    """A small valid SCD model file."""
    path = tmp_path_factory.mktemp("p") / "m.scd"
    scd.SCD01(n_votes=2, n_iters=5, hidden_nodes=3, random_state=0, n_jobs=1).fit(digits.x_train,
                                                                                   digits.y_train).save(path)
    return path.read_bytes()


def _load_or_refuse(path, x):
    """Load ``path``: a ValueError, or a model whose probabilities on ``x`` are in [0, 1]."""
    try:
        model = load_model(path)
    except ValueError:
        return None
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 2) and np.all((proba >= 0) & (proba <= 1))
    return model


@SETTINGS
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
       keep=st.floats(0.2, 1))
def test_damaged_model_files_load_or_raise_value_error(tmp_path, saved_bytes, digits, edits, keep):
    data = bytearray(saved_bytes[: max(1, int(len(saved_bytes) * keep))])
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path / "m.scd"
    path.write_bytes(bytes(data))
    _load_or_refuse(path, digits.x_test[:5])


@SETTINGS
@given(key=st.sampled_from(["estimator", "params", "n_features_in", "seed", "fit_time", "best_index",
                            "n_votes_resumed", "kind", "format_version", "n_votes", "voting", "hidden_nodes"]),
       value=JSON)
def test_any_metadata_value_loads_a_working_model_or_raises_value_error(tmp_path, saved_bytes, digits, key, value):
    entries = entries_of(saved_bytes)
    meta = json.loads(entries["metadata.json"])
    if key in meta["params"]:
        meta["params"][key] = value
    else:
        meta[key] = value
    path = tmp_path / "m.scd"
    path.write_bytes(zip_bytes({**entries, "metadata.json": json.dumps(meta).encode()}))
    model = _load_or_refuse(path, digits.x_test[:5])
    if model is not None:  # only a value that the schema allows, with the arrays agreeing
        assert model.n_votes == model.W1_.shape[0] and model.n_features_in_ == 64


@SETTINGS
@given(array=hnp.arrays(st.sampled_from(["<f4", "<f8", "<i8", "|u1", "|b1", "<U3"]),
                        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
       shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=10**6))
def test_npy_header_accepts_exactly_the_shapes_its_bytes_hold(array, shape):
    """numpy's own writer against our check: a real array passes; a header declaring another
    size for the same bytes is refused before any allocation."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    data = buf.getvalue()
    check_npy_header(io.BytesIO(data), len(data), "a.npy")
    payload = data[len(data) - array.nbytes:]
    lie = npy_declaring(shape, array.dtype.str, payload)
    if int(np.prod(shape, dtype=object)) * array.dtype.itemsize == array.nbytes:
        check_npy_header(io.BytesIO(lie), len(lie), "a.npy")
        assert np.lib.format.read_array(io.BytesIO(lie)).size * array.dtype.itemsize == array.nbytes
    else:
        with pytest.raises(ValueError, match="declares shape"):
            check_npy_header(io.BytesIO(lie), len(lie), "a.npy")


FEATURES = st.floats(allow_nan=False, allow_infinity=False)


@SETTINGS
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(4, 12), st.integers(1, 3)), elements=FEATURES),
       labels=st.lists(st.sampled_from([3, 7]), min_size=12, max_size=12))
def test_user_npz_loads_finite_unit_features_or_raises_value_error(tmp_path, x, labels):
    y = np.array(labels[: len(x)])
    path = tmp_path / "u.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[::-1], y_test=y[::-1])
    try:
        ds = load_dataset("npz", path=path)
    except ValueError:
        assert len(set(y.tolist())) < 2
        return
    assert np.all(np.isfinite(ds.x_train)) and ds.x_train.min() >= 0 and ds.x_train.max() <= 1


@SETTINGS
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 2)),
                    elements=st.sampled_from([-1e308, 1e308, -1.7e308, 1.7e308, 0.0, 5e-324, -3.0, 2.5])))
def test_min_max_scaling_of_extreme_features_is_exact(x):
    """Against exact rational arithmetic (fractions): features near the float64 limits are
    scaled without overflow (their span does not fit in a float64)."""
    scaled, _ = scale_unit(x, x)
    if x.min() >= 0 and x.max() <= 1:
        np.testing.assert_array_equal(scaled, x.astype(np.float32))
        return
    for j in range(x.shape[1]):
        low, high = Fraction(x[:, j].min()), Fraction(x[:, j].max())
        for i in range(len(x)):
            exact = (Fraction(x[i, j]) - low) / (high - low) if high > low else Fraction(x[i, j]) - low
            exact = min(max(exact, 0), 1)
            assert abs(float(scaled[i, j]) - float(exact)) <= 1e-6


@SETTINGS
@given(text=st.text(alphabet="0123456789.,-e \nnaif", max_size=60))
def test_user_csv_loads_or_raises_value_error(tmp_path, text):
    path = tmp_path / "u.csv"
    path.write_text(text)
    try:
        ds = load_dataset("csv", path=path, classes=None)
    except ValueError:
        return
    assert np.all(np.isfinite(ds.x_train)) and len(ds.x_train) + len(ds.x_test) > 0

