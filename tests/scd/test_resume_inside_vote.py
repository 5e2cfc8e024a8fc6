"""An interrupted fit resumes *inside* a vote from its last mid-vote snapshot (weights, best
snapshot and random streams) and ends with the uninterrupted ensemble; the CLI offers
``--resume`` only when there is something to resume."""

import numpy as np
import pytest
from click.testing import CliRunner

import scd
from cli import main
from eval.datasets import load_dataset
from scd import _train

PARAMS = {"n_iters": 150, "hidden_nodes": 4, "updated_features": 8, "interval": 4, "random_state": 5}
EVERY = 64  # snapshots every 64 iterations (the trainer's default is a few hundred)


@pytest.fixture
def snapshots(monkeypatch):
    monkeypatch.setattr(_train, "_SNAPSHOT_EVERY", EVERY)


def _watch(monkeypatch, group: int = 0, iteration: int = -1) -> list[list[int]]:
    """Record the iterations each group trains, one list per group; Ctrl-C when group number
    ``group`` (1-based) reaches ``iteration``."""
    init, step, steps = _train._Group.__init__, _train._Group.step, []

    def watched_init(self, *args):
        steps.append([])
        init(self, *args)

    def watched_step(self, it):
        steps[-1].append(it)
        if len(steps) == group and it == iteration:
            raise KeyboardInterrupt
        step(self, it)

    monkeypatch.setattr(_train._Group, "__init__", watched_init)
    monkeypatch.setattr(_train._Group, "step", watched_step)
    return steps


@pytest.mark.parametrize("cls, votes, group_size, group, at, resumed_from", [
    (scd.SCD01, 2, None, 1, 140, [128]),  # every vote in flight: only mid-vote snapshots exist
    (scd.SCDCEBNN, 3, 1, 2, 100, [64, 0]),  # vote 0 done, vote 1 mid-way, vote 2 not started
])
def test_interrupted_vote_resumes_mid_way_with_the_same_result(tmp_path, monkeypatch, snapshots, cls, votes,
                                                               group_size, group, at, resumed_from):
    ds = load_dataset("digits")
    params = {**PARAMS, "n_votes": votes, "group_size": group_size}
    reference = cls(**params).fit(ds.x_train, ds.y_train)
    ckpt = tmp_path / "fit.ckpt"
    with monkeypatch.context() as patch:
        _watch(patch, group, at)
        with pytest.raises(KeyboardInterrupt):
            cls(**params, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train)
    assert ckpt.exists()

    steps = _watch(monkeypatch)
    resumed = cls(**params, checkpoint=str(ckpt)).fit(ds.x_train, ds.y_train, resume=True)
    assert [s[0] for s in steps] == resumed_from  # where each group of the resumed fit started
    for name in ("W1_", "b1_", "w2_", "b2_", "vote_scores_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name), err_msg=name)


def test_cli_offers_resume_only_when_something_was_saved(tmp_path, monkeypatch, snapshots):
    runner = CliRunner()
    out = tmp_path / "m.scd"
    args = ["train", "--votes", "1", "--iters", "150", "--hidden", "4", "--jobs", "1", "--quiet", "--out", str(out)]
    for at, saved in [(10, False), (70, True)]:  # before and after the first snapshot
        with monkeypatch.context() as patch:
            _watch(patch, 1, at)
            result = runner.invoke(main, args)
        assert result.exit_code == 130
        assert (tmp_path / "m.scd.ckpt").exists() == saved
        assert (f"Resume with: --out {out} --resume" in result.output) == saved
        assert ("Nothing was saved yet" in result.output) != saved
    result = runner.invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert out.exists() and not (tmp_path / "m.scd.ckpt").exists()


def test_snapshots_are_written_at_most_every_few_seconds_and_on_interrupt(tmp_path, monkeypatch, snapshots):
    """Snapshots at 64 and 128: the first is written, the second (within the write interval)
    only when Ctrl-C comes at 140, and the resumed fit starts from it."""
    from scd import _checkpoint

    monkeypatch.setattr(_checkpoint, "SNAPSHOT_SECONDS", 1e9)
    save, writes = _checkpoint.VoteStore.save, []

    def counted_save(self, path, identity):
        writes.append(int(self.state["state_iters"].max()))
        save(self, path, identity)

    monkeypatch.setattr(_checkpoint.VoteStore, "save", counted_save)
    ds = load_dataset("digits")
    params = {**PARAMS, "n_votes": 2, "checkpoint": str(tmp_path / "fit.ckpt")}
    with monkeypatch.context() as patch:
        _watch(patch, 1, 140)
        with pytest.raises(KeyboardInterrupt):
            scd.SCD01(**params).fit(ds.x_train, ds.y_train)
    assert writes == [64, 128]
    steps = _watch(monkeypatch)
    scd.SCD01(**params).fit(ds.x_train, ds.y_train, resume=True)
    assert [s[0] for s in steps] == [128]
