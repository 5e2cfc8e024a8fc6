"""The MLP and random-forest baselines: scikit-learn contract, voting, members, safe files."""

import copy
import io
import json
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from eval.baselines import forest, load_model, mlp
from eval.baselines._common import member_seeds
from eval.baselines.forest import RandomForestEnsemble
from eval.baselines.mlp import MLPEnsemble
from scd.persist import load_bundle, save_bundle

MLP_SMALL = dict(n_votes=5, max_iter=200, random_state=0, n_jobs=1)
RF_SMALL = dict(n_votes=5, random_state=0, n_jobs=1)
LOADERS = {MLPEnsemble: mlp.load, RandomForestEnsemble: forest.load}
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def fitted(digits):
    """One fitted model per class, trained on string labels; do not mutate them."""
    y = np.where(digits.y_train == 1, "pos", "neg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {
            MLPEnsemble: MLPEnsemble(**MLP_SMALL).fit(digits.x_train, y),
            RandomForestEnsemble: RandomForestEnsemble(**RF_SMALL).fit(digits.x_train, y),
        }


def _positive(y):
    return (np.asarray(y) == "pos").astype(int)


@quiet
@parametrize_with_checks(
    [MLPEnsemble(n_votes=2, max_iter=100, learning_rate_init=0.1, random_state=0, n_jobs=1),
     RandomForestEnsemble(n_votes=5, random_state=0, n_jobs=1)]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_learns_digits(cls, fitted, digits):
    model = fitted[cls]
    # 89 test points (one is 1.1 %); chance is 0.5, a linear model gets about 0.9
    assert model.score(digits.x_test, np.where(digits.y_test == 1, "pos", "neg")) >= 0.85
    assert list(model.classes_) == ["neg", "pos"] and model.n_features_in_ == 64 and model.fit_time_ > 0
    proba = model.predict_proba(digits.x_test)
    assert proba.shape == (89, 2) and np.allclose(proba.sum(1), 1)
    dec = model.decision_function(digits.x_test)
    assert np.array_equal(model.predict(digits.x_test), model.classes_[(dec > 0).astype(int)])


@quiet
def test_mlp_seeds_reproduce_and_differ(digits):
    a = MLPEnsemble(**MLP_SMALL).fit(digits.x_train, digits.y_train)
    b = MLPEnsemble(**MLP_SMALL).fit(digits.x_train, digits.y_train)
    assert np.array_equal(a.predict_proba(digits.x_test), b.predict_proba(digits.x_test))
    c = MLPEnsemble(**{**MLP_SMALL, "random_state": 1}).fit(digits.x_train, digits.y_train)
    first = {m.coefs_[0].tobytes() for m in a.estimators_}
    assert len(first) == 5  # members of one ensemble differ
    assert not first & {m.coefs_[0].tobytes() for m in c.estimators_}  # no member shared
    # a member's seed depends on (seed, index) alone, so neither n_jobs nor n_votes changes it
    assert np.array_equal(member_seeds(0, 3), a.member_seeds_[:3])
    with joblib.parallel_config(backend="threading"):
        two = MLPEnsemble(**{**MLP_SMALL, "n_votes": 3, "n_jobs": 2}).fit(digits.x_train, digits.y_train)
    for m, n in zip(a.estimators_, two.estimators_):
        assert all(np.array_equal(p, q) for p, q in zip(m.coefs_, n.coefs_))


def test_forest_seeds_reproduce_and_differ(digits):
    a = RandomForestEnsemble(**RF_SMALL).fit(digits.x_train, digits.y_train)
    b = RandomForestEnsemble(**RF_SMALL).fit(digits.x_train, digits.y_train)
    assert np.array_equal(a.predict_proba(digits.x_test), b.predict_proba(digits.x_test))
    c = RandomForestEnsemble(**{**RF_SMALL, "random_state": 1}).fit(digits.x_train, digits.y_train)
    nodes = lambda m: {t.tree_.__getstate__()["nodes"].tobytes() for t in m.estimators_}  # noqa: E731
    assert len(nodes(a)) == 5 and not nodes(a) & nodes(c)


@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_soft_and_hard_voting(cls, fitted, digits):
    soft = fitted[cls]
    hard = copy.deepcopy(soft).set_params(voting="hard")
    X = digits.x_test
    member_p = np.stack([soft.predict_proba(X, member=i)[:, 1] for i in range(5)])
    member_y = np.stack([soft.predict(X, member=i) for i in range(5)])
    # soft: mean member probability (VotingClassifier(voting="soft") in the reference); the MLP
    # ensemble runs all members as one stacked float32 forward pass, so it agrees to rounding
    atol = 1e-6 if cls is MLPEnsemble else 1e-12
    np.testing.assert_allclose(soft.predict_proba(X)[:, 1], member_p.mean(0), rtol=0, atol=atol)
    # hard: fraction of member labels, majority wins, ties go to classes_[0]
    frac = _positive(member_y).mean(0)
    np.testing.assert_allclose(hard.predict_proba(X)[:, 1], frac, rtol=0, atol=1e-12)
    assert np.array_equal(hard.predict(X), np.where(frac > 0.5, "pos", "neg"))
    # fully grown trees have pure leaves, so a forest's soft and hard votes coincide; MLPs' do not
    assert np.allclose(hard.predict_proba(X), soft.predict_proba(X)) == (cls is RandomForestEnsemble)
    # ties: with an even number of members, a 2-2 split predicts classes_[0]
    four = copy.deepcopy(hard)
    four.estimators_ = four.estimators_[:4]
    frac4 = _positive(member_y[:4]).mean(0)
    assert np.array_equal(four.predict(X), np.where(frac4 > 0.5, "pos", "neg"))
    assert np.all(four.predict(X)[frac4 == 0.5] == "neg")
    assert cls is MLPEnsemble or np.any(frac4 == 0.5)  # the forest's members do tie here


@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_member_is_a_one_vote_estimator(cls, fitted, digits):
    model, X = fitted[cls], digits.x_test
    for i in (0, 3):
        one = model.member(i)
        assert type(one) is cls and one.n_votes == 1 and len(one.estimators_) == 1
        assert np.array_equal(one.predict(X), model.predict(X, member=i))
        assert np.array_equal(one.predict_proba(X), model.predict_proba(X, member=i))
        # and it is the underlying scikit-learn member (trained on 0/1 targets)
        own = model.estimators_[i].predict(X).astype(int)
        assert np.array_equal(model.predict(X, member=i), model.classes_[own])
        np.testing.assert_allclose(model.predict_proba(X, member=i), model.estimators_[i].predict_proba(X),
                                   rtol=0, atol=1e-6)
    for bad in (-1, 5, 1.0, True, "0"):
        with pytest.raises(ValueError, match=r"member must be an integer in \[0, 5\)"):
            model.predict(X, member=bad)
        with pytest.raises(ValueError, match="members must be"):
            model.member(bad)
    first = model.members(range(3))
    assert first.n_votes == 3 and [e is f for e, f in zip(first.estimators_, model.estimators_)] == [True] * 3
    picked = model.members([4, 1])
    assert np.array_equal(picked.predict(X, member=0), model.predict(X, member=4))
    for bad in ([], [1, 1], [0, 5]):
        with pytest.raises(ValueError, match="members must be"):
            model.members(bad)


@quiet
def test_one_member_mlp_is_sklearns_mlp(digits):
    ours = MLPEnsemble(**{**MLP_SMALL, "n_votes": 1}).fit(digits.x_train, digits.y_train)
    ref = MLPClassifier(
        hidden_layer_sizes=(20,), activation="logistic", solver="sgd", alpha=1e-4, batch_size=200,
        learning_rate="constant", learning_rate_init=0.01, max_iter=200, shuffle=True, tol=1e-4,
        momentum=0.9, nesterovs_momentum=True, n_iter_no_change=10, random_state=int(ours.member_seeds_[0]),
    ).fit(digits.x_train, digits.y_train)
    assert all(np.array_equal(a, b) for a, b in zip(ours.estimators_[0].coefs_, ref.coefs_))
    X = digits.x_test
    # our stacked forward pass is scikit-learn's forward pass up to float32 rounding
    np.testing.assert_allclose(ours.predict_proba(X)[:, 1], ref.predict_proba(X)[:, 1], rtol=0, atol=1e-6)
    assert np.array_equal(ours.predict(X), ref.predict(X))


def test_soft_forest_is_sklearns_forest(digits):
    ours = RandomForestEnsemble(n_votes=20, random_state=0, n_jobs=1).fit(digits.x_train, digits.y_train)
    ref = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(digits.x_train, digits.y_train)
    X = digits.x_test
    assert np.array_equal(ours.predict_proba(X)[:, 1], ref.predict_proba(X)[:, 1])
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0, atol=1e-12)
    assert np.array_equal(ours.predict(X), ref.predict(X))


def test_mlp_convergence_warnings_are_summarised(digits):
    with pytest.warns(ConvergenceWarning) as record:
        model = MLPEnsemble(n_votes=3, max_iter=3, random_state=0, n_jobs=1).fit(digits.x_train, digits.y_train)
    assert len(record) == 1 and "3 of 3 MLP members" in str(record[0].message)
    assert np.array_equal(model.n_iter_, [3, 3, 3])


# ---------------------------------------------------------------------- persistence
@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_save_load_round_trip(cls, fitted, digits, tmp_path):
    model, X = fitted[cls], digits.x_test
    model.save(tmp_path / "m.bundle")
    again = LOADERS[cls](tmp_path / "m.bundle")
    assert type(again) is cls and again.get_params() == model.get_params()
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(again.predict(X, member=2), model.predict(X, member=2))
    assert np.array_equal(again.member(4).predict_proba(X), model.member(4).predict_proba(X))
    assert np.array_equal(again.classes_, model.classes_) and again.seed_ == model.seed_
    assert [p.name for p in tmp_path.iterdir()] == ["m.bundle"]  # no temporary file left behind
    for p, q in zip(again.estimators_, model.estimators_):  # the members are whole sklearn estimators
        assert np.array_equal(p.predict_proba(X), q.predict_proba(X))


@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_pickle_still_works(cls, fitted, digits, tmp_path):
    joblib.dump(fitted[cls], tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib")
    assert np.array_equal(again.predict_proba(digits.x_test), fitted[cls].predict_proba(digits.x_test))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_raw(path, meta, arrays):
    """A bundle written without save_bundle's safety checks (object arrays allowed)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(meta))
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=True)
            zf.writestr(f"{name}.npy", buf.getvalue())


@pytest.fixture(params=[MLPEnsemble, RandomForestEnsemble], ids=["mlp", "rf"])
def saved(request, fitted, tmp_path):
    path = tmp_path / "m.bundle"
    fitted[request.param].save(path)
    return request.param, path


def test_malicious_files_are_refused_without_running_code(saved, tmp_path):
    cls, path = saved
    marker = tmp_path / "pwned"
    meta, arrays = load_bundle(path)
    target = "coefs_0" if cls is MLPEnsemble else "nodes"
    evil = tmp_path / "evil.bundle"
    _write_raw(evil, meta, {**arrays, target: np.array([_Exploit(str(marker))], dtype=object)})
    with pytest.raises(ValueError):
        LOADERS[cls](evil)
    evil.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(ValueError, match="not a readable scd model"):
        LOADERS[cls](evil)
    assert not marker.exists()


def test_wrong_kind_truncated_and_newer_files(saved, tmp_path):
    cls, path = saved
    other = forest.load if cls is MLPEnsemble else mlp.load
    with pytest.raises(ValueError, match="holds a 'baseline-"):
        other(path)
    data = path.read_bytes()
    short = tmp_path / "short.bundle"
    short.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        LOADERS[cls](short)
    meta, arrays = load_bundle(path)
    newer = tmp_path / "newer.bundle"
    _write_raw(newer, {**meta, "format_version": meta["format_version"] + 1}, arrays)
    with pytest.raises(ValueError, match="Upgrade scd"):
        LOADERS[cls](newer)
    with pytest.raises(FileNotFoundError):
        LOADERS[cls](tmp_path / "nope.bundle")


def _edited(path, tmp_path, meta_edit=None, **arrays_edit):
    meta, arrays = load_bundle(path)
    out = tmp_path / "edited.bundle"
    save_bundle(out, meta["kind"], {**meta, **(meta_edit or {})}, {**arrays, **arrays_edit})
    return out


def test_inconsistent_mlp_files_raise(fitted, tmp_path):
    path = tmp_path / "m.bundle"
    fitted[MLPEnsemble].save(path)
    _, arrays = load_bundle(path)
    cases = [
        ({}, {"coefs_0": arrays["coefs_0"][:, :10]}, "coefs_0 has shape"),
        ({}, {"intercepts_1": arrays["intercepts_1"].astype(np.int64)}, "intercepts_1 has shape"),
        ({}, {"coefs_1": np.full_like(arrays["coefs_1"], np.nan)}, "NaN"),
        ({}, {"coefs_2": arrays["coefs_1"]}, "layers do not match"),
        ({}, {"classes": np.array(["a", "a"])}, "classes are equal"),
        ({"n_features_in": 63}, {}, "coefs_0 has shape"),
        ({"n_features_in": "64"}, {}, "expected int"),
        ({"params": {"n_votes": 5, "activation": "rm -rf"}}, {}, "is corrupt: The 'activation'"),
        ({"params": {"evil": 1}}, {}, "unknown MLPEnsemble parameters"),
        ({"estimator": "os.system"}, {}, "unknown estimator"),
    ]
    for meta_edit, arrays_edit, message in cases:
        with pytest.raises(ValueError, match=message):
            mlp.load(_edited(path, tmp_path, meta_edit, **arrays_edit))


def test_inconsistent_forest_files_raise(fitted, tmp_path):
    path = tmp_path / "m.bundle"
    fitted[RandomForestEnsemble].save(path)
    _, arrays = load_bundle(path)
    nodes = arrays["nodes"]

    def with_field(field, index, value):
        out = nodes.copy()
        out[field][index] = value
        return out

    wrapped = arrays["node_counts"].astype(np.uint64)
    wrapped[:2] += np.uint64(2**63)
    loop = with_field("left_child", 0, 0)  # a split node pointing at itself would never end
    cases = [
        ({"nodes": with_field("left_child", 0, 10**9)}, "not a valid binary tree"),
        ({"nodes": with_field("right_child", 0, -5)}, "not a valid binary tree"),
        ({"nodes": loop}, "not a valid binary tree"),
        ({"nodes": with_field("feature", 0, 64)}, "not a valid binary tree"),
        ({"nodes": nodes[:-1]}, "node table does not match"),
        ({"nodes": nodes["threshold"]}, "node table does not match"),
        ({"values": arrays["values"][:, :, :1]}, "values has shape"),
        ({"node_counts": arrays["node_counts"][:4]}, "node_counts has shape"),
        ({"max_depths": arrays["node_counts"] + 2**40}, "depths out of range"),
        ({"node_counts": wrapped}, "node table does not match"),  # a uint64 sum would wrap to the right total
        ({"classes": np.array([1.0, 2.0, 3.0])}, "classes has shape"),
    ]
    for arrays_edit, message in cases:
        with pytest.raises(ValueError, match=message):
            forest.load(_edited(path, tmp_path, **arrays_edit))
    with pytest.raises(ValueError, match="per split"):
        forest.load(_edited(path, tmp_path, {"tree_max_features": 65}))


# ---------------------------------------------------------------------- bad input
@quiet
@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_bad_input_raises(cls, fitted, digits):
    X, y = digits.x_train, digits.y_train
    small = cls(n_votes=2, max_iter=5, random_state=0, n_jobs=1) if cls is MLPEnsemble else cls(n_votes=2, n_jobs=1)
    nan = X.copy()
    nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small.fit(nan, y)
    three = y.copy()
    three[:10] = 2
    with pytest.raises(ValueError, match="needs exactly 2 classes; y has 3 classes"):
        small.fit(X, three)
    with pytest.raises(ValueError, match="y has only one class"):
        small.fit(X, np.zeros_like(y))
    model = fitted[cls]
    with pytest.raises(ValueError, match="X has 63 features, but .* is expecting 64 features"):
        model.predict(digits.x_test[:, :63])
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(nan)
    with pytest.raises(ValueError, match="voting"):
        cls(voting="majority").fit(X, y)
    with pytest.raises(ValueError, match="n_votes"):
        cls(n_votes=0).fit(X, y)


@quiet
@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_failed_refit_keeps_the_fitted_model(cls, fitted, digits):
    model = clone(fitted[cls]).set_params(n_votes=2).fit(digits.x_train, digits.y_train)
    before = model.predict_proba(digits.x_test)
    with pytest.raises(ValueError, match="3 classes"):
        model.fit(digits.x_train[:30, :10], np.arange(30) % 3)
    assert model.n_features_in_ == 64
    np.testing.assert_array_equal(model.predict_proba(digits.x_test), before)


@quiet
@pytest.mark.parametrize("cls", [MLPEnsemble, RandomForestEnsemble])
def test_save_after_changing_n_votes_loads_the_members_it_holds(cls, fitted, digits, tmp_path):
    model = clone(fitted[cls]).fit(digits.x_train, digits.y_train).set_params(n_votes=9)
    model.save(tmp_path / "m.model")
    again = LOADERS[cls](tmp_path / "m.model")
    assert again.n_votes == 5
    np.testing.assert_array_equal(again.predict_proba(digits.x_test), model.predict_proba(digits.x_test))


@quiet
def test_mlp_without_hidden_layer_is_sklearns(digits):
    ours = MLPEnsemble(n_votes=1, hidden_layer_sizes=(), max_iter=50, random_state=0).fit(digits.x_train,
                                                                                          digits.y_train)
    np.testing.assert_allclose(ours.predict_proba(digits.x_test), ours.estimators_[0].predict_proba(digits.x_test),
                               rtol=0, atol=1e-6)


def test_unsupported_compression_in_a_model_file_is_a_clear_error(fitted, tmp_path):
    path = tmp_path / "rf.model"
    fitted[RandomForestEnsemble].save(path)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 10:central + 12] = (99).to_bytes(2, "little")  # compression method 99
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_model(path)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_warm_start_grows_to_the_same_ensemble(digits, tmp_path):
    params = dict(random_state=3, max_iter=50, hidden_layer_sizes=(5,))
    fresh = MLPEnsemble(n_votes=3, **params).fit(digits.x_train, digits.y_train)
    small = MLPEnsemble(n_votes=2, **params).fit(digits.x_train, digits.y_train)
    small.save(tmp_path / "small.model")
    grown = mlp.load(tmp_path / "small.model").set_params(n_votes=3, warm_start=True)
    grown.fit(digits.x_train, digits.y_train)
    assert len(grown.estimators_) == 3
    np.testing.assert_array_equal(grown.predict_proba(digits.x_test), fresh.predict_proba(digits.x_test))
    np.testing.assert_array_equal(grown.member_seeds_, fresh.member_seeds_)
    with pytest.raises(ValueError, match="fewer than"):
        grown.set_params(n_votes=2).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="classes"):
        grown.set_params(n_votes=4).fit(digits.x_train, digits.y_train + 5)
