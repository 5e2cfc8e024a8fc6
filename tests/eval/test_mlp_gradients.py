"""White-box gradients of the MLP baseline: its torch module against scikit-learn's
``predict_proba``, central finite differences and an independent torch re-implementation; PGD
and EAD on the ensemble against ART on the same torch module; the forest still has none."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attacks import EAD, PGD, NoGradientError, Oracle  # noqa: E402
from eval.baselines import MLPEnsemble, RandomForestEnsemble  # noqa: E402

BOX = (0.0, 1.0)


@pytest.fixture(scope="module")
def data():
    """Digits 3 vs 8 in [0, 1], labelled 3 and 8 (labels that are not class indices, on purpose)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [3, 8])
    return X[keep] / 16.0, y[keep]


@pytest.fixture(scope="module")
def soft_mlp(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPEnsemble(n_votes=5, max_iter=300, random_state=0).fit(X, y)


@pytest.fixture(scope="module", params=["soft", "hard"])
def mlp(request, soft_mlp):
    """The same members, soft or hard voting."""
    return soft_mlp if request.param == "soft" else soft_mlp.members(range(5)).set_params(voting="hard")


def test_module_reproduces_the_soft_vote(mlp, data):
    X, _ = data
    z = mlp.logits(X)
    soft = np.exp(z)  # the logits are log-probabilities of the soft vote
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(soft, mlp.members(range(5)).set_params(voting="soft").predict_proba(X), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(z[:, 1] - z[:, 0], np.log(soft[:, 1] / soft[:, 0]), rtol=1e-8, atol=1e-10)


def test_gradients_match_central_finite_differences(mlp, data):
    X, _ = data
    x = X[:4]
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(len(x), 2))
    g = mlp.logits_gradient(x, weights)
    h = 1e-6
    n, d = x.shape
    steps = h * np.eye(d)
    plus, minus = (mlp.logits((x[:, None, :] + s * steps).reshape(-1, d)).reshape(n, d, 2) for s in (1, -1))
    fd = ((plus - minus) * weights[:, None, :]).sum(2) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_loss_gradient_matches_an_independent_torch_model(mlp, data):
    """Each member rebuilt from scikit-learn's weights as torch.nn layers; the cross-entropy of
    the mean member probability, differentiated by autograd."""
    X, y = data
    x = torch.from_numpy(X[:16].copy()).requires_grad_(True)
    probs = []
    for m in mlp.estimators_:
        layers = []
        for j, (W, b) in enumerate(zip(m.coefs_, m.intercepts_)):
            lin = torch.nn.Linear(*W.shape).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T))
                lin.bias.copy_(torch.from_numpy(b))
            layers += [lin, torch.nn.Sigmoid()]  # logistic hidden units and logistic output
        probs.append(torch.nn.Sequential(*layers)(x)[:, 0])
    p = torch.stack(probs).mean(0)
    target = torch.from_numpy((y[:16] == mlp.classes_[1]).astype(np.float64))
    loss = torch.nn.functional.binary_cross_entropy(p, target, reduction="sum")
    (expected,) = torch.autograd.grad(loss, x)
    np.testing.assert_allclose(mlp.loss_gradient(X[:16], y[:16]), expected.numpy(), rtol=1e-7, atol=1e-10)


def test_the_oracle_sees_white_box_gradients_and_the_forest_none(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPEnsemble(n_votes=2, max_iter=5, random_state=0).fit(X, y)
    oracle = Oracle(mlp, bounds=BOX)
    assert oracle.has_gradients and oracle.has_logit_gradients
    assert oracle.logits_gradient(X[:3], np.ones((3, 2))).shape == (3, 64)
    forest = RandomForestEnsemble(n_votes=3, random_state=0).fit(X, y)
    with pytest.raises(NoGradientError, match="no gradients"):
        Oracle(forest, bounds=BOX).loss_gradient(X[:2], np.zeros(2, np.int64))


# ---------------------------------------------------------------------- against ART
@pytest.fixture()
def one_torch_thread():
    """ART differentiates one small batch at a time; on a loaded machine torch's thread pool then
    waits on its own threads for most of the run (measured: 107 s instead of 7 s for the EAD test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Float64(torch.nn.Module):
    """ART's PyTorchClassifier around the ensemble's own torch module (independent attack code)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x.double())


def _art_classifier(mlp):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(_Float64(mlp.torch_module()), loss=torch.nn.CrossEntropyLoss(), input_shape=(64,),
                             nb_classes=2, clip_values=BOX, device_type="cpu")


def _points(mlp, data, n):
    X, y = data
    right = np.flatnonzero(mlp.predict(X) == y)
    pick = right[:: max(1, len(right) // n)][:n]
    return X[pick].astype(np.float32), y[pick]


def test_pgd_agrees_with_art(soft_mlp, data, one_torch_thread):
    pytest.importorskip("art")
    from art.attacks.evasion import ProjectedGradientDescent

    mlp = soft_mlp
    x, y = _points(mlp, data, 40)
    eps, step, steps = 0.1, 0.02, 10
    art = ProjectedGradientDescent(_art_classifier(mlp), norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                   num_random_init=0, verbose=False)
    art_x = np.clip(art.generate(x, y=np.eye(2)[np.searchsorted(mlp.classes_, y)]), 0, 1).astype(np.float32)
    ours = PGD(norm="inf", eps=eps, step=step, steps=steps, random_start=False)(mlp, x, y, bounds=BOX)
    art_success = mlp.predict(art_x) != y
    assert 0 < art_success.sum() < len(x)  # both outcomes occur: a meaningful comparison
    assert 0.9 <= ours.success.mean() / art_success.mean() <= 1.1
    assert np.mean(ours.success == art_success) >= 0.9
    # the same steps: every last iterate is ART's (measured: identical, 4 of 40 points succeed)
    np.testing.assert_allclose(ours.extra["x_last"], art_x, atol=1e-5, rtol=0)


def test_ead_agrees_with_art(soft_mlp, data, one_torch_thread):
    """Median L1 of the successes, paired on the points both attacks succeed on."""
    pytest.importorskip("art")
    from art.attacks.evasion import ElasticNet

    mlp = soft_mlp
    x, y = _points(mlp, data, 12)
    settings = {"beta": 1e-2, "decision_rule": "EN", "max_iter": 100, "binary_steps": 5}
    art = ElasticNet(_art_classifier(mlp), confidence=0.0, targeted=False, learning_rate=1e-2, binary_search_steps=5,
                     max_iter=100, beta=1e-2, initial_const=1e-3, batch_size=len(x), decision_rule="EN",
                     verbose=False)
    art_x = np.clip(art.generate(x, y=np.eye(2)[np.searchsorted(mlp.classes_, y)]), 0, 1).astype(np.float32)
    ours = EAD(abort_early=False, **settings)(mlp, x, y, bounds=BOX)
    art_success = mlp.predict(art_x) != y
    both = ours.success & art_success
    assert both.mean() >= 0.8
    art_l1 = np.abs(art_x - x).sum(1)
    ratio = np.median(ours.l1[both] / art_l1[both])
    assert 0.9 <= ratio <= 1.1, ratio
