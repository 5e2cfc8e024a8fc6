"""What CUDA runs, checked on the CPU: an iteration of the tensor path never makes the host wait
for the device when every window is found by sorting (batches under 2,048 rows), and vote
groups spread over the GPUs so that none trains two groups while another is free."""

import threading
import time

import numpy as np
import pytest
import torch

from scd import _parallel, _train
from scd._train import TrainConfig, train_votes

_READS = ("item", "tolist", "__bool__", "__int__", "__float__", "nonzero")


@pytest.mark.parametrize("loss, binary_weights", [("01", False), ("ce", True)])
def test_tensor_path_iteration_never_waits_for_the_device(loss, binary_weights, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((300, 20), dtype=np.float32)
    y = (X[:, :5].sum(1) > 2.5).astype(int)
    XT = torch.from_numpy(np.ascontiguousarray(X.T))
    cfg = TrainConfig(loss=loss, binary_weights=binary_weights, hidden_nodes=4, n_iters=12, nrows=0.75,
                      w_inc1=0.17, w_inc2=0.2, updated_features=8, interval=10, b_ratio=0.2)
    reference = train_votes(XT, y, [0, 1], 4, cfg)

    monkeypatch.setattr(_train, "_fused_kernel", lambda device: False)
    watching = []

    def refuse(name):
        real = getattr(torch.Tensor, name)

        def read(*args, **kwargs):
            assert not watching, f"host synchronisation: Tensor.{name}"
            return real(*args, **kwargs)
        return read

    for name in _READS:
        monkeypatch.setattr(torch.Tensor, name, refuse(name))
    real_step = _train._Group.step

    def step(self, it):
        watching[:] = [True] if it > 0 else []  # the first iteration initialises the biases: not checked
        real_step(self, it)
        watching.clear()

    monkeypatch.setattr(_train._Group, "step", step)
    tensor = train_votes(XT, y, [0, 1], 4, cfg)
    for name in reference:  # and the same votes as the fused CPU kernels
        np.testing.assert_array_equal(tensor[name], reference[name], err_msg=name)


def test_each_device_trains_one_group_at_a_time():
    """Six groups of unequal length on two devices with two threads: never two groups on one
    device at once (a fixed assignment by group index would put groups 0, 2, 4 on one)."""
    pool = _parallel._DevicePool(["gpu0", "gpu1"])
    busy, clashes, lock = {"gpu0": 0, "gpu1": 0}, [], threading.Lock()
    used = []

    def task(seconds):
        with pool.take() as device:
            with lock:
                busy[device] += 1
                clashes.append(busy[device] > 1)
                used.append(device)
            time.sleep(seconds)
            with lock:
                busy[device] -= 1

    threads = [threading.Thread(target=task, args=(s,)) for s in (0.05, 0.0, 0.05, 0.0, 0.05, 0.0)]
    for t in threads:  # more tasks than devices: the others wait for a free one
        t.start()
    for t in threads:
        t.join()
    assert not any(clashes) and set(used) == {"gpu0", "gpu1"} and len(used) == 6
