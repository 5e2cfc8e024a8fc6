"""A torch CNN exported to ONNX and loaded through onnxruntime answers exactly as the torch module:
the same labels, and the same HopSkipJump run for the same seed; ``scd attack model.onnx`` works
and saves the examples in the model's input shape."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")  # the exporter needs it; loading needs only onnxruntime
pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402

from attacks import HopSkipJump  # noqa: E402
from cli import main  # noqa: E402
from eval.onnx_model import ONNXModel  # noqa: E402

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small CNN trained on the digits dataset of ``scd attack`` (0 vs 1, images 1x8x8), and its ONNX file."""
    from eval.datasets import load_dataset

    ds = load_dataset("digits")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 2))
    x = torch.from_numpy(ds.x_train.reshape(-1, *SHAPE).astype(np.float32))
    y = torch.from_numpy(ds.y_train.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    path = tmp_path_factory.mktemp("onnx") / "cnn.onnx"
    with warnings.catch_warnings():  # torch's notice that this is its TorchScript-based exporter
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x[:2],), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return net, path, ds


def test_same_labels_and_same_hop_skip_jump_as_the_torch_module(exported):
    net, path, ds = exported
    model = ONNXModel(path)
    assert model.input_shape_ == SHAPE and model.n_features_in_ == 64 and model.classes_.tolist() == [0, 1]
    images = ds.x_test.reshape(-1, *SHAPE).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).argmax(1).numpy()
    np.testing.assert_array_equal(model.predict(ds.x_test), expected)
    assert np.mean(expected == ds.y_test) > 0.8
    x = images[:5]
    attack = HopSkipJump(max_iter=4, init_evals=20, max_evals=100)
    ours = attack(model, x.reshape(5, 64), bounds=(0, 1), seed=3)
    reference = attack(net, x, bounds=(0, 1), seed=3)
    assert ours.success.all()
    np.testing.assert_array_equal(ours.x_adv, reference.x_adv.reshape(5, 64))
    np.testing.assert_array_equal(ours.queries, reference.queries)


def test_scd_attack_takes_an_onnx_file(exported, tmp_path):
    _, path, _ = exported
    runner = CliRunner()
    examples, out = tmp_path / "ex.npz", tmp_path / "r.json"
    result = runner.invoke(main, ["attack", str(path), "--method", "hsj", "--iters", "3", "--n-samples", "3",
                                  "--quiet", "--out", str(out), "--save-examples", str(examples)])
    assert result.exit_code == 0, result.output
    saved = np.load(examples)
    assert saved["x_adv"].shape == (3, *SHAPE) and saved["x"].shape == (3, *SHAPE)
    assert json.loads(out.read_text())["summary"]["n"] == 3
    result = runner.invoke(main, ["attack", str(path), "--method", "pgd", "--quiet"])
    assert result.exit_code == 1 and "--surrogate substitute" in result.output
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    result = runner.invoke(main, ["attack", str(bad), "--quiet"])
    assert result.exit_code == 1 and "not a valid ONNX model" in result.output
