"""The oracle counts exactly what the model receives, enforces budgets exactly, and guards its inputs."""

import numpy as np
import pytest
import torch

import scd
from attacks import REFUSED, NoGradientError, NoScoresError, Oracle, QueryBudgetExceeded

D, C = 4, 3


class CountingModel:
    """A linear softmax classifier that logs the size of every batch it really receives."""

    def __init__(self, d=D, n_classes=C, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(d, n_classes))
        self.classes_ = np.arange(10, 10 + n_classes)  # labels != indices on purpose
        self.n_features_in_ = d
        self.batches = []

    def predict_proba(self, x):
        assert x.dtype == np.float32 and x.ndim == 2
        self.batches.append(len(x))
        z = x.astype(np.float64) @ self.W
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict(self, x):
        self.batches.append(len(x))
        return self.classes_[np.argmax(x.astype(np.float64) @ self.W, axis=1)]

    @property
    def rows(self):
        return sum(self.batches)


def _x(n, seed=0, d=D):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, d)).astype(np.float32)


def _brute_force_calls(ids, batches):
    """Per-sample calls recomputed from the batch sizes the model really saw (requests are sent in order)."""
    calls, start = {}, 0
    for size in batches:
        for i in set(ids[start : start + size].tolist()):
            calls[i] = calls.get(i, 0) + 1
        start += size
    assert start == len(ids)
    return calls


# ---------------------------------------------------------------------- counting
@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
@pytest.mark.parametrize("method", ["labels", "scores"])
def test_counts_equal_what_the_model_receives(batch_size, method):
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1), batch_size=batch_size)
    rng = np.random.default_rng(1)
    all_ids = []
    for n in (10, 1, 13):  # three requests: a batched search over 5 samples, then stragglers
        ids = rng.integers(0, 5, size=n)
        getattr(oracle, method)(_x(n, seed=n), ids=ids)
        all_ids.append(ids)
    ids = np.concatenate(all_ids)
    s = oracle.summary()
    assert s["rows"] == model.rows == 24
    assert s["calls"] == len(model.batches) == sum(-(-n // batch_size) for n in (10, 1, 13))
    assert max(model.batches) <= batch_size
    assert s["unattributed_rows"] == s["unattributed_calls"] == 0
    counts = oracle.sample_counts()
    assert np.array_equal(counts["rows"], np.bincount(ids, minlength=len(counts["rows"])))
    expected_calls = _brute_force_calls(ids, model.batches)
    assert {i: int(c) for i, c in enumerate(counts["calls"]) if c} == expected_calls
    assert np.array_equal(oracle.queries([0, 1, 2, 3, 4, 99]), np.r_[np.bincount(ids, minlength=5), 0])


def test_rows_without_ids_are_unattributed_and_int_ids_mean_every_row():
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1), batch_size=4)
    oracle.labels(_x(10))
    oracle.scores(_x(3), ids=7)
    s = oracle.summary()
    assert (s["rows"], s["calls"]) == (13, 4) == (model.rows, len(model.batches))
    assert (s["unattributed_rows"], s["unattributed_calls"]) == (10, 3)
    assert oracle.queries([7]).tolist() == [3] and s["n_samples"] == 1


def test_reset_zeroes_counters():
    oracle = Oracle(CountingModel(), bounds=(0, 1), budget=2)
    oracle.labels(_x(3), ids=0)
    oracle.reset()
    assert oracle.summary() == {"rows": 0, "calls": 0, "unattributed_rows": 0, "unattributed_calls": 0,
                                "confirm_rows": 0, "confirm_calls": 0, "refused_rows": 0, "n_samples": 0,
                                "budget": 2, "exhausted": 0}
    assert oracle.remaining([0]).tolist() == [2]


def test_labels_are_class_indices_and_agree_with_scores():
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1))
    x = _x(20)
    y = oracle.labels(x)
    assert y.dtype == np.int64 and np.array_equal(oracle.classes[y], model.predict(x))
    assert np.array_equal(y, oracle.scores(x).argmax(1))
    assert np.array_equal(oracle.encode(model.predict(x)), y)
    with pytest.raises(ValueError, match="not among the model's classes"):
        oracle.encode([10, 99])


# ---------------------------------------------------------------------- budget
def test_budget_answers_exactly_budget_rows_per_sample():
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1), budget=5, batch_size=3)
    ids = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0])  # sample 0: 7 rows, sample 1: 3 rows
    y = oracle.labels(_x(10), ids=ids)
    refused = y == REFUSED
    assert refused.tolist() == [False] * 7 + [True, False, True]  # sample 0's 6th and 7th rows
    assert model.rows == 8 and oracle.queries([0, 1]).tolist() == [5, 3]
    assert oracle.remaining([0, 1, 2]).tolist() == [0, 2, 5]
    s = oracle.scores(_x(4), ids=[0, 1, 1, 1])  # sample 0 exhausted, sample 1 has 2 left
    assert np.isnan(s[[0, 3]]).all() and np.isfinite(s[[1, 2]]).all()
    assert model.rows == 10 and oracle.queries([0, 1]).tolist() == [5, 5]
    calls = len(model.batches)
    assert (oracle.labels(_x(2), ids=[0, 1]) == REFUSED).all() and len(model.batches) == calls  # no empty call
    summary = oracle.summary()
    assert summary["refused_rows"] == 2 + 2 + 2 and summary["exhausted"] == 2
    assert oracle.sample_counts()["refused_rows"].tolist() == [4, 2]


def test_strict_budget_raises_and_sends_nothing():
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1), budget=3)
    oracle.labels(_x(2), ids=[4, 4])
    with pytest.raises(QueryBudgetExceeded, match="budget of 3") as info:
        oracle.labels(_x(3), ids=[4, 4, 5], strict=True)
    assert info.value.ids.tolist() == [4]
    assert model.rows == 2 and oracle.queries([4, 5]).tolist() == [2, 0]
    assert oracle.labels(_x(1), ids=4, strict=True).shape == (1,)  # exactly the last row of budget


def test_budget_needs_ids():
    oracle = Oracle(CountingModel(), bounds=(0, 1), budget=3)
    with pytest.raises(ValueError, match="pass ids="):
        oracle.labels(_x(2))


def test_confirmation_is_not_counted_against_the_budget():
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1), budget=2, batch_size=2)
    oracle.labels(_x(2), ids=[0, 0])
    x = _x(3, seed=5)
    y = oracle.confirm(x, ids=[0, 0, 1])
    assert model.rows == 2 + 3  # the confirmation reached the model...
    s = oracle.summary()
    assert (s["rows"], s["calls"], s["confirm_rows"], s["confirm_calls"]) == (2, 1, 3, 2)  # ...counted apart
    assert (y != REFUSED).all() and np.array_equal(oracle.classes[y], model.predict(x))
    assert oracle.queries([0, 1]).tolist() == [2, 0] and oracle.remaining([0, 1]).tolist() == [0, 2]
    assert oracle.sample_counts()["confirm_rows"].tolist() == [2, 1]


# ---------------------------------------------------------------------- input boundary
@pytest.mark.parametrize(
    "x, match",
    [
        (np.full((2, D), np.nan, np.float32), "NaN or inf"),
        (np.r_[_x(1), [[0.5, np.inf, 0.5, 0.5]]], "NaN or inf"),
        (_x(2, d=D + 1), f"has {D + 1} features"),
        (_x(2) - 0.5, "outside the bounds"),
        (_x(2) + 1.5, "outside the bounds"),
        (_x(1)[0], "must be 2-D"),
        (_x(2)[None], "must be 2-D"),
        (np.array([["a"] * D]), "real numbers"),
    ],
)
def test_bad_input_raises_value_error(x, match):
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1))
    for method in (oracle.labels, oracle.scores, oracle.confirm):
        with pytest.raises(ValueError, match=match):
            method(x)
    assert model.rows == 0


def test_per_feature_bounds_and_clip():
    lower, upper = np.zeros(D), np.array([1.0, 1.0, 0.5, 1.0])
    oracle = Oracle(CountingModel(), bounds=(lower, upper))
    x = _x(3) * 2 - 0.5
    with pytest.raises(ValueError, match="feature"):
        oracle.labels(x)
    clipped = oracle.clip(x)
    assert clipped.dtype == np.float32 and (clipped >= lower).all() and (clipped <= upper).all()
    assert oracle.labels(clipped).shape == (3,)


@pytest.mark.parametrize("ids, match", [([0, 1], "one sample id per row"), ([0, -1, 2], "non-negative"),
                                        ([0.0, 1.0, 2.0], "integers")])
def test_bad_ids_raise(ids, match):
    with pytest.raises(ValueError, match=match):
        Oracle(CountingModel(), bounds=(0, 1)).labels(_x(3), ids=ids)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="pass n_features="):
        Oracle(lambda x: x, bounds=(0, 1), classes=2)
    with pytest.raises(ValueError, match="pass classes="):
        Oracle(lambda x: np.zeros(len(x), int), bounds=(0, 1), n_features=D, output="labels")
    with pytest.raises(ValueError, match=r"1 output column\): pass classes="):
        Oracle(lambda x: x[:, :1], bounds=(0, 1), n_features=D)
    with pytest.raises(ValueError, match="lower bound exceeds"):
        Oracle(CountingModel(), bounds=(1, 0))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        Oracle(CountingModel(), bounds=(np.zeros(3), 1))
    with pytest.raises(ValueError, match="batch_size"):
        Oracle(CountingModel(), bounds=(0, 1), batch_size=0)


# ---------------------------------------------------------------------- model kinds
def test_label_only_callable_has_no_scores():
    def predict(x):
        return (x.sum(1) > D / 2).astype(int)

    oracle = Oracle(predict, bounds=(0, 1), n_features=D, classes=2, output="labels")
    x = _x(6)
    assert np.array_equal(oracle.labels(x), predict(x)) and not oracle.has_scores
    with pytest.raises(NoScoresError, match="labels only"):
        oracle.scores(x)
    with pytest.raises(NoGradientError):
        oracle.loss_gradient(x, np.zeros(6, int))


def test_callable_output_mismatch_raises():
    oracle = Oracle(lambda x: np.zeros(len(x), int), bounds=(0, 1), n_features=D, classes=2)
    with pytest.raises(ValueError, match="output='labels'"):
        oracle.scores(_x(2))


def test_object_with_its_own_gradient_is_used():
    class Surrogate:
        n_features_in_, classes_ = D, np.arange(2)

        def logits(self, x):
            return np.c_[-x.sum(1), x.sum(1)]

        def loss_gradient(self, x, y):
            return np.where(y[:, None] == 1, -1.0, 1.0) * np.ones_like(x)

    oracle = Oracle(Surrogate(), bounds=(0, 1))
    x = _x(3)
    assert oracle.has_gradients and np.allclose(oracle.loss_gradient(x, np.array([0, 1, 0])), [[1], [-1], [1]])
    assert np.array_equal(oracle.labels(x), (x.sum(1) > 0).astype(int))
    assert np.allclose(oracle.scores(x).sum(1), 1) and oracle.summary()["rows"] == 9


def _mlp():
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.Tanh(), torch.nn.Linear(8, C))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net.eval()


def test_torch_gradient_matches_independent_autograd_and_finite_differences():
    torch.set_num_threads(1)
    net = _mlp()
    oracle = Oracle(net, bounds=(0, 1), n_features=D, classes=C, batch_size=3)
    x, y = _x(7), np.arange(7) % C
    g = oracle.loss_gradient(x, y, ids=np.arange(7))
    assert g.shape == (7, D) and g.dtype == np.float32
    for i in range(7):  # each row alone, with torch's own per-sample loss
        xi = torch.tensor(x[i : i + 1], requires_grad=True)
        torch.nn.functional.cross_entropy(net(xi), torch.tensor([y[i]])).backward()
        assert np.allclose(g[i], xi.grad[0].numpy(), atol=1e-6)
    net64, h = _mlp().double(), 1e-6  # central differences in float64
    for i, j in [(0, 0), (3, 2), (6, 3)]:
        e = np.zeros((1, D))
        e[0, j] = h
        with torch.no_grad():
            loss = [float(torch.nn.functional.cross_entropy(net64(torch.tensor(x[i : i + 1] + s * e)),
                                                            torch.tensor([y[i]]))) for s in (1, -1)]
        assert abs((loss[0] - loss[1]) / (2 * h) - g[i, j]) < 1e-4
    assert oracle.summary()["rows"] == 7 and oracle.summary()["calls"] == 3
    logits = oracle.logits(x)
    assert np.allclose(logits, net(torch.from_numpy(x)).detach().numpy(), atol=1e-6)
    assert np.array_equal(oracle.labels(x), logits.argmax(1)) and np.allclose(oracle.scores(x).sum(1), 1)


def test_torch_single_logit_is_binary_and_training_mode_warns():
    net = torch.nn.Linear(D, 1)
    with pytest.warns(UserWarning, match="training mode"):
        Oracle(net, bounds=(0, 1), n_features=D, classes=2)
    oracle = Oracle(net.eval(), bounds=(0, 1), n_features=D, classes=2)
    x = _x(5)
    z = net(torch.from_numpy(x)).detach().numpy()[:, 0]
    assert np.allclose(oracle.scores(x)[:, 1], 1 / (1 + np.exp(-z)), atol=1e-6)
    assert np.array_equal(oracle.labels(x), (z > 0).astype(int))


# ---------------------------------------------------------------------- logits_gradient (VJP)
def test_logits_gradient_is_the_closed_form_on_a_linear_model():
    """For logits ``x @ W.T + b`` the gradient of ``sum_c w[i, c] z[i, c]`` is ``w[i] @ W``, exactly."""
    torch.manual_seed(0)
    net = torch.nn.Linear(D, C).eval()
    oracle = Oracle(net, bounds=(0, 1), n_features=D, classes=C, batch_size=2)
    x = _x(5)
    w = np.random.default_rng(3).normal(size=(5, C))
    g = oracle.logits_gradient(x, w, ids=np.arange(5))
    assert g.shape == (5, D) and g.dtype == np.float32 and oracle.has_logit_gradients
    np.testing.assert_allclose(g, w @ net.weight.detach().numpy().astype(np.float64), rtol=1e-5, atol=1e-6)
    s = oracle.summary()
    assert (s["rows"], s["calls"]) == (5, 3) and oracle.queries(np.arange(5)).tolist() == [1] * 5
    # the C&W margin Z_0 - Z_2 and a one-hot weight row give the weight-row differences
    one = oracle.logits_gradient(x[:1], np.array([[1.0, 0.0, -1.0]]))
    W = net.weight.detach().numpy()
    np.testing.assert_allclose(one[0], W[0] - W[2], rtol=1e-5, atol=1e-6)
    assert oracle.summary()["unattributed_rows"] == 1


def test_logits_gradient_matches_finite_differences_on_an_mlp():
    torch.set_num_threads(1)
    net64, h = _mlp().double(), 1e-6
    oracle = Oracle(_mlp(), bounds=(0, 1), n_features=D, classes=C, batch_size=4)
    x = _x(6, seed=2)
    w = np.random.default_rng(4).normal(size=(6, C))
    g = oracle.logits_gradient(x, w)
    for i in range(6):
        for j in range(D):
            e = np.zeros((1, D))
            e[0, j] = h
            with torch.no_grad():
                f = [float((net64(torch.tensor(x[i : i + 1] + s * e)) * torch.tensor(w[i])).sum()) for s in (1, -1)]
            assert abs((f[0] - f[1]) / (2 * h) - g[i, j]) < 1e-4
    # the cross-entropy gradient is the VJP with weights softmax(z) - onehot(y): the two oracles agree
    y = np.arange(6) % C
    z = oracle.logits(x)
    ce_weights = np.exp(z - z.max(1, keepdims=True))
    ce_weights = ce_weights / ce_weights.sum(1, keepdims=True) - np.eye(C)[y]
    np.testing.assert_allclose(oracle.logits_gradient(x, ce_weights), oracle.loss_gradient(x, y), atol=1e-5)


def test_logits_gradient_of_a_single_logit_binary_module():
    net = torch.nn.Linear(D, 1).eval()
    oracle = Oracle(net, bounds=(0, 1), n_features=D, classes=2)
    g = oracle.logits_gradient(_x(3), np.array([[1.0, -1.0], [0.0, 2.0], [0.0, 0.0]]))
    wv = net.weight.detach().numpy()[0]
    np.testing.assert_allclose(g, np.stack([-wv, 2 * wv, 0 * wv]), rtol=1e-5, atol=1e-7)


def test_logits_gradient_budget_refusal_and_strict():
    oracle = Oracle(_mlp(), bounds=(0, 1), n_features=D, classes=C, budget=3)
    x, w = _x(5), np.ones((5, C))
    oracle.labels(_x(2), ids=[0, 0])
    g = oracle.logits_gradient(x, w, ids=[0, 0, 1, 1, 1])  # sample 0 has one row left, sample 1 three
    assert np.isfinite(g[[0, 2, 3, 4]]).all() and np.isnan(g[1]).all()
    assert oracle.queries([0, 1]).tolist() == [3, 3] and oracle.summary()["refused_rows"] == 1
    with pytest.raises(QueryBudgetExceeded, match="budget of 3"):
        oracle.logits_gradient(x[:1], w[:1], ids=[1], strict=True)
    assert oracle.queries([0, 1]).tolist() == [3, 3]
    with pytest.raises(ValueError, match="pass ids="):
        oracle.logits_gradient(x, w)


@pytest.mark.parametrize("weights, match", [(np.ones((5, C + 1)), "shape"), (np.ones(5), "shape"),
                                            (np.full((5, C), np.nan), "finite"),
                                            (np.full((5, C), "a"), "real array")])
def test_logits_gradient_checks_its_weights_before_any_query(weights, match):
    oracle = Oracle(_mlp(), bounds=(0, 1), n_features=D, classes=C)
    with pytest.raises(ValueError, match=match):
        oracle.logits_gradient(_x(5), weights)
    assert oracle.summary()["rows"] == 0


def test_logits_gradient_of_objects_and_models_without_one():
    class Surrogate:
        n_features_in_, classes_ = D, np.arange(2)

        def logits(self, x):
            return np.c_[-x.sum(1), x.sum(1)]

        def logits_gradient(self, x, weights):
            return (weights[:, 1] - weights[:, 0])[:, None] * np.ones_like(x)

    oracle = Oracle(Surrogate(), bounds=(0, 1))
    assert oracle.has_logit_gradients and not oracle.has_gradients
    assert np.allclose(oracle.logits_gradient(_x(2), np.array([[1.0, 0.0], [0.0, 3.0]])), [[-1], [3]])
    assert oracle.summary()["rows"] == 2
    model = CountingModel()
    oracle = Oracle(model, bounds=(0, 1))
    assert not oracle.has_logit_gradients
    with pytest.raises(NoGradientError, match=r"logits_gradient\(x, weights\).*decision-based"):
        oracle.logits_gradient(_x(2), np.ones((2, C)))
    assert model.rows == 0 and oracle.summary()["rows"] == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_module_on_gpu_gets_its_inputs_there():
    net = _mlp().cuda()
    oracle = Oracle(net, bounds=(0, 1), n_features=D, classes=C)
    x = _x(5)
    expected = net(torch.from_numpy(x).cuda()).detach().cpu().numpy()
    assert oracle.device.type == "cuda" and np.allclose(oracle.logits(x), expected, atol=1e-5)
    assert isinstance(oracle.loss_gradient(x, np.zeros(5, int)), np.ndarray)


# ---------------------------------------------------------------------- SCD and ART
@pytest.fixture(scope="module")
def ensemble(digits):
    torch.set_num_threads(1)
    return scd.SCD01(n_votes=3, n_iters=30, hidden_nodes=5, updated_features=8, interval=5,
                     random_state=0).fit(digits.x_train, digits.y_train)


class CountingSCD:
    """Delegates to a fitted SCD ensemble and logs the rows it receives (do not refit the ensemble)."""

    def __init__(self, est):
        self.est, self.classes_, self.n_features_in_, self.batches = est, est.classes_, est.n_features_in_, []

    def predict_proba(self, x):
        self.batches.append(len(x))
        return self.est.predict_proba(x)

    def predict(self, x):
        self.batches.append(len(x))
        return self.est.predict(x)

    @property
    def rows(self):
        return sum(self.batches)


def test_scd_oracle_matches_the_estimator_and_has_no_gradients(ensemble, digits):
    oracle = Oracle(ensemble, bounds=(0, 1))
    x = digits.x_test[:20]
    assert oracle.n_features == 64 and oracle.classes.tolist() == ensemble.classes_.tolist()
    assert np.array_equal(oracle.classes[oracle.labels(x)], ensemble.predict(x))
    assert np.allclose(oracle.scores(x), ensemble.predict_proba(x))
    assert not oracle.has_gradients and not oracle.has_logit_gradients
    for call in (lambda: oracle.loss_gradient(x, np.zeros(20, int)), lambda: oracle.logits(x),
                 lambda: oracle.logits_gradient(x, np.zeros((20, oracle.n_classes)))):
        with pytest.raises(NoGradientError, match="has no gradients.*surrogate") as info:
            call()
        assert isinstance(info.value, TypeError)


def _correct_points(ensemble, digits, k=3):
    ok = np.flatnonzero(ensemble.predict(digits.x_test) == digits.y_test)[:k]
    return digits.x_test[ok]


def test_art_hop_skip_jump_queries_are_counted(ensemble, digits):
    pytest.importorskip("art")
    from art.attacks.evasion import HopSkipJump

    from attacks.art_adapter import art_generate, to_art_classifier

    model = CountingSCD(ensemble)
    classifier = to_art_classifier(model, clip_values=(0.0, 1.0), batch_size=256)
    oracle = classifier.predict_fn.oracle
    sent = []
    art_predict = classifier.predict  # count the rows ART's attack sends, independently of the oracle
    classifier.predict = lambda x, **kw: (sent.append(len(x)), art_predict(x, **kw))[1]
    attack = HopSkipJump(classifier, targeted=False, norm=2, max_iter=2, max_eval=100, init_eval=10,
                         init_size=10, verbose=False)
    x = _correct_points(ensemble, digits)
    x_adv, completed = art_generate(attack, x)
    s = oracle.summary()
    assert x_adv.shape == x.shape and completed.all()
    assert s["rows"] == sum(sent) == model.rows > 0 and s["calls"] == len(model.batches)
    assert s["unattributed_rows"] == 0 and oracle.sample_counts()["rows"].sum() == s["rows"]
    assert (oracle.queries([0, 1, 2]) > 0).all()
    attack.generate(x[:1])  # without art_generate the rows are counted, unattributed
    assert oracle.summary()["unattributed_rows"] == sum(sent) - s["rows"] > 0


def test_art_budget_stops_the_attack_at_the_limit(ensemble, digits):
    pytest.importorskip("art")
    from art.attacks.evasion import HopSkipJump

    from attacks.art_adapter import art_generate, to_art_classifier

    model = CountingSCD(ensemble)
    classifier = to_art_classifier(Oracle(model, bounds=(0, 1), budget=5), output="labels")
    attack = HopSkipJump(classifier, targeted=False, norm=2, max_iter=2, max_eval=100, init_eval=10,
                         init_size=10, verbose=False)
    x = _correct_points(ensemble, digits)
    x_adv, completed = art_generate(attack, x, ids=[3, 5, 7])
    oracle = classifier.predict_fn.oracle
    assert not completed.any() and np.array_equal(x_adv, x)
    # ART asks one row at a time here, so all-or-nothing still answers exactly the budget
    assert oracle.queries([3, 5, 7]).tolist() == [5, 5, 5] and model.rows == oracle.summary()["rows"] == 15
    with pytest.raises(ValueError, match="clip_values"):
        to_art_classifier(model)


def test_art_adapter_checks_its_arguments_and_absorbs_rounding():
    pytest.importorskip("art")
    from attacks.art_adapter import to_art_classifier

    oracle = Oracle(CountingModel(), bounds=(0, 1))
    with pytest.raises(ValueError, match="differ from the oracle's bounds"):
        to_art_classifier(oracle, clip_values=(0, 2))
    with pytest.raises(TypeError, match="existing Oracle"):
        to_art_classifier(oracle, budget=3)
    classifier = to_art_classifier(oracle)
    assert classifier.nb_classes == C and classifier.clip_values[1] == 1
    x = _x(2).astype(np.float64)
    x[0, 0] = 1 + 1e-9  # float rounding in ART's interpolation
    assert classifier.predict(x).shape == (2, C)
    x[0, 0] = 1.01  # a real violation still fails loudly
    with pytest.raises(ValueError, match="outside the bounds"):
        classifier.predict(x)


def test_an_attack_checks_its_inputs_once_and_each_query_is_clipped_once(monkeypatch):
    """The boundary checks ``x`` once; the attack's own queries are clipped by the probe and
    reach the model without a second check, with scikit-learn's finite scan switched off."""
    import sklearn

    from attacks import HopSkipJump
    from attacks.criteria import Probe
    from attacks.oracle import Line

    checks, clips, finite = [], [], []
    check, clip, points = Oracle.check, Probe.clip, Line.points
    monkeypatch.setattr(Oracle, "check", lambda self, x: checks.append(len(x)) or check(self, x))
    monkeypatch.setattr(Probe, "clip", lambda self, rows: clips.append(len(rows)) or clip(self, rows))
    # a binary search's points are formed and clipped by its line (this model has no line queries)
    monkeypatch.setattr(Line, "points", lambda self, rows, a: clips.append(len(rows)) or points(self, rows, a))
    model = CountingModel()
    predict = model.predict
    model.predict = lambda x: finite.append(sklearn.get_config()["assume_finite"]) or predict(x)
    result = HopSkipJump(max_iter=2, init_evals=5)(model, _x(3), bounds=(0.0, 1.0), seed=0)
    assert checks == [3]
    # every counted row went through exactly one probe clip (plus the final clip of the results)
    assert sum(clips) == result.queries.sum() + 3
    assert finite and all(finite)


@pytest.mark.parametrize("name", ["pgd", "zoo", "ead", "cw"])
def test_score_and_gradient_attacks_check_their_inputs_once(monkeypatch, name):
    """Their own queries (projected into the box by the algorithm) are not checked again."""
    from tests.attacks.models import binary_linear

    from attacks import ATTACKS

    checks = []
    check = Oracle.check
    monkeypatch.setattr(Oracle, "check", lambda self, x: checks.append(len(x)) or check(self, x))
    model, x = binary_linear(n=2, seed=3)
    oracle = Oracle(model.torch_module(), bounds=(0.0, 1.0), classes=model.classes_, n_features=model.n_features_in_)
    small = {"pgd": {"steps": 3}, "zoo": {"max_iter": 3, "binary_steps": 1, "batch_size": 4},
             "ead": {"max_iter": 4, "binary_steps": 1}, "cw": {"max_iter": 4, "binary_steps": 1}}
    result = ATTACKS[name](**small[name])(oracle, x, seed=0)
    assert checks == [2] and result.queries.sum() > 0


# ---------------------------------------------------------------------- inferred shape and classes, images
class _Counting(torch.nn.Module):
    """A module that counts the rows it really receives (to see the probe is the only one)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.rows = net, 0

    def forward(self, x):
        self.rows += len(x)
        return self.net(x)


def test_torch_module_and_callable_need_no_classes_or_n_features():
    torch.manual_seed(0)
    net = _Counting(torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.ReLU(), torch.nn.Linear(8, C))).eval()
    oracle = Oracle(net, bounds=(0, 1))
    assert oracle.n_features == D and np.array_equal(oracle.classes, np.arange(C))
    assert net.rows == 1 and oracle.summary()["rows"] == 0  # one probe query, counted nowhere
    x = _x(5)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).argmax(1).numpy()
    np.testing.assert_array_equal(oracle.labels(x), expected)
    binary = Oracle(torch.nn.Linear(D, 1).eval(), bounds=(0, 1))  # one logit: two classes
    assert binary.n_classes == 2
    model = CountingModel()
    scores = Oracle(model.predict_proba, bounds=(0, 1), n_features=D)
    assert scores.n_classes == C and np.array_equal(scores.labels(x), model.predict_proba(x).argmax(1))


class _SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.head = torch.nn.Linear(3 * 6 * 6, 2)
        with torch.no_grad():
            self.head.weight.mul_(5.0)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("kind", ["torch", "callable"])
def test_image_inputs_are_flattened_at_the_boundary_and_restored(kind):
    """(n, 1, 8, 8) images for a CNN, or (n, 8, 8) for a callable, give the same attack as flat rows
    through an explicit ``torch.nn.Unflatten`` in front of the same network."""
    from attacks import PGD, HopSkipJump

    cnn = _SmallCNN().eval()
    x = np.random.default_rng(0).uniform(0.2, 0.8, (6, 1, 8, 8)).astype(np.float32)
    flat_net = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 8, 8)), cnn).eval()
    flat = x.reshape(6, 64)
    if kind == "torch":
        model, images = cnn, x
    else:
        def model(z):
            with torch.no_grad():
                return torch.softmax(cnn(torch.from_numpy(z[:, None])), 1).numpy()

        images = x[:, 0]

    oracle = Oracle(model, bounds=(0, 1), input_shape=images.shape[1:])
    assert oracle.n_features == 64 and oracle.n_classes == 2
    np.testing.assert_array_equal(oracle.labels(images), Oracle(flat_net, bounds=(0, 1), n_features=64).labels(flat))
    attack = HopSkipJump(max_iter=3, init_evals=20, max_evals=50)
    ours = attack(model, images, bounds=(0, 1), seed=1)
    reference = attack(flat_net, flat, bounds=(0, 1), seed=1)
    assert ours.x_adv.shape == images.shape and ours.success.any()
    np.testing.assert_array_equal(ours.x_adv.reshape(6, 64), reference.x_adv)
    np.testing.assert_array_equal(ours.queries, reference.queries)
    if kind == "torch":
        grad = PGD(eps=0.1, steps=3)(model, images, bounds=(0, 1), seed=0)
        assert grad.x_adv.shape == images.shape
        np.testing.assert_array_equal(grad.x_adv.reshape(6, 64), PGD(eps=0.1, steps=3)(flat_net, flat, bounds=(0, 1),
                                                                                         seed=0).x_adv)


def test_rows_that_do_not_fit_a_leading_linear_layer_are_refused():
    from attacks import HopSkipJump

    net = torch.nn.Linear(D, 2).eval()
    with pytest.raises(ValueError, match=f"takes {D}"):
        HopSkipJump()(net, _x(2, d=D + 1), bounds=(0, 1))
