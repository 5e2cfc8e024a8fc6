"""Tests for eval.datasets and eval.io (offline; the only network use is loopback)."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import pickle
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from eval import datasets
from eval.datasets import DATASETS, REGISTRY, Dataset, cifar, load_dataset
from eval.datasets._common import download_file
from eval.io import atomic_open, atomic_write_bytes, default_data_dir
from tests.paths import ROOT, SHARED_DATA

CIFAR_NPZ = SHARED_DATA / "cifar10_01.npz"
MNIST_NPZ = SHARED_DATA / "mnist.npz"
BATCH_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
PER_BATCH = 20
IDX_NAMES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _check_common(ds: Dataset) -> None:
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and x.ndim == 2
        assert x.shape[1] == int(np.prod(ds.input_shape))
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y).tolist()) == {0, 1}


# ------------------------------------------------------------------------- digits


def test_digits_default_pair_shapes_and_determinism():
    ds = load_dataset("digits")
    _check_common(ds)
    target = load_digits().target
    n = int(np.isin(target, ds.classes).sum())
    assert ds.classes == datasets.DIGITS_CLASSES and ds.input_shape == (8, 8)
    assert len(ds.x_train) + len(ds.x_test) == n and len(ds.x_test) == int(np.ceil(0.25 * n))
    assert ds.source == "sklearn"
    again = load_dataset("digits")
    assert np.array_equal(ds.x_train, again.x_train) and np.array_equal(ds.y_test, again.y_test)
    other = load_dataset("digits", random_state=1)
    assert not np.array_equal(ds.y_train, other.y_train)


def test_digits_label_one_is_second_class():
    ds = load_dataset("digits", classes=(8, 1))
    bunch = load_digits()
    ones = (bunch.data[bunch.target == 1] / 16).astype(np.float32)
    rows = ds.x_train[ds.y_train == 1]
    assert (rows[:, None, :] == ones[None]).all(axis=2).any(axis=1).all()
    assert ds.classes == (8, 1)


@pytest.mark.parametrize("classes", [(1, 1), (1,), (1, 2, 2), ("a", "b"), "some", (1, 10)])
def test_bad_classes(classes):
    with pytest.raises(ValueError):
        load_dataset("digits", classes=classes)


def test_digits_several_and_all_classes():
    """Label i is class classes[i], in the order given; "all" keeps the ten digits, sorted,
    with the labels scikit-learn's digits have."""
    bunch = load_digits()
    ds = load_dataset("digits", classes=(7, 0, 3))
    assert ds.classes == (7, 0, 3) and set(ds.y_train.tolist()) == {0, 1, 2}
    sevens = (bunch.data[bunch.target == 7] / 16).astype(np.float32)
    assert (ds.x_train[ds.y_train == 0][:, None, :] == sevens[None]).all(axis=2).any(axis=1).all()
    everything = load_dataset("digits", classes="all")
    assert everything.classes == tuple(range(10))
    assert len(everything.x_train) + len(everything.x_test) == len(bunch.target)
    assert np.bincount(np.concatenate([everything.y_train, everything.y_test])).tolist() == \
        np.bincount(bunch.target).tolist()


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="digits.*cifar10.*csv"):
        load_dataset("imagenet")


# ----------------------------------------------------------------- shared files


@pytest.mark.skipif(not CIFAR_NPZ.is_file(), reason=f"shared data file {CIFAR_NPZ} absent")
def test_cifar10_shared_npz():
    ds = load_dataset("cifar10", data_dir=SHARED_DATA, download=False)
    _check_common(ds)
    assert ds.x_train.shape == (10000, 3072) and ds.x_test.shape == (2000, 3072)
    assert np.bincount(ds.y_train).tolist() == [5000, 5000]
    assert np.bincount(ds.y_test).tolist() == [1000, 1000]
    assert ds.input_shape == (32, 32, 3) and ds.source == str(CIFAR_NPZ)


@pytest.mark.skipif(not MNIST_NPZ.is_file(), reason=f"shared data file {MNIST_NPZ} absent")
def test_mnist_shared_npz():
    ds = load_dataset("mnist", data_dir=SHARED_DATA)
    _check_common(ds)
    with np.load(MNIST_NPZ) as raw:
        y_train, y_test = raw["y_train"], raw["y_test"]
    assert len(ds.y_train) == np.isin(y_train, ds.classes).sum()
    assert len(ds.y_test) == np.isin(y_test, ds.classes).sum()
    assert ds.x_train.shape[1] == 784 and ds.input_shape == (28, 28)


# ------------------------------------------------------------------------- MNIST


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fake_mnist(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        "y_train": np.arange(60, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_test": np.arange(30, dtype=np.uint8) % 10,
    }


def test_mnist_idx_equals_npz(tmp_path):
    arrays = _fake_mnist()
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "mnist.npz", **arrays)
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    for key, name in IDX_NAMES.items():
        data = _idx_bytes(arrays[key])
        if key.startswith("x"):
            (idx_dir / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (idx_dir / name).write_bytes(data)
    from_npz = load_dataset("mnist", data_dir=tmp_path / "npz", classes=(4, 9))
    from_idx = load_dataset("mnist", data_dir=idx_dir, classes=(4, 9))
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(from_npz, attr), getattr(from_idx, attr))
    expected = arrays["x_train"][np.isin(arrays["y_train"], (4, 9))].reshape(-1, 784) / 255
    assert np.allclose(from_idx.x_train, expected)
    assert from_idx.y_train.tolist() == [0, 1] * 6


@pytest.mark.parametrize("corrupt", ["magic", "size"])
def test_mnist_bad_idx(tmp_path, corrupt):
    arrays = _fake_mnist()
    for key, name in IDX_NAMES.items():
        (tmp_path / name).write_bytes(_idx_bytes(arrays[key]))
    data = bytearray((tmp_path / IDX_NAMES["x_train"]).read_bytes())
    if corrupt == "magic":
        data[2] = 0x0D
    else:
        del data[-1]
    (tmp_path / IDX_NAMES["x_train"]).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="idx"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        load_dataset("mnist", data_dir=tmp_path)


# ---------------------------------------------------------- CIFAR-10 batches


def _fake_batches(seed: int = 0) -> dict[str, dict]:
    """Official-layout batch dicts: CHW uint8 rows, labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    return {
        name: {
            b"batch_label": name.encode(),
            b"labels": [i % 10 for i in range(PER_BATCH)],
            b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(PER_BATCH)],
        }
        for name in BATCH_NAMES
    }


def _write_batch_dir(root: Path, batches: dict[str, dict]) -> Path:
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    for name, batch in batches.items():
        with open(directory / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return directory


def _write_tarball(root: Path, batch_dir: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tarball = root / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(batch_dir, arcname="cifar-10-batches-py")
    return tarball


def _py2_batch(labels: list[int], data: np.ndarray) -> bytes:
    """A batch as Python 2's cPickle wrote the official files (BINSTRING payload)."""
    def short(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    raw = data.tobytes()
    return b"".join([
        b"\x80\x02}(", short(b"data"),
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85", short(b"b"),
        b"\x87R(K\x01M", struct.pack("<H", len(labels)), b"M", struct.pack("<H", 3072),
        b"\x86cnumpy\ndtype\n", short(b"u1"), b"K\x00K\x01\x87R(K\x03", short(b"|"),
        b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbK\x00T", struct.pack("<I", len(raw)), raw,
        b"tb", short(b"labels"), b"](", b"".join(b"K" + bytes([v]) for v in labels), b"e",
        short(b"batch_label"), short(b"x"), b"u.",
    ])


def _expected_train(batches: dict[str, dict], classes: tuple[int, int]) -> np.ndarray:
    train = [batches[name] for name in BATCH_NAMES[:5]]
    return np.concatenate([b[b"data"][np.isin(b[b"labels"], classes)] for b in train])


def test_cifar_batches_dir_and_tar_agree(tmp_path):
    batches = _fake_batches()
    batch_dir = _write_batch_dir(tmp_path / "dir", batches)
    _write_tarball(tmp_path / "tar", batch_dir)
    from_dir = load_dataset("cifar10", data_dir=tmp_path / "dir", download=False)
    from_tar = load_dataset("cifar10", data_dir=tmp_path / "tar", download=False)
    _check_common(from_dir)
    assert from_dir.source.endswith("cifar-10-batches-py")
    assert from_tar.source.endswith("cifar-10-python.tar.gz")
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(from_dir, attr), getattr(from_tar, attr))
    assert from_dir.x_train.shape == (5 * 4, 3072) and from_dir.x_test.shape == (4, 3072)
    assert from_dir.y_train.tolist() == [0, 1, 0, 1] * 5


def test_cifar_hwc_transpose(tmp_path):
    batches = _fake_batches(seed=1)
    _write_batch_dir(tmp_path, batches)
    ds = load_dataset("cifar10", classes=(0, 1), data_dir=tmp_path, download=False)
    chw = _expected_train(batches, (0, 1))
    row, h, w, c = 7, 5, 30, 2
    pixel = chw[row, c * 1024 + h * 32 + w]
    assert ds.x_train[row, (h * 32 + w) * 3 + c] == np.float32(pixel) / np.float32(255)
    hwc = chw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(chw), -1)
    assert np.array_equal(ds.x_train, hwc.astype(np.float32) / 255)


@pytest.mark.skipif(not CIFAR_NPZ.is_file(), reason=f"shared data file {CIFAR_NPZ} absent")
def test_cifar_npz_and_batches_give_same_layout(tmp_path):
    with np.load(CIFAR_NPZ) as raw:
        x_hwc, labels = raw["x_test"][:PER_BATCH], raw["y_test"][:PER_BATCH]
    chw = x_hwc.transpose(0, 3, 1, 2).reshape(PER_BATCH, 3072)
    batches = _fake_batches()
    batches["test_batch"][b"data"], batches["test_batch"][b"labels"] = chw, labels.tolist()
    _write_batch_dir(tmp_path, batches)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    from_npz = load_dataset("cifar10", data_dir=SHARED_DATA, download=False)
    assert np.array_equal(ds.x_test, from_npz.x_test[:PER_BATCH])


def test_cifar_npz_without_requested_classes_falls_through(tmp_path):
    np.savez(tmp_path / "cifar10_01.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8),
             y_train=np.array([0, 1]), x_test=np.zeros((2, 32, 32, 3), np.uint8),
             y_test=np.array([0, 1]))
    _write_batch_dir(tmp_path, _fake_batches())
    ds = load_dataset("cifar10", classes=(3, 8), data_dir=tmp_path, download=False)
    assert ds.source.endswith("cifar-10-batches-py") and ds.classes == (3, 8)


def test_python2_batch_parses():
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, (7, 3072), dtype=np.uint8)
    labels = [3, 1, 4, 1, 5, 9, 2]
    images, parsed = cifar._parse_cifar_batch(_py2_batch(labels, data), "py2")
    assert parsed.tolist() == labels
    assert np.array_equal(images.transpose(0, 3, 1, 2).reshape(7, 3072), data)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_batch_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    batches = _fake_batches()
    batches["data_batch_1"][b"data"] = _Evil(marker)
    _write_batch_dir(tmp_path, batches)
    with pytest.raises(ValueError, match="corrupt or unexpected CIFAR-10 batch file"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"not a pickle",
    pickle.dumps({b"labels": [0, 1], b"data": np.zeros((3, 3072), np.uint8)}, protocol=2),
    pickle.dumps({b"labels": [0], b"data": np.zeros((1, 3072), np.float32)}, protocol=2),
    pickle.dumps([1, 2, 3], protocol=2),
])
def test_unexpected_batch_rejected(payload):
    with pytest.raises(ValueError, match="corrupt or unexpected CIFAR-10 batch file"):
        cifar._parse_cifar_batch(payload, "x")


# --------------------------------------------------------------- CIFAR download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


@pytest.fixture
def no_proxy(monkeypatch):
    """Make urllib connect to 127.0.0.1 directly, never through a configured proxy."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def served_tarball(tmp_path, no_proxy):
    """Serve a small cifar-10-python.tar.gz over loopback HTTP; yield (url, md5)."""
    batch_dir = _write_batch_dir(tmp_path / "build", _fake_batches())
    tarball = _write_tarball(tmp_path / "www", batch_dir)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{tarball.name}"
        yield url, hashlib.md5(tarball.read_bytes()).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_then_load(tmp_path, served_tarball, monkeypatch):
    url, md5 = served_tarball
    data_dir = tmp_path / "data"
    download_file(url, data_dir / "cifar-10-python.tar.gz", md5, "md5")
    ds = load_dataset("cifar10", data_dir=data_dir, download=False)
    assert ds.x_train.shape == (20, 3072)
    monkeypatch.setattr(cifar, "CIFAR10_URL", url)
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5)
    fresh = load_dataset("cifar10", data_dir=tmp_path / "fresh", download=True)
    assert np.array_equal(fresh.x_train, ds.x_train)
    assert (tmp_path / "fresh" / "cifar-10-python.tar.gz").is_file()


def test_download_checksum_mismatch_leaves_nothing(tmp_path, served_tarball):
    url, _md5 = served_tarball
    data_dir = tmp_path / "data"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_file(url, data_dir / "cifar-10-python.tar.gz", "0" * 32, "md5")
    assert list(data_dir.iterdir()) == []


def test_download_failure_is_file_not_found(tmp_path, monkeypatch, no_proxy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(cifar, "CIFAR10_URL", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar10", data_dir=tmp_path, download=True)
    message = str(info.value)
    for part in ("cifar10_01.npz", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                 str(tmp_path), "SCD_DATA_DIR", "--data-dir", "Download failed"):
        assert part in message
    assert list(tmp_path.iterdir()) == []


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------- ECG


def _write_ecg(directory: Path, n_normal: int = 40, n_abnormal: int = 60) -> None:
    rng = np.random.default_rng(3)
    files = (("ptbdb_normal.csv", 0, n_normal), ("ptbdb_abnormal.csv", 1, n_abnormal))
    for name, label, n in files:
        table = np.column_stack([rng.random((n, 187)).astype(np.float32), np.full(n, label)])
        np.savetxt(directory / name, table, fmt="%.18e", delimiter=",")


def test_ecg(tmp_path):
    _write_ecg(tmp_path)
    ds = load_dataset("ecg", data_dir=tmp_path)
    _check_common(ds)
    assert ds.input_shape == (187,) and ds.classes == (0, 1)
    assert ds.x_train.shape == (75, 187) and ds.x_test.shape == (25, 187)
    assert np.bincount(ds.y_test).tolist() == [10, 15]


def test_ecg_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="ptbdb_normal.csv") as info:
        load_dataset("ecg", data_dir=tmp_path)
    assert "ptbdb_abnormal.csv" in str(info.value) and "heartbeat" in str(info.value)


# ------------------------------------------------------------------ user files


def test_npz_xy_is_split_and_scaled(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (80, 4, 5)).astype(np.float64) - 100
    y = np.repeat([2, 7], 40)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset("npz", path=tmp_path / "d.npz")
    _check_common(ds)
    assert ds.classes == (2, 7) and ds.input_shape == (4, 5)
    assert ds.x_train.shape == (60, 20) and ds.x_test.shape == (20, 20)
    assert np.allclose(ds.x_train.min(axis=0), 0) and np.allclose(ds.x_train.max(axis=0), 1)


def test_npz_presplit_keeps_values_in_unit_range(tmp_path):
    rng = np.random.default_rng(5)
    arrays = {"x_train": rng.random((10, 3)), "y_train": np.arange(10) % 2,
              "x_test": rng.random((4, 3)), "y_test": np.arange(4) % 2}
    np.savez(tmp_path / "d.npz", **arrays)
    ds = load_dataset("npz", path=tmp_path / "d.npz")
    assert np.allclose(ds.x_train, arrays["x_train"]) and ds.y_test.tolist() == [0, 1, 0, 1]


def test_npz_three_classes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 2)), y=np.arange(30) % 3)
    with pytest.raises(ValueError, match="two distinct labels"):
        load_dataset("npz", path=tmp_path / "d.npz")
    ds = load_dataset("npz", path=tmp_path / "d.npz", classes=(0, 2))
    assert len(ds.y_train) + len(ds.y_test) == 20
    every = load_dataset("npz", path=tmp_path / "d.npz", classes="all")
    assert every.classes == (0, 1, 2)
    assert np.bincount(np.concatenate([every.y_train, every.y_test])).tolist() == [10, 10, 10]


def test_npz_nan(tmp_path):
    x = np.zeros((20, 2))
    x[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(20) % 2)
    with pytest.raises(ValueError, match="nan.npz"):
        load_dataset("npz", path=tmp_path / "nan.npz")


def _save_presplit(path: Path, rng: np.random.Generator, x_test: np.ndarray, y_test: np.ndarray) -> None:
    """A pre-split .npz with ten good training rows and the given test split."""
    np.savez(path, x_train=rng.random((10, 3)), y_train=np.arange(10) % 2, x_test=x_test, y_test=y_test)


def test_npz_empty_split_and_complex_features(tmp_path):
    rng = np.random.default_rng(6)
    _save_presplit(tmp_path / "empty.npz", rng, np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="empty.npz.*no samples"):
        load_dataset("npz", path=tmp_path / "empty.npz")
    np.savez(tmp_path / "complex.npz", x=rng.random((20, 2)) + 1j, y=np.arange(20) % 2)
    with pytest.raises(ValueError, match="complex.npz.*real numeric"):
        load_dataset("npz", path=tmp_path / "complex.npz")


def test_npz_presplit_test_labels_need_both_classes(tmp_path):
    rng = np.random.default_rng(7)
    _save_presplit(tmp_path / "one.npz", rng, rng.random((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"one.npz \(y_test\)"):
        load_dataset("npz", path=tmp_path / "one.npz")


def test_unsplittable_file_names_the_file(tmp_path):
    y = np.array([0] * 9 + [1])  # one row of class 1 cannot be stratified into two sets
    np.savez(tmp_path / "rare.npz", x=np.random.default_rng(8).random((10, 2)), y=y)
    with pytest.raises(ValueError, match="rare.npz: cannot split"):
        load_dataset("npz", path=tmp_path / "rare.npz")


def test_npz_object_array_is_not_unpickled(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4) % 2)
    with pytest.raises(ValueError):
        load_dataset("npz", path=tmp_path / "obj.npz")


def test_csv_with_header(tmp_path):
    rows = "\n".join(f"{i},{i * 2},{i % 2}" for i in range(20))
    (tmp_path / "d.csv").write_text("a,b,label\n" + rows + "\n")
    ds = load_dataset("csv", path=tmp_path / "d.csv")
    _check_common(ds)
    assert ds.input_shape == (2,) and ds.x_train.shape == (15, 2) and ds.classes == (0, 1)
    assert ds.x_test.min() >= 0 and ds.x_test.max() <= 1


def test_csv_without_header(tmp_path):
    (tmp_path / "d.csv").write_text("\n".join(f"0.{i},{i % 2}" for i in range(8)) + "\n")
    ds = load_dataset("csv", path=tmp_path / "d.csv", test_size=0.5)
    assert len(ds.y_train) == 4 and ds.x_train.max() <= 0.7


def test_csv_nan_and_three_classes(tmp_path):
    (tmp_path / "nan.csv").write_text("1,0\nnan,1\n2,0\n3,1\n")
    with pytest.raises(ValueError, match="nan.csv"):
        load_dataset("csv", path=tmp_path / "nan.csv")
    (tmp_path / "three.csv").write_text("\n".join(f"{i},{i % 3}" for i in range(12)) + "\n")
    with pytest.raises(ValueError, match="two distinct labels"):
        load_dataset("csv", path=tmp_path / "three.csv")


def test_user_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_dataset("npz", path=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="path"):
        load_dataset("csv")


def test_datasets_constant():
    assert DATASETS == ("digits", "cifar10", "mnist", "ecg", "mr", "imdb", "yelp", "ag", "npz", "csv")
    assert DATASETS == tuple(REGISTRY) == tuple(info.name for info in REGISTRY.values())


@pytest.mark.parametrize("name", ["digits", "cifar10", "mnist", "ecg"])
def test_registry_default_classes_are_used(name, tmp_path):
    if name == "digits":
        classes = load_dataset(name).classes
    else:
        with pytest.raises(FileNotFoundError) as info:
            load_dataset(name, data_dir=tmp_path, download=False)
        classes = REGISTRY[name].classes
        for file_name in REGISTRY[name].files:  # the hints are what the loader looked for
            assert file_name in str(info.value)
    assert classes == REGISTRY[name].classes
    assert list(tmp_path.iterdir()) == []


def test_registry_is_light():
    """The command line reads the dataset names without importing any loader or scikit-learn."""
    code = ("import sys; from eval.datasets import DATASETS, REGISTRY; "
            "assert not any(m.startswith('sklearn') or m == 'eval.datasets.cifar' for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------- io


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SCD_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("SCD_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "scd" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "scd" / "data"


def test_atomic_open_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_atomic_open_text_mode(tmp_path):
    target = tmp_path / "t.txt"
    with atomic_open(target, "w") as fh:
        fh.write("héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    with pytest.raises(ValueError):
        with atomic_open(target, "ab"):
            pass


def test_corrupt_npz_names_the_file(tmp_path):
    np.savez(tmp_path / "good.npz", x=np.random.default_rng(0).random((40, 3)), y=np.arange(40) % 2)
    good = (tmp_path / "good.npz").read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF
    files = {"cut.npz": good[:200], "flipped.npz": bytes(flipped), "text.npz": b"not an archive\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name):
            load_dataset("npz", path=tmp_path / name)
    mnist_dir = tmp_path / "mnist"
    mnist_dir.mkdir()
    (mnist_dir / "mnist.npz").write_bytes(good[:200])
    with pytest.raises(ValueError, match="mnist.npz"):
        load_dataset("mnist", data_dir=mnist_dir)


@pytest.mark.parametrize("change, match", [
    (lambda a: {**a, "x_train": a["x_train"].astype(np.float32) / 255}, "uint8"),
    (lambda a: {**a, "y_train": a["y_train"][:-1]}, "one label per image"),
    (lambda a: {**a, "x_test": a["x_test"][:, :20]}, "x_test"),
])
def test_image_npz_holds_official_pixels(tmp_path, change, match):
    """mnist.npz as the official files hold it: anything else would be scaled wrongly."""
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), "y_train": np.arange(20) % 10,
              "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), "y_test": np.arange(10)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    assert load_dataset("mnist", data_dir=tmp_path, classes=(0, 1)).x_train.shape == (4, 784)
    np.savez(tmp_path / "mnist.npz", **change(arrays))
    with pytest.raises(ValueError, match=match):
        load_dataset("mnist", data_dir=tmp_path, classes=(0, 1))


def test_csv_with_byte_order_mark_and_binary_content(tmp_path):
    rows = "\n".join(f"{i},{i % 2}" for i in range(40)) + "\n"
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + rows.encode())
    ds = load_dataset("csv", path=tmp_path / "bom.csv")
    assert len(ds.y_train) + len(ds.y_test) == 40
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="binary.csv"):
        load_dataset("csv", path=tmp_path / "binary.csv")
