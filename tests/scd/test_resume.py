"""An interrupted fit resumes from its checkpoint and ends with the same ensemble."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import scd
from eval.datasets import load_dataset
from scd import _parallel

PARAMS = dict(n_votes=4, n_iters=12, hidden_nodes=4, updated_features=8, interval=4, random_state=3, group_size=1)


def _interrupt_on_group(monkeypatch, group: int):
    """Make training raise KeyboardInterrupt (Ctrl-C) when group number ``group`` (1-based) starts."""
    real = _parallel.train_votes
    calls = []

    def interrupting(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == group:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_parallel, "train_votes", interrupting)
    return real


def test_interrupt_then_resume_equals_uninterrupted(tmp_path, monkeypatch):
    ds = load_dataset("digits")
    ckpt = tmp_path / "fit.ckpt"
    reference = scd.SCD01(**PARAMS).fit(ds.x_train, ds.y_train)

    real = _interrupt_on_group(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        scd.SCD01(**PARAMS, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train)
    assert ckpt.exists()
    monkeypatch.setattr(_parallel, "train_votes", real)

    trained = []
    monkeypatch.setattr(_parallel, "train_votes", lambda *a, **k: trained.append(list(a[2])) or real(*a, **k))
    resumed = scd.SCD01(**PARAMS, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train, resume=True)
    assert trained == [[2], [3]]  # only the groups that had not finished
    for name in ("W1_", "b1_", "w2_", "b2_", "vote_scores_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))


def test_resume_refuses_a_different_fit(tmp_path):
    ds = load_dataset("digits")
    ckpt = tmp_path / "fit.ckpt"
    scd.SCD01(**PARAMS, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train)
    with pytest.raises(ValueError, match="does not match this fit"):
        scd.SCD01(**{**PARAMS, "hidden_nodes": 5}, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train, resume=True)
    with pytest.raises(ValueError, match="does not match this fit"):
        scd.SCD01(**PARAMS, checkpoint=str(ckpt)).fit(ds.x_train[::-1], ds.y_train[::-1], resume=True)
    with pytest.raises(ValueError, match="needs the checkpoint"):
        scd.SCD01(**PARAMS).fit(ds.x_train, ds.y_train, resume=True)


def test_resume_refuses_data_changed_in_any_row(tmp_path):
    ds = load_dataset("digits")
    X, y = np.vstack([ds.x_train] * 3), np.concatenate([ds.y_train] * 3)
    ckpt = tmp_path / "fit.ckpt"
    scd.SCD01(**PARAMS, checkpoint=str(ckpt)).fit(X, y)
    changed = X.copy()
    changed[1, 0] = 1.0 - changed[1, 0]  # one value of one row
    with pytest.raises(ValueError, match="does not match this fit"):
        scd.SCD01(**PARAMS, checkpoint=str(ckpt)).fit(changed, y, resume=True)


def test_unwritable_checkpoint_is_refused_before_training(tmp_path, monkeypatch):
    ds = load_dataset("digits")
    monkeypatch.setattr(_parallel, "train_votes", lambda *a, **k: pytest.fail("trained before checking the path"))
    with pytest.raises(ValueError, match="is a directory"):
        scd.SCD01(**PARAMS, checkpoint=str(tmp_path)).fit(ds.x_train, ds.y_train)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot be written"):
        scd.SCD01(**PARAMS, checkpoint=str(blocker / "fit.ckpt")).fit(ds.x_train, ds.y_train)


def test_fit_and_save_keeps_the_checkpoint_only_while_it_is_needed(tmp_path, monkeypatch):
    from scd.persist import checkpoint_path, fit_and_save

    ds = load_dataset("digits")
    out = tmp_path / "m.scd"
    ckpt = tmp_path / "m.scd.ckpt"
    assert checkpoint_path(out) == str(ckpt)
    real = _interrupt_on_group(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        fit_and_save(scd.SCD01(**PARAMS), ds.x_train, ds.y_train, out)
    assert ckpt.exists() and not out.exists()  # interrupted: the checkpoint stays
    monkeypatch.setattr(_parallel, "train_votes", real)
    model = fit_and_save(scd.SCD01(**PARAMS), ds.x_train, ds.y_train, out, resume=True)
    assert model.n_votes_resumed_ == 1 and out.exists() and not ckpt.exists()
    reference = scd.SCD01(**PARAMS).fit(ds.x_train, ds.y_train)
    np.testing.assert_array_equal(scd.load(out).W1_, reference.W1_)
    # without resume a stale checkpoint is discarded (here: one from other parameters)
    scd.SCD01(**{**PARAMS, "hidden_nodes": 5}, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train)
    fit_and_save(scd.SCD01(**PARAMS), ds.x_train, ds.y_train, out)
    assert not ckpt.exists()
    with pytest.raises(ValueError, match="no checkpoint"):
        fit_and_save(RandomForestClassifier(n_estimators=2), ds.x_train, ds.y_train, tmp_path / "rf", resume=True)
