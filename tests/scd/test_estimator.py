"""The SCD estimators behave as scikit-learn classifiers and are reproducible."""


import joblib
import numpy as np
import pytest
import tqdm.auto
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import scd
from tests.paths import SHARED_DATA

SMALL = dict(n_votes=3, n_iters=15, hidden_nodes=5, updated_features=8, interval=5, random_state=0)
VARIANTS = [scd.SCD01, scd.SCDCE, scd.SCD01BNN, scd.SCDCEBNN]


@parametrize_with_checks(
    [cls(**SMALL) for cls in VARIANTS] + [scd.SCDClassifier(loss="ce", binary_weights=True, **SMALL)]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", VARIANTS)
def test_learns_digits(cls, digits):
    model = cls(n_votes=5, n_iters=150, random_state=0).fit(digits.x_train, digits.y_train)
    # 89 test points (one is 1.1 %); chance is 0.5, a linear model gets about 0.9
    assert model.score(digits.x_test, digits.y_test) >= 0.85
    proba = model.predict_proba(digits.x_test)
    assert proba.shape == (len(digits.x_test), 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(model.predict(digits.x_test), model.classes_[(model.decision_function(digits.x_test) > 0).astype(int)])


def test_same_seed_same_model_and_different_seeds_differ(digits):
    a = scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train)
    b = scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train)
    for name in ("W1_", "b1_", "w2_", "b2_"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.predict(digits.x_test), b.predict(digits.x_test))
    c = scd.SCD01(**{**SMALL, "random_state": 1}).fit(digits.x_train, digits.y_train)
    assert not np.array_equal(a.W1_, c.W1_)
    # votes of one ensemble are different networks
    assert not np.array_equal(a.W1_[0], a.W1_[1])


@pytest.mark.parametrize("cls", [scd.SCD01, scd.SCDCE])
def test_votes_do_not_depend_on_grouping_or_workers(cls, digits, monkeypatch):
    ref = cls(**SMALL, group_size=3).fit(digits.x_train, digits.y_train)
    single = cls(**SMALL, group_size=1).fit(digits.x_train, digits.y_train)
    updates = []

    class RecordingBar(tqdm.auto.tqdm):
        def update(self, n=1):
            updates.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    workers = cls(**SMALL, group_size=1, n_jobs=2, verbose=1).fit(digits.x_train, digits.y_train)
    # the worker processes report while their groups train, not only when a group ends
    assert sum(updates) == SMALL["n_votes"] * SMALL["n_iters"]
    assert len(updates) > SMALL["n_votes"]
    for other in (single, workers):
        np.testing.assert_array_equal(ref.W1_, other.W1_)
        np.testing.assert_array_equal(ref.b2_, other.b2_)


def test_members_are_single_votes(digits):
    model = scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train)
    votes = np.stack([model.predict(digits.x_test, member=i) for i in range(3)])
    majority = model.classes_[(np.mean(votes == model.classes_[1], axis=0) > 0.5).astype(int)]
    assert np.array_equal(majority, model.predict(digits.x_test))
    one = model.member(1)
    assert np.array_equal(one.predict(digits.x_test), votes[1])
    assert model.best_index_ == int(np.argmax(model.vote_scores_))
    with pytest.raises(ValueError, match="member must be an integer"):
        model.predict(digits.x_test, member=3)
    first = model.members(range(2))  # the first k votes: robustness against ensemble size
    np.testing.assert_array_equal(first._logits(digits.x_test, None), model._logits(digits.x_test, None)[:, :2])
    assert first.n_votes == 2 and first.best_index_ == int(np.argmax(first.vote_scores_))
    with pytest.raises(ValueError, match="members must be"):
        model.members([0, 0])


def test_any_two_labels_and_model_selection(digits):
    y = np.where(digits.y_train == 1, "eight", "one")
    model = scd.SCDCE(**SMALL).fit(digits.x_train, y)
    assert set(model.predict(digits.x_test)) <= {"eight", "one"}
    assert list(model.classes_) == ["eight", "one"]
    scores = cross_val_score(scd.SCD01(**SMALL), digits.x_train, digits.y_train, cv=3)
    assert scores.mean() > 0.8
    search = GridSearchCV(scd.SCD01(**SMALL), {"hidden_nodes": [2, 6]}, cv=2).fit(digits.x_train, digits.y_train)
    assert search.best_params_["hidden_nodes"] in (2, 6)
    pipe = make_pipeline(MinMaxScaler(), scd.SCD01BNN(**SMALL)).fit(digits.x_train * 16, digits.y_train)
    assert pipe.score(digits.x_test * 16, digits.y_test) > 0.8
    assert clone(model).get_params() == model.get_params()


def test_joblib_dump_round_trip(tmp_path, digits):
    model = scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train)
    joblib.dump(model, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib")
    assert np.array_equal(again.predict_proba(digits.x_test), model.predict_proba(digits.x_test))


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], "infinity"),
        (np.ones((4, 2)), [1, 1, 1, 1], "only one class"),
        (np.random.rand(6, 2), [0, 1, 2, 0, 1, 2], "3 classes"),
        (np.ones(4), [0, 1, 0, 1], "2D array"),
        (np.empty((0, 3)), [], "0 sample"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 1], "could not convert"),
    ],
)
def test_bad_training_data_raises(tmp_path, X, y, match):
    ckpt = tmp_path / "ckpt.scd"
    with pytest.raises(ValueError, match=match):
        scd.SCD01(**SMALL, checkpoint=str(ckpt)).fit(X, np.asarray(y))
    assert not ckpt.exists()


def test_failed_refit_keeps_the_fitted_model(digits):
    model = scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train)
    before = model.predict(digits.x_test)
    with pytest.raises(ValueError, match="only one class"):
        model.fit(digits.x_train[:, :10], np.zeros(len(digits.y_train)))
    assert model.n_features_in_ == digits.x_train.shape[1]
    np.testing.assert_array_equal(model.predict(digits.x_test), before)
    with pytest.raises(ValueError, match="features"):
        model.predict(digits.x_test[:, :10])


CIFAR_NPZ = SHARED_DATA / "cifar10_01.npz"


@pytest.mark.skipif(not CIFAR_NPZ.is_file(), reason=f"shared data file {CIFAR_NPZ} absent")
@pytest.mark.parametrize("cls", [scd.SCD01BNN, scd.SCDCEBNN])
def test_vote_scores_are_the_returned_votes_training_scores(cls):
    """Binary weights on CIFAR-10 make many projections near-ties, where the training's cached
    float32 projections and the model's exact signs can disagree; ``vote_scores_`` and
    ``best_index_`` describe the model returned (checked with scikit-learn's metrics)."""
    data = np.load(CIFAR_NPZ)
    X = data["x_train"][:1000].reshape(1000, -1).astype(np.float32) / 255
    y = data["y_train"][:1000]
    model = cls(n_votes=4, n_iters=100, hidden_nodes=10, random_state=1).fit(X, y)
    real = [accuracy_score(y, model.predict(X, member=i)) + balanced_accuracy_score(y, model.predict(X, member=i))
            for i in range(4)]
    np.testing.assert_allclose(model.vote_scores_, real, rtol=0, atol=1e-12)
    assert model.best_index_ == int(np.argmax(real))


def test_bad_prediction_input_and_devices(digits):
    model = scd.SCD01(**SMALL).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="features"):
        model.predict(digits.x_test[:, :10])
    with pytest.raises(ValueError, match="not a valid torch device|not supported"):
        scd.SCD01(**SMALL, device="tpu").fit(digits.x_train, digits.y_train)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            scd.SCD01(**SMALL, device="cuda:1").fit(digits.x_train, digits.y_train)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_matches_cpu_accuracy(digits):
    cpu = scd.SCD01(n_votes=8, n_iters=100, random_state=0, device="cpu").fit(digits.x_train, digits.y_train)
    gpu = scd.SCD01(n_votes=8, n_iters=100, random_state=0, device="cuda").fit(digits.x_train, digits.y_train)
    assert abs(gpu.score(digits.x_test, digits.y_test) - cpu.score(digits.x_test, digits.y_test)) < 0.05


def test_parameters_are_listed_once():
    """Signatures, constraints, the per-vote config and the docstrings all come from scd._params."""
    import inspect
    from dataclasses import fields

    from scd._params import PARAMS, VARIANT_PARAMS, VOTE_PARAMS
    from scd._train import TrainConfig

    generic = {**VARIANT_PARAMS, **PARAMS}
    for cls in [*VARIANTS, scd.SCDClassifier]:
        table = generic if cls is scd.SCDClassifier else PARAMS
        signature = inspect.signature(cls)
        assert list(signature.parameters) == list(table) == list(cls._parameter_constraints)
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
        assert cls().get_params() == {name: signature.parameters[name].default for name in table}
        assert all(f"    {name} : " in cls.__doc__ for name in table)
    assert scd.SCD01BNN().n_iters == scd.SCDCEBNN().n_iters == 10000 == 10 * scd.SCD01().n_iters
    assert [f.name for f in fields(TrainConfig)] == [*VARIANT_PARAMS, *VOTE_PARAMS, "memory_elements"]
    with pytest.raises(TypeError, match="n_vote"):
        scd.SCD01(n_vote=3)
    with pytest.raises(TypeError):
        scd.SCD01(3)
