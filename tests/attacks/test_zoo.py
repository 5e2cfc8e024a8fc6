"""ZOO: distances against the closed-form boundary distance of a logistic model (scores only),
both directions of movement inside the box, a digits MLP (untargeted and targeted), logits,
lock-step batching and query counts, budgets, seeds, batch independence, zero gradients on a
sign-activation ensemble, attack-space dimension reduction, and errors raised before any query."""

import warnings

import numpy as np
import pytest

from attacks import NoGradientError, NoScoresError, Oracle
from attacks.zoo import ZOO, _Level
from tests.attacks.models import binary_linear, three_class_linear

BOX = (0.0, 1.0)


class LogisticProba:
    """``[1 − σ(m), σ(m)]`` of a linear margin, computed row by row (no BLAS, so a row's answer
    does not depend on its batch-mates): a scores-only model with no gradients."""

    def __init__(self, w: np.ndarray, b: float):
        self.w = np.asarray(w, np.float64)
        self.b = float(b)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(self.w)

    def margin(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) * self.w).sum(axis=1) + self.b

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.margin(x)))
        return np.stack([1 - p, p], axis=1)

    def exact_distance(self, x: np.ndarray) -> np.ndarray:
        return np.abs(self.margin(x)) / np.linalg.norm(self.w)


class SoftmaxLinear:
    """Softmax of ``x @ W + b`` computed row by row (three classes)."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.W = np.asarray(W, np.float64)
        self.b = np.asarray(b, np.float64)
        self.classes_ = np.arange(self.W.shape[1])
        self.n_features_in_ = self.W.shape[0]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64)[:, :, None] * self.W[None]).sum(axis=1) + self.b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def logistic():
    lin, x = binary_linear(d=10, n=10)
    return LogisticProba(lin.W, lin.b), x


@pytest.fixture(scope="module")
def three():
    lin, x = three_class_linear(d=12, n=5)
    return SoftmaxLinear(lin.W, lin.b), x


@pytest.fixture(scope="module")
def digits_mlp():
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: accuracy is what matters here
        mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X[:1000], y[:1000])
    assert mlp.score(X[1000:], y[1000:]) > 0.9
    return mlp, X[1000:1010]


FAST = dict(max_iter=200, binary_steps=4, c_init=1.0)


# ---------------------------------------------------------------------- distances, directions
@pytest.mark.parametrize("kwargs", [{}, {"solver": "newton", "learning_rate": 0.1}, {"solver": "newton_adam"},
                                    {"space": "tanh"}, {"loss": "prob"}], ids=repr)
def test_l2_close_to_closed_form_on_logistic_model(logistic, kwargs):
    model, x = logistic
    result = ZOO(max_iter=300, binary_steps=6, c_init=1.0, **kwargs)(model, x, bounds=BOX, seed=0)
    exact = model.exact_distance(x)
    assert result.success.all()
    assert np.all(result.l2 >= exact * (1 - 1e-4))  # never closer than the true boundary
    assert np.median(result.l2 / exact) < 1.15
    assert np.all(np.sign(model.margin(result.x_adv)) != np.sign(model.margin(x)))


def test_features_move_in_both_directions():
    """On the upper bound the first two features can only decrease, on the lower bound the last two
    can only increase, and the closest boundary point needs all four (ART's ZOO cannot decrease)."""
    model = LogisticProba(np.array([1.0, 1.0, -1.0, -1.0]), -1.6)
    x = np.array([[1.0, 1.0, 0.0, 0.0], [0.9, 1.0, 0.1, 0.0]], np.float32)
    result = ZOO(max_iter=300, binary_steps=6, c_init=1.0)(model, x, bounds=BOX, seed=0)
    assert result.success.all()
    delta = result.x_adv - x
    assert np.all(delta[:, :2] < -0.01) and np.all(delta[:, 2:] > 0.01)
    assert np.all(result.l2 < 1.15 * model.exact_distance(x))


def test_negative_and_positive_coordinates_on_logistic_model(logistic):
    model, x = logistic
    result = ZOO(max_iter=300, binary_steps=6, c_init=1.0)(model, x, bounds=BOX, seed=0)
    delta = result.x_adv - x
    assert np.all((delta < -1e-3).any(axis=1)) and np.all((delta > 1e-3).any(axis=1))
    # the steepest direction: each coordinate moves against sign(margin) * sign(w)
    big = np.abs(model.w) > 0.5 * np.abs(model.w).max()
    expected = -np.sign(model.margin(x))[:, None] * np.sign(model.w)[None, :]
    assert np.all(np.sign(delta[:, big]) == expected[:, big])


# ---------------------------------------------------------------------- digits MLP
def test_untargeted_digits_mlp(digits_mlp):
    mlp, x = digits_mlp
    result = ZOO(batch_size=16, **FAST)(mlp, x, bounds=BOX, seed=0)
    assert result.success.all()
    assert np.all(mlp.predict(result.x_adv) != mlp.predict(x))
    assert np.median(result.l2) < 1.5  # digits in [0, 1]^64: a small change
    # lock-step: one model call per iteration holding 2B + 1 rows of every active sample
    np.testing.assert_array_equal(result.calls, result.extra["iterations"])
    np.testing.assert_array_equal(result.queries, 33 * result.extra["iterations"])
    assert np.all(result.extra["coordinates"] == 16 * result.extra["iterations"])
    assert np.all(result.extra["const"] > 0)
    for h in result.history:  # budget curves: queries up, distance down
        assert len(h) and np.all(np.diff(h[:, 0]) >= 0) and np.all(np.diff(h[:, 1]) <= 1e-12)


def test_targeted_digits_mlp(digits_mlp):
    mlp, x = digits_mlp
    targets = (mlp.predict(x) + 1) % 10
    result = ZOO(batch_size=16, **FAST)(mlp, x, bounds=BOX, seed=0, targets=targets)
    assert result.success.all()
    np.testing.assert_array_equal(mlp.predict(result.x_adv), targets)


def test_logits_loss_on_torch_module():
    torch = pytest.importorskip("torch")
    lin, x = three_class_linear(d=12, n=5)
    module = torch.nn.Linear(12, 3).double().eval()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(lin.W.T))
        module.bias.copy_(torch.from_numpy(lin.b))
    oracle = Oracle(module, bounds=BOX, n_features=12, classes=3)
    result = ZOO(loss="logits", batch_size=4, **FAST)(oracle, x, seed=0)
    assert result.success.all()
    assert np.all(oracle.confirm(result.x_adv) != oracle.confirm(x))


# ---------------------------------------------------------------------- seeds, batches, budgets
def test_seeded_and_independent_of_batch_mates(three):
    model, x = three
    attack = ZOO(batch_size=4, max_iter=60, binary_steps=2, c_init=1.0)
    a = attack(model, x, bounds=BOX, seed=3, sample_ids=np.arange(10, 15))
    b = attack(model, x, bounds=BOX, seed=3, sample_ids=np.arange(10, 15))
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    np.testing.assert_array_equal(a.queries, b.queries)
    c = attack(model, x, bounds=BOX, seed=4, sample_ids=np.arange(10, 15))
    assert not np.array_equal(a.x_adv, c.x_adv)
    alone = attack(model, x[2:3], bounds=BOX, seed=3, sample_ids=[12])
    np.testing.assert_array_equal(alone.x_adv[0], a.x_adv[2])
    assert alone.queries[0] == a.queries[2]
    np.testing.assert_array_equal(alone.extra["zero_gradient_fraction"][0], a.extra["zero_gradient_fraction"][2])


def test_cutting_large_batches_changes_nothing_but_calls(three, monkeypatch):
    import attacks.zoo as zoo

    model, x = three
    attack = ZOO(batch_size=4, max_iter=30, binary_steps=2, c_init=1.0)
    whole = attack(model, x, bounds=BOX, seed=0)
    monkeypatch.setattr(zoo, "_MAX_ELEMENTS", 2 * 9 * 12)  # two samples' rows per model call
    cut = attack(model, x, bounds=BOX, seed=0)
    np.testing.assert_array_equal(whole.x_adv, cut.x_adv)
    np.testing.assert_array_equal(whole.queries, cut.queries)
    np.testing.assert_array_equal(whole.calls, cut.calls)  # each sample is still in one call per iteration


@pytest.mark.parametrize("budget", [5, 100, 250])
def test_budget_is_respected_exactly(three, budget):
    model, x = three
    oracle = Oracle(model, bounds=BOX, budget=budget)
    result = ZOO(batch_size=4, max_iter=60, binary_steps=3, c_init=1.0)(oracle, x, seed=0)
    assert np.all(result.queries <= budget)
    assert np.all(result.queries > budget - 9)  # stops only when 2B + 1 = 9 rows no longer fit
    assert oracle.summary()["refused_rows"] == 0  # never asked for a row it could not have


def test_already_misclassified_inputs_are_not_attacked(logistic):
    model, x = logistic
    y = (model.margin(x) > 0).astype(int)
    y[:4] = 1 - y[:4]  # the first four are "already wrong"
    oracle = Oracle(model, bounds=BOX)
    result = ZOO(max_iter=20, binary_steps=1, c_init=1.0)(oracle, x, y, seed=0)
    assert result.already_adversarial[:4].all() and not result.already_adversarial[4:].any()
    np.testing.assert_array_equal(result.queries[:4], 0)
    np.testing.assert_array_equal(result.x_adv[:4], x[:4])
    np.testing.assert_array_equal(result.extra["const"][:4], 0.0)
    assert np.all(result.x_adv >= 0) and np.all(result.x_adv <= 1)


def test_early_stop_saves_queries(three):
    model, x = three
    attack = ZOO(batch_size=4, max_iter=60, binary_steps=3, c_init=1.0)
    full = attack(model, x, bounds=BOX, seed=0)
    stopped = attack(model, x, bounds=BOX, seed=0, early_stop=10.0)
    assert stopped.success.all()
    assert np.all(stopped.queries < full.queries)


# ---------------------------------------------------------------------- zero gradients
def test_sign_ensemble_reports_zero_gradients_and_warns():
    scd = pytest.importorskip("scd")
    from eval.datasets import load_dataset

    data = load_dataset("digits")
    model = scd.SCD01(n_votes=5, n_iters=30, hidden_nodes=5, updated_features=8, interval=5, random_state=0,
                      device="cpu").fit(data.x_train, data.y_train)
    with pytest.warns(UserWarning, match=r"exactly zero .* of 4 attacked samples"):
        result = ZOO(max_iter=40, binary_steps=2, batch_size=16, abort_patience=20)(
            model, data.x_test[:4], bounds=BOX, seed=0)
    assert np.all(result.extra["zero_gradient_fraction"] > 0.9)
    assert np.all(result.extra["zero_gradient_steps"] > 0)
    assert np.all(result.extra["early_aborts"] > 0)  # a flat loss ends each step after the patience


def test_probabilities_of_exactly_zero_and_one_are_floored():
    """A step function answers probabilities 0 and 1: the floored log keeps every loss finite."""
    lin, x = binary_linear(d=6, n=3)

    def step(z):
        p = (lin.margin(z) > 0).astype(np.float64)
        return np.stack([1 - p, p], axis=1)

    oracle = Oracle(step, bounds=BOX, n_features=6, classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no log(0), no inf - inf
        with pytest.warns(UserWarning, match="piecewise constant"):
            result = ZOO(max_iter=20, binary_steps=2, abort_patience=5)(oracle, x)
    np.testing.assert_array_equal(result.extra["zero_gradient_fraction"], 1.0)
    assert np.all(result.extra["zero_gradient_steps"] == result.extra["iterations"])
    np.testing.assert_array_equal(result.extra["const"], -1.0)  # no step succeeded
    assert '"zero_gradient_fraction"' in result.to_json()


def test_no_warning_on_smooth_model(logistic):
    model, x = logistic
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ZOO(max_iter=50, binary_steps=2, c_init=1.0)(model, x, bounds=BOX)
    assert np.all(result.extra["zero_gradient_fraction"] == 0)


# ---------------------------------------------------------------------- dimension reduction
def _block_constant(delta: np.ndarray, x_adv: np.ndarray) -> tuple[bool, int]:
    """Whether the unclipped entries of ``delta`` (n, 8, 8) are constant over 2 × 2 blocks, and
    how many blocks had at least two such moved entries."""
    constant, informative = True, 0
    for d_img, x_img in zip(delta.reshape(-1, 8, 8), x_adv.reshape(-1, 8, 8)):
        for i in range(0, 8, 2):
            for j in range(0, 8, 2):
                free = (x_img[i:i + 2, j:j + 2] > 0) & (x_img[i:i + 2, j:j + 2] < 1)
                values = d_img[i:i + 2, j:j + 2][free]
                if len(values) >= 2 and np.abs(values).max() > 1e-4:
                    informative += 1
                    constant &= bool(np.ptp(values) < 1e-5)
    return constant, informative


def test_reduced_attack_space_moves_blocks(digits_mlp):
    mlp, x = digits_mlp
    result = ZOO(image_shape=(1, 8, 8), init_size=4, **FAST)(mlp, x, bounds=BOX, seed=0)
    assert result.success.all()
    assert result.extra["attack_dims"] == [16]
    constant, informative = _block_constant(result.x_adv - x, result.x_adv)
    assert constant and informative > 10
    np.testing.assert_array_equal(result.queries, 33 * result.extra["iterations"])  # B = min(128, 16)


def test_hierarchical_schedule_and_importance_sampling(digits_mlp):
    mlp, x = digits_mlp
    attack = ZOO(image_shape=(1, 8, 8), init_size=4, resize_schedule=((40, 8),), importance=True, batch_size=8,
                 **FAST)
    result = attack(mlp, x, bounds=BOX, seed=0)
    assert result.success.all()
    assert result.extra["attack_dims"] == [16, 64]
    constant, _ = _block_constant(result.x_adv - x, result.x_adv)
    assert not constant  # after growing, pixels of a block move separately
    again = attack(mlp, x, bounds=BOX, seed=0)
    np.testing.assert_array_equal(result.x_adv, again.x_adv)


def test_level_geometry():
    level = _Level((2, 8, 8), (4, 4))
    owner = level.owner.reshape(2, 8, 8)
    assert level.m == 32 and owner[0, 0, 0] == owner[0, 1, 1] == 0 and owner[0, 2, 2] == 5 and owner[1, 7, 7] == 31
    y = np.random.default_rng(0).normal(size=(3, 32))
    np.testing.assert_allclose(level.reduce(level.upsample(y), np.add) / level.counts, y)  # D⁺ D = I
    odd = _Level((1, 5, 7), (2, 3))  # non-divisible sizes: every coordinate still owns a block
    assert sorted(set(odd.owner)) == list(range(6))
    weights = level.importance(np.zeros((1, 32)))
    np.testing.assert_array_equal(weights, 1.0)


# ---------------------------------------------------------------------- errors before any query
def test_label_only_model_raises_before_any_query():
    model, x = binary_linear(d=6, n=3)
    with pytest.raises(NoScoresError, match="HopSkipJump"):
        ZOO()(model, x, bounds=BOX)
    assert model.rows == 0


def test_logits_loss_needs_logits(logistic):
    model, x = logistic
    oracle = Oracle(model, bounds=BOX)
    with pytest.raises(NoGradientError, match="loss='logprob'"):
        ZOO(loss="logits")(oracle, x)
    assert oracle.summary()["rows"] == 0 and oracle.summary()["confirm_rows"] == 0


@pytest.mark.parametrize("attack, match", [
    (ZOO(confidence=-1.0), "confidence"), (ZOO(loss="log"), "loss must be"), (ZOO(solver="sgd"), "solver must be"),
    (ZOO(learning_rate=0), "learning_rate"), (ZOO(batch_size=0), "batch_size"), (ZOO(h=-1e-4), "h must be"),
    (ZOO(max_iter=0), "max_iter"), (ZOO(binary_steps=1.5), "binary_steps"), (ZOO(c_init=np.inf), "c_init"),
    (ZOO(abort_patience=0), "abort_patience"), (ZOO(space="sigmoid"), "space must be"),
    (ZOO(importance="yes"), "importance must be"), (ZOO(init_size=4), "need image_shape"),
    (ZOO(importance=True), "need image_shape"), (ZOO(resize_schedule=((10, 8),)), "need image_shape"),
    (ZOO(image_shape=(6, 6)), "image_shape must be"), (ZOO(image_shape=(1, 2, 3), init_size=4), "exceeds"),
    (ZOO(image_shape=(1, 2, 3), init_size=1, resize_schedule=((10, 1),)), "must grow"),
    (ZOO(image_shape=(1, 2, 3), init_size=1, resize_schedule=((10, 2), (5, (2, 3)))), "must grow"),
    (ZOO(image_shape=(1, 2, 2)), "has 4 values"),
], ids=repr)
def test_bad_parameters_raise_before_any_query(attack, match):
    lin, x = binary_linear(d=6, n=2)
    model = LogisticProba(lin.W, lin.b)
    oracle = Oracle(model, bounds=BOX)
    with pytest.raises(ValueError, match=match):
        attack(oracle, x)
    assert oracle.summary()["rows"] == 0 and oracle.summary()["confirm_rows"] == 0


def test_params_and_name():
    attack = ZOO(image_shape=(1, 8, 8), init_size=4)
    params = attack.get_params()
    assert attack.name == "zoo" and attack.norm == 2.0
    assert params["image_shape"] == (1, 8, 8) and params["loss"] == "logprob" and params["batch_size"] == 128
    assert "norm" not in params


def test_const_of_a_success_cut_short_by_the_budget(logistic):
    """A sample that succeeds in a step the budget cuts short reports that step's c, not "no
    step succeeded" (-1)."""
    model, x = logistic
    result = ZOO(max_iter=300, binary_steps=3, c_init=1.0)(model, x, bounds=BOX, seed=0, max_queries=400)
    cut = result.success & (result.extra["binary_steps_done"] == 0)
    assert cut.any()
    np.testing.assert_array_equal(result.extra["const"][cut], 1.0)
    assert np.all(result.extra["const"][result.success] > 0)
