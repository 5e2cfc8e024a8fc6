"""FGM / I-FGM / PGD: exact agreement with ART on a torch MLP, zero-gradient detection, no
gradients, budgets, seeds, the minimal-ε search, L1 projection, and parameter errors."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attacks import NoGradientError, Oracle, parse_norm  # noqa: E402
from attacks.gradient import FGM, FGSM, IFGM, PGD, _project_l1  # noqa: E402
from tests.attacks.models import binary_linear  # noqa: E402

D, K, N = 10, 3, 12
BOX = (0.0, 1.0)


class MLP(torch.nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(D, 16), torch.nn.ReLU(), torch.nn.Linear(16, K))
        with torch.no_grad():  # larger weights: the decision changes within small ε
            for p in self.net.parameters():
                p.mul_(3.0)

    def forward(self, x):
        return self.net(x.float())  # ART feeds float64 under numpy 2


class SignNet(torch.nn.Module):
    """Logits of sign(x - 0.5): a gradient that is exactly zero everywhere."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.lin = torch.nn.Linear(D, K)

    def forward(self, x):
        return self.lin(torch.sign(x.float() - 0.5))


@pytest.fixture(scope="module")
def mlp():
    model = MLP().eval()
    x = np.random.default_rng(0).uniform(0.2, 0.8, (N, D)).astype(np.float32)
    y = Oracle(model, bounds=BOX, n_features=D, classes=K).confirm(x)
    return model, x, y


def oracle(model, budget=None):
    return Oracle(model, bounds=BOX, n_features=D, classes=K, budget=budget)


# ---------------------------------------------------------------------- ART exactness
def _art(model, batch_size=32):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(D,), nb_classes=K,
                             clip_values=(0.0, 1.0), device_type="cpu")


SETTINGS = {"inf": {"eps": 0.1, "step": 0.02, "steps": 10}, 2: {"eps": 0.3, "step": 0.06, "steps": 10}}


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("norm", ["inf", 2])
@pytest.mark.parametrize("kind", ["fgm", "pgd"])
def test_matches_art_to_1e5(mlp, kind, norm, targeted):
    pytest.importorskip("art")
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    model, x, y = mlp
    s = SETTINGS[norm]
    tgt = (y + 1) % K if targeted else None
    art_norm = np.inf if norm == "inf" else 2
    if kind == "fgm":
        art_attack = FastGradientMethod(_art(model), norm=art_norm, eps=s["eps"], eps_step=s["eps"],
                                        targeted=targeted, num_random_init=0, minimal=False)
        ours = FGM(norm=norm, eps=s["eps"])
    else:
        art_attack = ProjectedGradientDescent(_art(model), norm=art_norm, eps=s["eps"], eps_step=s["step"],
                                              max_iter=s["steps"], targeted=targeted, num_random_init=0,
                                              verbose=False)
        ours = PGD(norm=norm, eps=s["eps"], step=s["step"], steps=s["steps"], random_start=False)
    art_x = art_attack.generate(x, y=np.eye(K)[tgt if targeted else y]).astype(np.float32)
    result = ours(oracle(model), x, y, targets=tgt)

    np.testing.assert_allclose(result.extra["x_last"], art_x, atol=1e-5, rtol=0)
    art_pred = oracle(model).confirm(np.clip(art_x, 0, 1))
    art_success = art_pred == tgt if targeted else art_pred != y
    np.testing.assert_array_equal(result.success, art_success)
    assert 0 < result.success.sum() < N  # both outcomes occur: a meaningful comparison
    ok = result.success
    np.testing.assert_allclose(result.x_adv[ok], art_x[ok], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(result.x_adv[~ok], x[~ok])  # failures return x (ART: the last iterate)
    assert np.all(result.queries == s["steps"] + 1 if kind == "pgd" else result.queries == 2)
    assert np.all(result.extra["zero_gradient_steps"] == 0)


def test_gradient_scale_against_art(mlp):
    """Our oracle's gradient is each row's own loss gradient; ART's is the gradient of the batch
    mean, i.e. ours divided by the batch size (same direction, so the same steps)."""
    pytest.importorskip("art")
    model, x, y = mlp
    ours = oracle(model).loss_gradient(x, y, np.arange(N))
    art_grad = _art(model).loss_gradient(x, np.eye(K)[y])
    np.testing.assert_allclose(art_grad * N, ours, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------- zero and no gradients
@pytest.mark.parametrize("attack", [FGM(eps=0.2), PGD(norm=2, eps=0.5, steps=5, random_start=False),
                                    IFGM(norm=1, eps=1.0, steps=3)], ids=repr)
def test_zero_gradient_is_detected_and_warned(attack):
    model = SignNet().eval()
    x = np.random.default_rng(2).uniform(0.55, 0.9, (5, D)).astype(np.float32)  # far from any sign change
    with pytest.warns(UserWarning, match=r"exactly zero for 5 of 5 attacked samples"):
        result = attack(oracle(model), x)
    np.testing.assert_array_equal(result.x_adv, x)
    assert not result.success.any()
    np.testing.assert_array_equal(result.extra["zero_gradient_fraction"], 1.0)
    np.testing.assert_array_equal(result.extra["zero_gradient_steps"], getattr(attack, "steps", 1))


def test_no_warning_when_gradients_are_informative(mlp):
    model, x, y = mlp
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = FGM(eps=0.1)(oracle(model), x, y)
    assert np.all(result.extra["zero_gradient_fraction"] < 1)


def test_label_only_model_raises_before_any_query():
    model, x = binary_linear(d=D, n=3)
    with pytest.raises(NoGradientError, match="decision-based attack"):
        PGD()(model, x, bounds=BOX)
    assert model.rows == 0
    with pytest.raises(NoGradientError, match="surrogate"):
        FGM()(Oracle(model, bounds=BOX), x)
    assert model.rows == 0


# ---------------------------------------------------------------------- budgets, seeds
def test_budget_is_respected(mlp):
    model, x, y = mlp
    for budget in (1, 4, 30):
        result = PGD(eps=0.1, steps=20)(oracle(model, budget), x, y, seed=0)
        assert np.all(result.queries <= budget)
        assert np.all(result.extra["gradient_rows"] <= budget - 1)
    result = PGD(eps=0.1, steps=20, eps_search=True)(oracle(model, 60), x, y, seed=0)
    assert np.all(result.queries <= 60)


def test_random_start_is_seeded_per_sample(mlp):
    model, x, y = mlp
    attack = PGD(eps=0.1, step=0.02, steps=5)
    a = attack(oracle(model), x, y, seed=3)
    b = attack(oracle(model), x, y, seed=3)
    np.testing.assert_array_equal(a.extra["x_last"], b.extra["x_last"])
    c = attack(oracle(model), x, y, seed=4)
    assert not np.array_equal(a.extra["x_last"], c.extra["x_last"])
    alone = attack(oracle(model), x[5:6], y[5:6], seed=3, sample_ids=[5])
    np.testing.assert_array_equal(alone.extra["x_last"][0], a.extra["x_last"][5])
    assert np.all(np.abs(a.extra["x_last"] - x).max(axis=1) <= 0.1 + 1e-6)


# ---------------------------------------------------------------------- minimal-ε search
@pytest.mark.parametrize("attack_cls, norm, eps, key", [(FGM, "inf", 0.2, "linf"), (IFGM, 2, 1.0, "l2"),
                                                         (PGD, 1, 2.0, "l1")])
def test_eps_search_is_no_larger_and_confirmed(mlp, attack_cls, norm, eps, key):
    model, x, y = mlp
    kwargs = {"steps": 5} if attack_cls is not FGM else {}
    if attack_cls is PGD:
        kwargs["random_start"] = False
    fixed = attack_cls(norm=norm, eps=eps, **kwargs)(oracle(model), x, y)
    search = attack_cls(norm=norm, eps=eps, eps_search=True, search_steps=6, **kwargs)(oracle(model), x, y)
    assert fixed.success.any()
    np.testing.assert_array_equal(search.success, fixed.success)  # the first round is the fixed run
    found = search.extra["eps"][search.success]
    assert np.all(found <= eps) and np.all(found > 0) and np.any(found < eps)
    dist = getattr(search, key)[search.success]
    assert np.all(dist <= getattr(fixed, key)[search.success] + 1e-6)
    assert np.all(dist <= eps * (1 + 1e-5))
    pred = oracle(model).confirm(search.x_adv[search.success])
    assert np.all(pred != y[search.success])  # really adversarial
    assert np.all(search.extra["eps"][~search.success] == -1)
    steps = kwargs.get("steps", 1)
    assert np.all(search.queries <= (steps + 1) * 7)


# ---------------------------------------------------------------------- L1 pieces
def test_l1_projection_is_exact():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 7)).astype(np.float32)
    eps = rng.uniform(0.1, 3.0, 50)
    p = _project_l1(v, eps).astype(np.float64)
    inside = np.abs(v).sum(1) <= eps
    np.testing.assert_array_equal(p[inside], v[inside])
    np.testing.assert_allclose(np.abs(p[~inside]).sum(1), eps[~inside], rtol=1e-5)
    # brute force: soft-thresholding with θ found by bisection
    for row in np.flatnonzero(~inside):
        lo, hi = 0.0, float(np.abs(v[row]).max())
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.maximum(np.abs(v[row]) - mid, 0).sum() > eps[row] else (lo, mid)
        np.testing.assert_allclose(p[row], np.sign(v[row]) * np.maximum(np.abs(v[row]) - hi, 0), atol=1e-5)


def test_l1_attack_stays_in_ball_and_box(mlp):
    model, x, y = mlp
    result = PGD(norm=1, eps=1.5, step=0.3, steps=10)(oracle(model), x, y, seed=0)
    last = result.extra["x_last"]
    assert np.all(np.abs(last - x).sum(1) <= 1.5 * (1 + 1e-5))
    assert last.min() >= 0 and last.max() <= 1
    assert 0 < result.success.sum() < N  # both outcomes occur: a meaningful comparison


# ---------------------------------------------------------------------- parameters
@pytest.mark.parametrize("attack, match", [
    (FGM(norm=3), "Unknown norm"), (FGM(eps=0), "eps must be"), (FGM(eps=np.inf), "eps must be"),
    (IFGM(step=-1.0), "step must be"), (IFGM(steps=0), "steps must be"), (PGD(steps=2.5), "steps must be"),
    (PGD(random_start="yes"), "random_start"), (FGM(eps_search=1), "eps_search"),
    (FGM(search_steps=0), "search_steps"), (FGSM(norm=2), "L∞ attack"),
], ids=repr)
def test_bad_parameters_raise_before_any_query(attack, match):
    model, x = binary_linear(d=D, n=2)
    with pytest.raises(ValueError, match=match):
        attack(model, x, bounds=BOX)
    assert model.rows == 0


def test_params_names_and_norms():
    assert FGM().name == "fgm" and FGSM().name == "fgsm" and IFGM().name == "ifgm" and PGD().name == "pgd"
    assert FGM("l1").norm == 1.0 and IFGM(2).norm == 2.0 and PGD("linf").norm == np.inf
    assert PGD(norm="l2", eps=1.0).get_params() == {"norm": 2, "eps": 1.0, "step": None, "steps": 40,
                                                     "random_start": True, "eps_search": False, "search_steps": 8}
    assert FGM().get_params() == {"norm": "inf", "eps": 0.3, "eps_search": False, "search_steps": 8}
    assert parse_norm("L1") == 1.0
    assert PGD(eps=0.4, steps=10).step_size() == pytest.approx(0.1) and IFGM(eps=0.3, steps=10).step_size() == 0.03
