"""The neural baselines (CNNEnsemble in torch, BNNEnsemble in larq) are reproducible
scikit-learn classifiers with safe persistence and input gradients for attacks."""

import copy
import io
import json
import sys
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from eval.baselines.cnn import CNNEnsemble, _architecture, _ConvNet
from eval.baselines.cnn import load as load_cnn
from tests.paths import ROOT

CNN_SMALL = dict(n_votes=3, epochs=10, batch_size=32, random_state=0, device="cpu")
BNN_SMALL = dict(n_votes=3, epochs=20, random_state=0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Keep torch on one core (the test machines have two, often busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cnn(digits):
    # shared: do not mutate
    return CNNEnsemble(**CNN_SMALL).fit(digits.x_train, digits.y_train)


@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("larq")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already running in this process
        pass
    return tf


@pytest.fixture(scope="module")
def bnn(tf, digits):
    from eval.baselines.bnn import BNNEnsemble

    # shared: do not mutate
    return BNNEnsemble(**BNN_SMALL).fit(digits.x_train, digits.y_train)


# --------------------------------------------------------------------------- CNN
@parametrize_with_checks([CNNEnsemble(n_votes=1, epochs=10, batch_size=32, random_state=0, device="cpu")])
def test_cnn_sklearn_compatible(estimator, check):
    check(estimator)


def test_importing_bnn_module_does_not_import_tensorflow():
    import subprocess

    code = "import eval.baselines.bnn, sys; assert 'tensorflow' not in sys.modules and 'larq' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "shape", [(32, 32, 3), (28, 28, 1), (8, 8, 1), (187,), (3,), (1,), (5, 7), (4, 4, 2)]
)
def test_cnn_architecture_maps_flat_input_to_two_logits(shape):
    arch = _architecture(shape)
    assert json.loads(json.dumps(arch)) == arch  # stored as JSON metadata
    out = _ConvNet(arch)(torch.zeros(3, int(np.prod(shape))))
    assert out.shape == (3, 2)


def test_cnn_infers_input_shape(digits):
    est = CNNEnsemble(**{**CNN_SMALL, "n_votes": 1, "epochs": 1}).fit(digits.x_train, digits.y_train)
    assert est.input_shape_ == (8, 8, 1)
    for d, shape in [(3072, (32, 32, 3)), (784, (28, 28, 1)), (187, (187,))]:
        X = np.random.default_rng(0).random((4, d), dtype=np.float32)
        est = CNNEnsemble(n_votes=1, epochs=1, device="cpu", random_state=0).fit(X, [0, 1, 0, 1])
        assert est.input_shape_ == shape and est.predict(X).shape == (4,)


def test_cnn_hwc_layout(digits):
    # an HWC image flattened as x.reshape(n, -1) is read back as the same image
    img = np.arange(2 * 4 * 3 * 2, dtype=np.float32).reshape(2, 4, 3, 2)
    net = _ConvNet(_architecture((4, 3, 2)))
    seen = {}
    net.features.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    net(torch.from_numpy(img.reshape(2, -1)))
    assert torch.equal(seen["x"], torch.from_numpy(img).permute(0, 3, 1, 2))


def test_cnn_learns_digits(cnn, digits):
    # 89 test points; chance 0.5, a linear model about 0.9
    assert cnn.score(digits.x_test, digits.y_test) >= 0.85
    proba = cnn.predict_proba(digits.x_test)
    assert proba.shape == (89, 2) and np.allclose(proba.sum(1), 1)
    members = np.stack([cnn.predict_proba(digits.x_test, member=i)[:, 1] for i in range(3)])
    np.testing.assert_allclose(proba[:, 1], members.mean(0))
    single = cnn.member(1)
    assert single.n_votes == 1
    assert np.array_equal(single.predict_proba(digits.x_test), cnn.predict_proba(digits.x_test, member=1))
    hard = clone(cnn).set_params(voting="hard")
    hard.__dict__.update({k: v for k, v in cnn.__dict__.items() if k.endswith("_")})
    votes = (members > 0.5).mean(0)
    assert np.array_equal(hard.predict_proba(digits.x_test)[:, 1], votes)
    assert np.array_equal(hard.predict(digits.x_test), (votes > 0.5).astype(int))  # 2 of 3 needed


def test_cnn_same_seed_same_weights_other_seed_differs(cnn, digits):
    again = CNNEnsemble(**CNN_SMALL).fit(digits.x_train, digits.y_train)
    for a, b in zip(cnn.members_, again.members_):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    assert np.array_equal(cnn.predict_proba(digits.x_test), again.predict_proba(digits.x_test))
    other = CNNEnsemble(**{**CNN_SMALL, "random_state": 1}).fit(digits.x_train, digits.y_train)
    assert not np.array_equal(cnn.predict_proba(digits.x_test), other.predict_proba(digits.x_test))
    # members of one ensemble differ from each other
    assert not torch.equal(cnn.members_[0].classifier[-1].weight, cnn.members_[1].classifier[-1].weight)


def test_cnn_save_load_round_trip(cnn, digits, tmp_path):
    path = tmp_path / "cnn.scd"
    cnn.save(path)
    again = load_cnn(path)
    assert [p.name for p in tmp_path.iterdir()] == ["cnn.scd"]  # no temporary file left
    assert again.get_params() == cnn.get_params() and again.architecture_ == cnn.architecture_
    assert np.array_equal(again.predict_proba(digits.x_test), cnn.predict_proba(digits.x_test))
    assert np.array_equal(again.predict(digits.x_test, member=2), cnn.predict(digits.x_test, member=2))
    assert np.array_equal(CNNEnsemble.load(path).logits(digits.x_test), cnn.logits(digits.x_test))


def test_cnn_string_labels_round_trip(digits, tmp_path):
    y = np.where(digits.y_train == 1, "eight", "one")
    est = CNNEnsemble(**{**CNN_SMALL, "n_votes": 1, "epochs": 2}).fit(digits.x_train, y.astype(object))
    est.save(tmp_path / "m.scd")
    again = load_cnn(tmp_path / "m.scd")
    assert np.array_equal(again.predict(digits.x_test), est.predict(digits.x_test))
    assert set(again.predict(digits.x_test)) <= {"eight", "one"}


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_cnn_malicious_and_corrupt_files_raise(cnn, tmp_path):
    path = tmp_path / "cnn.scd"
    cnn.save(path)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    np.save(payload, np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
    weight = next(n for n in entries if n.endswith("weight.npy"))
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, payload.getvalue() if n == weight else data)
    with pytest.raises(ValueError):
        load_cnn(path)
    assert not marker.exists()
    # architecture in the metadata that does not fit the weights
    meta = json.loads(entries["metadata.json"])
    meta["architecture"]["hidden"] = [7]
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, json.dumps(meta) if n == "metadata.json" else data)
    with pytest.raises(ValueError, match="corrupt"):
        load_cnn(path)
    # an architecture the code would not build, e.g. a huge layer: refused before allocating it
    meta = json.loads(entries["metadata.json"])
    meta["architecture"]["convs"][0][0] = 10**9
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, json.dumps(meta) if n == "metadata.json" else data)
    with pytest.raises(ValueError, match="architecture is not the one built"):
        load_cnn(path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cnn(path)
    with pytest.raises(FileNotFoundError):
        load_cnn(tmp_path / "missing.scd")


def test_cnn_logits_gradient_is_the_chain_rule_of_the_loss_gradient(cnn, digits):
    x, y = digits.x_test[:6], digits.y_test[:6]
    weights = torch.softmax(torch.from_numpy(cnn.logits(x)), 1).numpy() - np.eye(2)[y]
    np.testing.assert_allclose(cnn.logits_gradient(x, weights), cnn.loss_gradient(x, y), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        cnn.logits_gradient(x, weights[:3])


@pytest.mark.parametrize("member", [None, 1])
def test_cnn_loss_gradient_matches_autograd_and_finite_differences(cnn, digits, member):
    x, y = digits.x_test[:6], digits.y_test[:6]
    grad = cnn.loss_gradient(x, y, member=member)
    assert grad.shape == x.shape and grad.dtype == np.float32
    # independent autograd path: mean of member softmaxes, written out here
    members = cnn.members_ if member is None else [cnn.members_[member]]
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    p = torch.stack([torch.softmax(m(xt), 1) for m in members]).mean(0)
    loss = -torch.log(p[torch.arange(6), torch.from_numpy(y)]).sum()
    (ref,) = torch.autograd.grad(loss, xt)
    np.testing.assert_allclose(grad, ref.numpy(), rtol=1e-4, atol=1e-6)
    # finite differences in float64 on a few coordinates of sample 0
    module = copy.deepcopy(cnn.torch_module(member)).double()
    x64 = torch.from_numpy(x[:1].astype(np.float64))

    def f(z):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(module(z), torch.from_numpy(y[:1])).item()

    eps = 1e-6
    for j in np.argsort(-np.abs(grad[0]))[:5]:
        e = torch.zeros_like(x64)
        e[0, j] = eps
        fd = (f(x64 + e) - f(x64 - e)) / (2 * eps)
        assert fd == pytest.approx(float(grad[0, j]), rel=1e-3, abs=1e-5)
    # softmax of the ensemble module is the soft vote
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(cnn.logits(x, member=member)), 1).numpy()[:, 1],
        cnn.predict_proba(x, member=member)[:, 1], rtol=1e-5)


def test_cnn_bad_input_raises(cnn, digits):
    with pytest.raises(ValueError, match="3 classes"):
        CNNEnsemble(**CNN_SMALL).fit(digits.x_train[:9], np.arange(9) % 3)
    with pytest.raises(ValueError, match="only one class"):
        CNNEnsemble(**CNN_SMALL).fit(digits.x_train[:9], np.zeros(9))
    with pytest.raises(ValueError, match="input_shape"):
        CNNEnsemble(**{**CNN_SMALL, "input_shape": (7, 7)}).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="features"):
        cnn.predict(digits.x_test[:, :10])
    with pytest.raises(ValueError):
        cnn.predict(np.full((2, 64), np.nan, np.float32))
    with pytest.raises(ValueError, match="member"):
        cnn.predict(digits.x_test, member=3)
    with pytest.raises(ValueError, match="members must be"):
        cnn.member(-1)
    with pytest.raises(ValueError, match="not in classes_"):
        cnn.loss_gradient(digits.x_test[:2], [0, 5])
    with pytest.raises(ValueError):
        CNNEnsemble(n_votes=0).fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError):
        CNNEnsemble(device="tpu").fit(digits.x_train, digits.y_train)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cnn_gpu_model_loads_on_cpu(digits, tmp_path):
    gpu = CNNEnsemble(**{**CNN_SMALL, "device": "cuda"}).fit(digits.x_train, digits.y_train)
    assert gpu.loss_gradient(digits.x_test[:3], digits.y_test[:3]).shape == (3, 64)
    gpu.save(tmp_path / "g.scd")
    cpu = load_cnn(tmp_path / "g.scd", device="cpu")
    np.testing.assert_allclose(cpu.predict_proba(digits.x_test), gpu.predict_proba(digits.x_test), atol=1e-5)


# --------------------------------------------------------------------------- BNN
def _bnn_checks():
    # 1 vote keeps the ~40 checks at about 20 s; lr 0.01 so that check_classifiers_train's
    # 200 blobs reach its 0.83 accuracy in 20 epochs
    from eval.baselines.bnn import BNNEnsemble  # no TensorFlow import yet

    return [BNNEnsemble(n_votes=1, epochs=20, batch_size=32, learning_rate=0.01, random_state=0)]


@parametrize_with_checks(_bnn_checks())
def test_bnn_sklearn_compatible(estimator, check, tf):
    check(estimator)


def test_bnn_learns_digits_and_votes_like_the_reference(bnn, digits):
    assert bnn.score(digits.x_test, digits.y_test) >= 0.85
    argmax = np.stack([bnn.predict(digits.x_test, member=i) for i in range(3)])
    assert np.array_equal(bnn.predict_proba(digits.x_test)[:, 1], argmax.mean(0))
    assert np.array_equal(bnn.predict(digits.x_test), (argmax.mean(0) > 0.5).astype(int))
    single = bnn.member(2)
    assert np.array_equal(single.predict_proba(digits.x_test), bnn.predict_proba(digits.x_test, member=2))
    soft = clone(bnn).set_params(voting="soft")
    soft.__dict__.update({k: v for k, v in bnn.__dict__.items() if k.endswith("_")})
    probs = np.stack([m(digits.x_test).numpy()[:, 1] for m in bnn.members_]).astype(np.float64)
    np.testing.assert_allclose(soft.predict_proba(digits.x_test)[:, 1], probs.mean(0))


def test_bnn_architecture_is_the_reference(bnn):
    model = bnn.members_[0]
    dense1, bn, dense2, act = model.layers
    assert dense1.units == 20 and dense1.use_bias and dense1.input_quantizer is None
    assert bn.momentum == 0.9 and not bn.scale
    assert dense2.units == 2 and not dense2.use_bias
    assert type(dense2.input_quantizer).__name__ == "ApproxSign"
    assert act.get_config()["activation"] == "softmax"


def test_bnn_tie_goes_to_first_class(bnn, digits):
    two = clone(bnn).set_params(n_votes=2)
    two.__dict__.update({k: v for k, v in bnn.__dict__.items() if k.endswith("_")})
    two.members_ = bnn.members_[:2]
    a, b = (bnn.predict(digits.x_test, member=i) for i in range(2))
    tie = a != b
    assert tie.any()
    assert np.all(two.predict(digits.x_test)[tie] == 0)


def test_bnn_same_seed_same_weights(bnn, digits):
    from eval.baselines.bnn import BNNEnsemble

    again = BNNEnsemble(**BNN_SMALL).fit(digits.x_train, digits.y_train)
    for a, b in zip(bnn.members_, again.members_):
        for x, y in zip(a.get_weights(), b.get_weights()):
            assert np.array_equal(x, y)
    other = BNNEnsemble(**{**BNN_SMALL, "n_votes": 1, "random_state": 1}).fit(digits.x_train, digits.y_train)
    assert not np.array_equal(other.members_[0].get_weights()[0], bnn.members_[0].get_weights()[0])


@pytest.mark.parametrize("quantizer", ["ste_sign", "swish_sign"])
def test_bnn_other_quantizers_and_weight_clip(tf, digits, quantizer):
    from eval.baselines.bnn import BNNEnsemble

    # a huge learning rate pushes latent weights out of [-1, 1] unless weight_clip acts
    est = BNNEnsemble(n_votes=1, epochs=2, learning_rate=5.0, input_quantizer=quantizer, random_state=0)
    est.fit(digits.x_train, digits.y_train)
    dense2 = est.members_[0].layers[2]
    assert type(dense2.input_quantizer).__name__.lower() == quantizer.replace("_", "")
    for layer in (est.members_[0].layers[0], dense2):
        assert np.abs(layer.kernel.numpy()).max() <= 1.0


def test_bnn_save_load_round_trip(bnn, digits, tmp_path):
    from eval.baselines.bnn import BNNEnsemble, load

    path = tmp_path / "bnn.zip"
    bnn.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["bnn.zip"]
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["classes.npy", "manifest.json"] + [f"member_{v:03d}.keras" for v in range(3)]
    again = load(path)
    assert again.get_params() == bnn.get_params()
    assert np.array_equal(again.predict_proba(digits.x_test), bnn.predict_proba(digits.x_test))
    assert np.array_equal(BNNEnsemble.load(path).logits(digits.x_test, member=1), bnn.logits(digits.x_test, member=1))


def test_bnn_malicious_and_corrupt_files_raise(tf, bnn, tmp_path, monkeypatch):
    from eval.baselines.bnn import load

    path = tmp_path / "bnn.zip"
    bnn.save(path)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}

    def rewrite(name, data):
        with zipfile.ZipFile(path, "w") as zf:
            for n, d in entries.items():
                zf.writestr(n, data if n == name else d)

    # a member whose Lambda layer would run code when deserialized
    marker = tmp_path / "pwned"
    evil = tf.keras.Sequential([
        tf.keras.Input((64,)),
        tf.keras.layers.Lambda(lambda x, p=str(marker): (open(p, "w").close(), x)[1]),
    ])
    marker.unlink(missing_ok=True)  # building the model ran it once, here
    evil.save(tmp_path / "evil.keras")
    rewrite("member_000.keras", (tmp_path / "evil.keras").read_bytes())
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load(path)
    assert not marker.exists()
    # a config naming a module: Keras 2.15 would import it (running its code) even in safe mode
    (tmp_path / "scd_evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with zipfile.ZipFile(io.BytesIO(entries["member_000.keras"])) as zf:
        inner = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(inner["config.json"])
    config["module"] = "scd_evil_module"
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as zf:
        for n, d in inner.items():
            zf.writestr(n, json.dumps(config) if n == "config.json" else d)
    rewrite("member_000.keras", blob.getvalue())
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load(path)
    assert not marker.exists() and "scd_evil_module" not in sys.modules
    # a harmless model of the wrong structure
    other = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(2, activation="softmax")])
    other.save(tmp_path / "other.keras")
    rewrite("member_001.keras", (tmp_path / "other.keras").read_bytes())
    with pytest.raises(ValueError, match="not a BNN member"):
        load(path)
    rewrite("manifest.json", b"{not json")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.zip")


def test_bnn_loss_gradient_and_logits(tf, bnn, digits):
    x, y = digits.x_test[:10], digits.y_test[:10]
    for member in (None, 0):
        grad = bnn.loss_gradient(x, y, member=member)
        assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0
    # one-hot targets give the same gradient
    np.testing.assert_array_equal(bnn.loss_gradient(x, np.eye(2)[y]), bnn.loss_gradient(x, y))
    z = bnn.logits(x, member=0)
    np.testing.assert_allclose(tf.nn.softmax(z).numpy(), bnn.members_[0](x).numpy(), rtol=1e-5, atol=1e-7)
    soft = np.stack([m(x).numpy() for m in bnn.members_]).mean(0)
    np.testing.assert_allclose(tf.nn.softmax(bnn.logits(x)).numpy(), soft, rtol=1e-5, atol=1e-7)


def test_bnn_logits_gradient_is_the_chain_rule_of_the_loss_gradient(tf, bnn, digits):
    """sum_c (softmax(z) - onehot(y))_c grad z_c is the cross-entropy gradient: EAD's margin
    gradient and the loss gradient come from the same straight-through backward pass."""
    x, y = digits.x_test[:8], digits.y_test[:8]
    weights = tf.nn.softmax(bnn.logits(x)).numpy() - np.eye(2)[y]
    np.testing.assert_allclose(bnn.logits_gradient(x, weights), bnn.loss_gradient(x, y), rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        bnn.logits_gradient(x, weights[:, :1])


def test_bnn_bad_input_raises(tf, bnn, digits):
    from eval.baselines.bnn import BNNEnsemble

    with pytest.raises(ValueError, match="3 classes"):
        BNNEnsemble(**BNN_SMALL).fit(digits.x_train[:9], np.arange(9) % 3)
    with pytest.raises(ValueError, match="only one class"):
        BNNEnsemble(**BNN_SMALL).fit(digits.x_train[:9], np.zeros(9))
    with pytest.raises(ValueError):
        BNNEnsemble(input_quantizer="sign").fit(digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="features"):
        bnn.predict(digits.x_test[:, :10])
    with pytest.raises(ValueError):
        bnn.predict_proba(np.full((2, 64), np.inf, np.float32))
    with pytest.raises(ValueError, match="member"):
        bnn.logits(digits.x_test, member=7)
    with pytest.raises(ValueError, match="shape"):
        bnn.loss_gradient(digits.x_test[:3], digits.y_test[:2])


def _bnn_weight_files(h5py, secret, fifo):
    """``model.weights.h5`` files that name other files, hide links or declare gigabytes."""

    def h5(build):
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            build(f)
        return buf.getvalue()

    def virtual(f):
        layout = h5py.VirtualLayout(shape=(10,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret), "data", shape=(10,))
        f.create_virtual_dataset("layers/quant_dense/vars/0", layout)

    return {
        "external storage": h5(lambda f: f.create_dataset("layers/quant_dense/vars/0", shape=(10,), dtype="f4",
                                                          external=[(str(secret), 0, 40)])),
        "external storage on a FIFO": h5(lambda f: f.create_dataset("layers/x", shape=(10,), dtype="f4",
                                                                    external=[(str(fifo), 0, 40)])),
        "external link": h5(lambda f: f.__setitem__("layers", h5py.ExternalLink(str(secret), "/"))),
        "soft link": h5(lambda f: (f.create_group("a"), f.__setitem__("layers", h5py.SoftLink("/a")))),
        "virtual dataset": h5(virtual),
        "declares 40 GB": h5(lambda f: f.create_dataset("layers/big", shape=(10**5, 10**5), dtype="f4")),
        "not hdf5": b"not an hdf5 file",
    }


def test_bnn_crafted_weights_and_manifests_are_refused_before_keras_reads_them(tf, bnn, tmp_path):
    """Issue 32: a weights file copying a local file of the crafter's choosing (or hanging on a
    FIFO) is refused by inspecting it with h5py; manifests that are not the schema too."""
    import os

    import h5py

    from eval.baselines.bnn import load

    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.arange(10, dtype="f4")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = tmp_path / "bnn.scd"
    bnn.save(path)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(io.BytesIO(entries["member_000.keras"])) as zf:
        inner = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(entries["manifest.json"])

    def write(outer):
        with zipfile.ZipFile(path, "w") as zf:
            for n, d in outer.items():
                zf.writestr(n, d)

    def member(weights):
        blob = io.BytesIO()
        with zipfile.ZipFile(blob, "w") as zf:
            for n, d in inner.items():
                if weights is not None or n != "model.weights.h5":
                    zf.writestr(n, weights if n == "model.weights.h5" else d)
        return blob.getvalue()

    bad_members = {**_bnn_weight_files(h5py, secret, fifo), "no weights file": None}
    nan = bnn.members_[0].get_weights()
    nan[0][0, 0] = np.nan
    clone_ = tf.keras.models.clone_model(bnn.members_[0])
    clone_.set_weights(nan)
    clone_.save(tmp_path / "nan.keras")
    cases = {f"member: {k}": {**entries, "member_000.keras": member(v)} for k, v in bad_members.items()}
    cases["member: NaN weights"] = {**entries, "member_000.keras": (tmp_path / "nan.keras").read_bytes()}
    for label, value in [("a list", [manifest]), ("without members", {k: v for k, v in manifest.items()
                                                                     if k != "members"}),
                         ("members not a list", {**manifest, "members": "member_000.keras"}),
                         ("one member too many", {**manifest, "members": manifest["members"] + ["x"]}),
                         ("without seed", {k: v for k, v in manifest.items() if k != "seed"}),
                         ("n_votes 1e9", {**manifest, "params": {**manifest["params"], "n_votes": 10**9}})]:
        cases[f"manifest {label}"] = {**entries, "manifest.json": json.dumps(value).encode()}
    for label, outer in cases.items():
        write(outer)
        with pytest.raises(ValueError) as info:
            load(path)
        assert "bnn.scd" in str(info.value), label
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bnn.scd", "fifo", "nan.keras", "secret.h5"]
