"""One-vs-rest SCD models: the labels of scikit-learn's OneVsRestClassifier, a lossless safe file,
clear errors for crafted files, and a smooth relaxation that tends to the real model."""

import numpy as np
import pytest
import torch
from sklearn.multiclass import OneVsRestClassifier

from attacks.surrogate import smooth_scd
from scd import SCD01, OneVsRest, SCDClassifier
from scd.persist import load_model, model_info
from tests.crafted import entries_of, npy, npy_declaring, zip_bytes

ESTIMATOR = SCD01(n_votes=3, n_iters=5, hidden_nodes=4, random_state=0, n_jobs=1)


@pytest.fixture(scope="module")
def four():
    """300 rows of four digits (labels 0..3), the first 240 to train on."""
    from eval.datasets import load_dataset

    ds = load_dataset("digits", classes=(0, 3, 5, 8))
    return ds.x_train[:240], ds.y_train[:240], ds.x_test[:120]


@pytest.fixture(scope="module")
def fitted(four):
    x, y, _ = four
    return OneVsRest(ESTIMATOR).fit(x, y)


def test_labels_scores_and_probabilities_are_sklearns(fitted, four):
    """The same per-class ensembles as OneVsRestClassifier (same clones, same targets), hence the
    same decision function and labels; the label is the argmax over the classes' scores; the
    probabilities are its normalised ones (ours uniform where no class has a vote)."""
    x, y, x_test = four
    reference = OneVsRestClassifier(ESTIMATOR).fit(x, y)
    for ours, theirs in zip(fitted.estimators_, reference.estimators_):
        assert np.array_equal(ours.W1_, theirs.W1_) and np.array_equal(ours.b2_, theirs.b2_)
    scores = np.column_stack([e.decision_function(x_test) for e in fitted.estimators_])
    assert np.array_equal(fitted.decision_function(x_test), scores)
    assert np.array_equal(fitted.predict(x_test), fitted.classes_[np.argmax(scores, axis=1)])
    assert np.array_equal(fitted.predict(x_test), reference.predict(x_test))
    ours, theirs = fitted.predict_proba(x_test), reference.predict_proba(x_test)
    voted = theirs.sum(axis=1) > 0
    assert np.allclose(ours[voted], theirs[voted]) and np.allclose(ours[~voted], 0.25)
    assert np.array_equal(fitted.predict(x_test, member=1),
                          fitted.classes_[np.argmax([e.predict_proba(x_test, member=1)[:, 1]
                                                     for e in fitted.estimators_], axis=0)])


def test_fit_refuses_two_classes_and_a_non_estimator(four):
    x, y, _ = four
    with pytest.raises(ValueError, match="at least 3 classes"):
        OneVsRest(ESTIMATOR).fit(x, y % 2)
    with pytest.raises(ValueError, match="estimator"):
        OneVsRest("SCD01").fit(x, y)


def test_save_load_round_trip(tmp_path, four):
    """String labels, every array and every output survive the file; the file nests one model file
    per class, which info describes."""
    x, y, x_test = four
    model = OneVsRest(SCDClassifier(loss="ce", n_votes=2, n_iters=5, hidden_nodes=3, random_state=1, n_jobs=1))
    model.fit(x, np.array(["zero", "three", "five", "eight"])[y])
    path = tmp_path / "ovr.scd"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, OneVsRest) and np.array_equal(loaded.classes_, model.classes_)
    for a, b in zip(model.estimators_, loaded.estimators_):
        for name in ("W1_", "b1_", "w2_", "b2_", "vote_scores_"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        assert a.get_params() == b.get_params()
    assert np.array_equal(loaded.predict(x_test), model.predict(x_test))
    assert np.array_equal(loaded.predict_proba(x_test, member=0), model.predict_proba(x_test, member=0))
    info = model_info(path)
    assert info["kind"] == "one-vs-rest" and info["classes"] == sorted(["zero", "three", "five", "eight"])
    assert sorted(info["nested"]) == [f"class_{i}.scd" for i in range(4)]
    assert info["nested"]["class_2.scd"]["arrays"]["W1"] == [2, 64, 3]


def _crafted(saved: bytes):
    """Files derived from a valid one-vs-rest file, each with the message its load must give."""
    entries = entries_of(saved)
    one = entries["class_1.scd"]
    nested = dict(entries, **{"class_1.scd": saved})
    yield "a class missing", {k: v for k, v in entries.items() if k != "class_2.scd"}, "one model file per class"
    yield "an extra entry", dict(entries, **{"class_9.scd": one}), "one model file per class"
    yield "a nested one-vs-rest", nested, "itself a one-vs-rest"
    yield "a truncated class", dict(entries, **{"class_1.scd": one[: len(one) // 2]}), "class_1.scd"
    yield "two classes", dict(entries, **{"classes.npy": npy(np.array([0, 1]))}), "at least 3 sorted"
    yield "unsorted classes", dict(entries, **{"classes.npy": npy(np.array([3, 1, 2, 0]))}), "at least 3 sorted"
    inner = entries_of(one)
    inner["W1.npy"] = npy(np.zeros((3, 10, 4), np.float32))
    yield "a class of other shape", dict(entries, **{"class_1.scd": zip_bytes(inner)}), "class_1.scd"
    inner = entries_of(one)
    inner["b2.npy"] = npy_declaring((3,), "|O")
    yield "an object array in a class", dict(entries, **{"class_1.scd": zip_bytes(inner)}), "class_1.scd"


def test_crafted_files_give_clear_errors(tmp_path, fitted):
    path = tmp_path / "ovr.scd"
    fitted.save(path)
    saved = path.read_bytes()
    for name, entries, message in _crafted(saved):
        bad = tmp_path / "bad.scd"
        bad.write_bytes(zip_bytes(entries))
        with pytest.raises(ValueError, match=message):
            load_model(bad)
    assert np.array_equal(load_model(path).predict(np.zeros((1, 64))), fitted.predict(np.zeros((1, 64))))
    deep = saved
    for _ in range(3):  # info describes one level of nesting, however deep a crafted file goes
        deep = zip_bytes(dict(entries_of(saved), **{"class_1.scd": deep}))
    (tmp_path / "deep.scd").write_bytes(deep)
    assert "nested" not in model_info(tmp_path / "deep.scd")["nested"]["class_1.scd"]


def test_smooth_relaxation_tends_to_the_model(fitted, four):
    """Column c of the relaxation is class c's relaxed log-odds: at small temperatures its
    sigmoid is class c's vote fraction, so its argmax is the model's label wherever no two
    classes tie."""
    _, _, x_test = four
    module = smooth_scd(fitted, hidden_temperature=1e-8, vote_temperature=1e-8)
    with torch.no_grad():
        logits = module(torch.from_numpy(x_test)).double().numpy()
    assert logits.shape == (len(x_test), 4)
    fraction = fitted.decision_function(x_test) + 0.5
    close = np.all(np.abs(1 / (1 + np.exp(-logits)) - fraction) < 1e-3, axis=1)
    assert close.mean() > 0.95
    top = np.sort(fraction, axis=1)
    clear = close & (top[:, -1] > top[:, -2])
    assert clear.sum() > 10 and np.array_equal(np.argmax(logits[clear], axis=1), np.argmax(fraction[clear], axis=1))


def test_one_vs_rest_gradients_of_a_differentiable_baseline_are_finite_differences(four):
    """OneVsRestGradients of an MLP one-vs-rest model: the logits are the classes' log-odds of
    their soft votes (so their argmax is the label), and both gradients match central finite
    differences of those logits and of their cross-entropy."""
    import warnings

    from attacks.surrogate import OneVsRestGradients
    from eval.baselines import MLPEnsemble

    x, y, x_test = four
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = OneVsRest(MLPEnsemble(n_votes=2, hidden_layer_sizes=(3,), max_iter=30, random_state=0, n_jobs=1))
        model.fit(x.astype(np.float64), y)
    pair = OneVsRestGradients(model)
    rows = x_test[:3].astype(np.float64)
    logits = pair.logits(rows)
    positive = np.column_stack([e.predict_proba(rows)[:, 1] for e in model.estimators_])
    assert np.allclose(logits, np.log(positive / (1 - positive)))
    assert np.array_equal(model.classes_[np.argmax(logits, axis=1)], model.predict(rows))
    weights = np.random.default_rng(0).normal(size=(3, 4))

    def cross_entropy(z, labels):
        return np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), labels]

    labels = np.array([0, 2, 3])
    h = 1e-6
    steps = h * np.eye(64)  # every row moved along every feature, both ways, in one call
    moved = pair.logits(np.concatenate([rows[:, None] + steps, rows[:, None] - steps]).reshape(-1, 64))
    up, down = moved.reshape(2, 3, 64, 4)
    margin = ((up - down) * weights[:, None]).sum(axis=2) / (2 * h)
    each = np.repeat(labels, 64)
    loss = (cross_entropy(up.reshape(-1, 4), each) - cross_entropy(down.reshape(-1, 4), each)).reshape(3, 64) / (2 * h)
    assert np.allclose(pair.logits_gradient(rows, weights), margin, atol=1e-4)
    assert np.allclose(pair.loss_gradient(rows, model.classes_[labels]), loss, atol=1e-4)
    with pytest.raises(TypeError, match="gradients"):
        OneVsRestGradients(model.estimators_[0])
