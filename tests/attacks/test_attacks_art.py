"""Our decision-based attacks against ART's (a library we did not write), reduced from
``benchmarks/bench_attacks_art.py``: same model, points, starting points and query counting;
our distance is read at the number of queries ART used on each sample."""

import numpy as np
import pytest

pytest.importorskip("art")

from art.attacks.evasion import BoundaryAttack  # noqa: E402
from art.attacks.evasion import HopSkipJump as ArtHopSkipJump  # noqa: E402

from attacks import Boundary, HopSkipJump, Oracle, nearest_other_class  # noqa: E402
from attacks.art_adapter import art_generate, to_art_classifier  # noqa: E402
from eval.baselines import RandomForestEnsemble  # noqa: E402
from eval.datasets import load_dataset  # noqa: E402

BOX = (0.0, 1.0)


@pytest.fixture(scope="module")
def setting():
    ds = load_dataset("digits")
    model = RandomForestEnsemble(n_votes=100, random_state=0).fit(ds.x_train, ds.y_train)
    x = ds.x_test[np.flatnonzero(model.predict(ds.x_test) == ds.y_test)[:8]]
    start = nearest_other_class(x, ds.x_train, model.predict(x), model.predict(ds.x_train))
    start = HopSkipJump(max_iter=0)(model, x, bounds=BOX, starting_points=start).x_adv  # on the boundary
    return model, x, start


def _art_run(model, x, start, make_attack, seed):
    np.random.seed(seed)  # ART draws its noise from the global generator
    oracle = Oracle(model, bounds=BOX)
    x_adv, _ = art_generate(make_attack(to_art_classifier(oracle, output="labels")), x, x_adv_init=start)
    success = oracle.confirm(oracle.clip(x_adv)) != oracle.confirm(x)
    return np.linalg.norm(x_adv.astype(np.float64) - x, axis=1), success, oracle.queries(np.arange(len(x)))


ART = {"hsj": lambda c: ArtHopSkipJump(c, targeted=False, norm=2, max_iter=10, max_eval=10000, init_eval=100,
                                       verbose=False),
       "boundary": lambda c: BoundaryAttack(c, targeted=False, max_iter=150, verbose=False)}
OURS = {"hsj": HopSkipJump(theta="art", max_iter=10), "boundary": Boundary(steps=100000)}


@pytest.mark.parametrize("name, seeds", [("hsj", 3), ("boundary", 2)])
def test_matches_art_at_equal_queries(setting, name, seeds):
    # both are random, and 8 points are few: pool a few seeds of each library, and compare
    # paired (same point, same start, same budget): the geometric mean of our distance over
    # ART's.  The ratio of the two medians is not stable here: the 16 distances form two
    # clusters (about 0.3 and 0.5+), and either median may land in either one.
    model, x, start = setting
    art_all, ours_all = [], []
    for seed in range(seeds):
        art_l2, art_ok, art_q = _art_run(model, x, start, ART[name], seed)
        result = OURS[name](Oracle(model, bounds=BOX, budget=int(art_q.max())), x, seed=seed, starting_points=start)
        at_equal = result.distance_at(art_q)
        assert art_ok.all() and result.success.all() and np.isfinite(at_equal).all()
        art_all.append(art_l2)
        ours_all.append(at_equal)
    ratio = np.exp(np.mean(np.log(np.concatenate(ours_all) / np.concatenate(art_all))))
    assert 0.8 < ratio < 1.25, ratio
