"""Crafted and damaged files for the hardening tests, generated from valid ones, and the runner
that loads them in a fresh process with a memory cap and reports how each one ended.

Nothing here is committed as a binary: :func:`model_cases` and :func:`dataset_cases` derive
every case from a small valid file the tests have just written.  ``python -m tests.crafted
CASES.json RESULT.json`` runs the cases listed in ``CASES.json`` (each ``{"name", "call",
"path" | "args", "cwd"}``) and writes, per case, the exception's type and message (or
``null``), whether the folder it ran in changed, and the process's peak resident memory.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Case = tuple[str, bytes]  # (name, the file's bytes)


# ------------------------------------------------------------------------------ building blocks
def entries_of(data: bytes) -> dict[str, bytes]:
    """The entries of a zip archive, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive of ``entries`` (``zipfile`` writes what it is given, duplicates included)."""
    import warnings

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name is the point of some cases
        for name, payload in entries.items():
            zf.writestr(name.split("\0")[0], payload)  # "name\0dup" writes a second "name"
    return buf.getvalue()


def npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_declaring(shape: tuple, descr: str, payload: bytes = b"", fortran: bool = False) -> bytes:
    """An .npy whose header declares ``shape`` and ``descr`` whatever ``payload`` holds."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue() + payload


def declare_size(data: bytes, name: str, size: int) -> bytes:
    """``data`` with the central-directory record of entry ``name`` declaring ``size``
    uncompressed bytes (a stored entry that claims to hold gigabytes)."""
    raw = bytearray(data)
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46: at + 46 + length].decode() == name:
            struct.pack_into("<I", raw, at + 24, size)
            return bytes(raw)
        at += 4
    raise KeyError(name)


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ------------------------------------------------------------------------------ the corpus
def container_cases(valid: bytes, header: str) -> Iterator[Case]:
    """Damage to the archive and its header that any model file can suffer."""
    entries = entries_of(valid)
    meta = json.loads(entries[header])
    yield "empty", b""
    yield "random", np.random.default_rng(0).bytes(4096)
    yield "json text", entries[header]
    for frac in (0.1, 0.5, 0.9, 0.999):
        yield f"truncated {frac}", valid[: int(len(valid) * frac)]
    for frac in (0.05, 0.3, 0.6, 0.97):
        flipped = bytearray(valid)
        flipped[int(len(valid) * frac)] ^= 0xFF
        yield f"flipped byte {frac}", bytes(flipped)
    yield "no header", zip_bytes({k: v for k, v in entries.items() if k != header})
    yield "header not json", zip_bytes({**entries, header: b"{not json"})
    yield "header not utf-8", zip_bytes({**entries, header: b"\xff\xfe\x00{"})
    for label, value in [("list", [meta]), ("string", "x"), ("number", 3), ("null", None)]:
        yield f"header is a {label}", zip_bytes({**entries, header: json.dumps(value).encode()})
    yield "header nested 100000 deep", zip_bytes({**entries, header: nested_json(100_000)})
    yield "header over 1 MiB", zip_bytes({**entries, header: json.dumps({**meta, "pad": "x" * (2 << 20)}).encode()})
    yield "entry twice", zip_bytes({**entries, f"{header}\0dup": entries[header]})
    for key, value in [("format", "other"), ("format", None), ("format_version", 99), ("format_version", "1"),
                       ("format_version", True), ("format_version", None), ("kind", None), ("kind", 7),
                       ("kind", ["scd-ensemble"]), ("kind", "no-such-kind")]:
        yield f"{key}={value!r}", zip_bytes({**entries, header: json.dumps({**meta, key: value}).encode()})
    array = next((k for k in entries if k.endswith(".npy")), next(k for k in entries if k != header))
    yield "entry declares 4 GB", declare_size(valid, array, 0xFFFFFFF0)
    yield "deflate bomb 64 MiB", zip_bytes({**entries, array: bytes(64 << 20)}, zipfile.ZIP_DEFLATED)


def npy_cases(valid: bytes, array: str) -> Iterator[Case]:
    """Arrays whose headers lie or name dtypes a model never holds (``array``: an entry name)."""
    entries = entries_of(valid)
    good = np.lib.format.read_array(io.BytesIO(entries[array]))
    n = good.size
    for label, payload in [
        ("declares (10^7, 10^7)", npy_declaring((10**7, 10**7), "<f8")),
        ("declares (2^62, 4)", npy_declaring((2**62, 4), "<f4")),
        ("declares 40 dimensions", npy_declaring((1,) * 40, "<f4", b"\0" * 4)),
        ("shape larger than data", npy_declaring((n + 1,), "<f4", b"\0" * 4 * n)),
        ("shape smaller than data", npy_declaring((max(n - 1, 0),), "<f4", b"\0" * 4 * n)),
        ("object dtype", npy_declaring((2,), "|O", b"\0" * 16)),
        ("complex weights", npy(good.astype(np.complex64)) if good.dtype.kind == "f" else npy(np.ones(n, "c8"))),
        ("string weights", npy(np.full(good.shape, "1.0", "U3"))),
        ("datetime", npy(np.zeros(good.shape, "M8[s]"))),
        ("void", npy_declaring(good.shape, "|V4", b"\0" * 4 * n)),
        ("nested record", npy_declaring((1,), [("a", [("b", "<f4")])], b"\0" * 4)),
        ("subarray dtype", npy_declaring((1,), [("a", "<f4", (2,))], b"\0" * 8)),
        ("bad magic", b"NOTNUMPY" + entries[array][8:]),
        ("header over 10000 bytes", b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b" " * 60000),
        ("header is not a dict", b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + b"[1, 2]".ljust(117) + b"\n"),
        ("pickle protocol bytes", b"\x80\x04\x95" + b"\0" * 64),
        ("scalar", npy(np.float32(1.0))),
        ("empty", npy(np.zeros((0,) + good.shape[1:], good.dtype))),
    ]:
        yield f"{array}: {label}", zip_bytes({**entries, array: payload})
    yield f"{array}: missing", zip_bytes({k: v for k, v in entries.items() if k != array})
    if good.dtype.kind == "f" and good.size:
        for label, value in [("NaN", np.nan), ("inf", np.inf), ("-inf", -np.inf)]:
            bad = good.copy()
            bad.flat[good.size // 2] = value
            yield f"{array}: {label}", zip_bytes({**entries, array: npy(bad)})
        yield f"{array}: as int", zip_bytes({**entries, array: npy(good.astype(np.int32))})
        yield f"{array}: transposed", zip_bytes({**entries, array: npy(good.T.copy() if good.ndim > 1 else good[:-1])})


def class_cases(valid: bytes) -> Iterator[Case]:
    entries = entries_of(valid)
    for label, classes in [("[0, 0]", np.array([0, 0])), ("[nan, 1]", np.array([np.nan, 1.0])),
                           ("[1, inf]", np.array([1.0, np.inf])), ("three", np.array([0, 1, 2])),
                           ("one", np.array([1])), ("2x2", np.array([[0, 1], [2, 3]])),
                           ("complex", np.array([0, 1j])), ("equal strings", np.array(["a", "a"]))]:
        yield f"classes {label}", zip_bytes({**entries, "classes.npy": npy(classes)})


def meta_cases(valid: bytes, header: str, extra: dict[str, list[Any]] | None = None) -> Iterator[Case]:
    """Metadata that breaks the schema: a missing key, a wrong type, a value out of range."""
    entries = entries_of(valid)
    meta = json.loads(entries[header])

    def with_meta(m: dict) -> bytes:
        return zip_bytes({**entries, header: json.dumps(m).encode()})

    for key in ("estimator", "params", "n_features_in", "seed", "fit_time"):
        yield f"no {key}", with_meta({k: v for k, v in meta.items() if k != key})
    bad = {"estimator": [None, 3, "Nope", ["SCD01"]], "params": [None, [], "x", 3],
           "n_features_in": [None, "64", 64.0, True, 0, -1, 10**30],
           "seed": [None, "0", 0.5, True, 10**30, float("nan")], "fit_time": [None, "1", -1.0, float("inf"), [1]]}
    for key, values in (extra or {}).items():
        bad[key] = bad.get(key, []) + values
    for key, values in bad.items():
        for value in values:
            yield f"{key}={value!r}"[:60], with_meta({**meta, key: value})
    params = meta["params"]
    for key, value in [("n_votes", 10**9), ("n_votes", 1e9), ("n_votes", 0), ("n_votes", "3"), ("voting", "nonsense"),
                       ("voting", 1), ("random_state", "x"), ("no_such_param", 1)]:
        if key in params or key == "no_such_param":
            yield f"params.{key}={value!r}", with_meta({**meta, "params": {**params, key: value}})


def model_cases(templates: dict[str, bytes]) -> Iterator[Case]:
    """The whole model corpus from valid files ``templates`` (kind -> bytes, ``metadata.json``
    format): SCD ensembles, MLP, RF and CNN baselines."""
    for kind, valid in templates.items():
        # a forest's trees only bound the feature count from below: another count is consistent
        other_d = {} if kind == "rf" else {"n_features_in": [json.loads(entries_of(valid)["metadata.json"])
                                                              ["n_features_in"] + 1]}
        cases: list[Iterator[Case]] = [meta_cases(valid, "metadata.json", other_d), class_cases(valid)]
        entries = entries_of(valid)
        arrays = [k for k in entries if k.endswith(".npy") and k != "classes.npy"]
        if kind == "scd":
            cases += [container_cases(valid, "metadata.json")]
            cases += [npy_cases(valid, a) for a in arrays]
        else:  # the first plain float array (a forest's node table is a record)
            weights = next(a for a in arrays if np.lib.format.read_array(io.BytesIO(entries[a])).dtype.kind == "f")
            cases += [npy_cases(valid, weights)]
        if kind == "cnn":
            cases += [cnn_cases(valid)]
        for source in cases:
            for name, data in source:
                yield f"{kind}: {name}", data


def cnn_cases(valid: bytes) -> Iterator[Case]:
    """CNN architectures: self-consistent huge input shapes (which once allocated gigabytes),
    shapes that are not shapes, and member counts that disagree."""
    entries = entries_of(valid)
    meta = json.loads(entries["metadata.json"])
    arch = meta["architecture"]

    def with_meta(m: dict) -> bytes:
        return zip_bytes({**entries, "metadata.json": json.dumps(m).encode()})

    from eval.baselines import cnn

    for shape in ([40000, 40000], [3_000_000_000], [1000, 1000, 3]):
        big = cnn._architecture(tuple(shape))
        n = int(np.prod(shape))
        yield f"cnn input_shape {shape}", with_meta({**meta, "architecture": big, "n_features_in": n,
                                                     "params": {**meta["params"], "input_shape": shape}})
    for shape in ([-8, 8], [0], [8, 8, 1, 1], ["8", "8"], [8.0, 8.0], [True, 64], [], 64, None):
        yield f"cnn input_shape {shape!r}", with_meta({**meta, "architecture": {**arch, "input_shape": shape}})
    for value in ([arch], "conv", None, {**arch, "hidden": [10**9]}, {**arch, "convs": [[10**6, 3, 1, 2]] * 2}):
        yield f"cnn architecture {str(value)[:30]}", with_meta({**meta, "architecture": value})
    for n in (0, -1, 10**9, 1, "2", 2.5):
        yield f"cnn n_members={n!r}", with_meta({**meta, "n_members": n})


def dataset_cases() -> Iterator[tuple[str, str, bytes]]:
    """User data files (``(name, suffix, bytes)``) that must be refused."""
    rng = np.random.default_rng(1)
    x, y = rng.random((30, 4)), np.arange(30) % 2

    def npz(**arrays: Any) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    good = npz(x=x, y=y)
    yield "npz empty", ".npz", b""
    yield "npz truncated", ".npz", good[: len(good) // 2]
    yield "npz no arrays", ".npz", npz(a=x)
    yield "npz declares (10^7, 10^7)", ".npz", zip_bytes({"x.npy": npy_declaring((10**7, 10**7), "<f8"),
                                                           "y.npy": npy(y)})
    yield "npz declares 4 GB", ".npz", declare_size(good, "x.npy", 0xFFFFFFF0)
    yield "npz deflate bomb", ".npz", zip_bytes({"x.npy": npy(np.zeros((1 << 23, 4))), "y.npy": npy(y)},
                                                 zipfile.ZIP_DEFLATED)
    yield "npz object", ".npz", zip_bytes({"x.npy": npy_declaring((2, 2), "|O", b"\0" * 32), "y.npy": npy(y)})
    yield "npz complex", ".npz", npz(x=x + 1j, y=y)
    yield "npz strings", ".npz", npz(x=x.astype(str), y=y)
    yield "npz NaN", ".npz", npz(x=np.where(x > 0.5, np.nan, x), y=y)
    yield "npz inf", ".npz", npz(x=np.where(x > 0.5, np.inf, x), y=y)
    yield "npz 1-d x", ".npz", npz(x=x[:, 0], y=y)
    yield "npz three labels", ".npz", npz(x=x, y=np.arange(30) % 3)
    yield "npz fractional labels", ".npz", npz(x=x, y=y + 0.5)
    yield "npz lengths differ", ".npz", npz(x=x, y=y[:-1])
    yield "csv empty", ".csv", b""
    yield "csv words", ".csv", b"a,b\nc,d\n"
    yield "csv one column", ".csv", b"1\n2\n"
    yield "csv NaN", ".csv", b"1,nan,0\n2,3,1\n"
    yield "csv 1e400", ".csv", b"1,1e400,0\n2,3,1\n"
    yield "csv ragged", ".csv", b"1,2,0\n2,1\n"
    yield "csv binary", ".csv", rng.bytes(2000)


# ------------------------------------------------------------------------------ the runner
def _listing(folder: str) -> list[tuple[str, int, int]]:
    out = []
    for root, _, files in os.walk(folder):
        for f in files:
            st = os.stat(os.path.join(root, f))
            out.append((os.path.relpath(os.path.join(root, f), folder), st.st_size, st.st_mtime_ns))
    return sorted(out)


def _calls() -> dict[str, Callable[[dict[str, Any]], Any]]:
    from eval.baselines import load_model, model_info
    from eval.datasets import load_dataset

    def cli(case: dict[str, Any]) -> Any:
        from click.testing import CliRunner

        from cli import main

        result = CliRunner().invoke(main, case["args"])
        if result.exit_code == 0:
            return None
        if isinstance(result.exception, SystemExit) and "Error:" in result.output and "Traceback" not in result.output:
            raise ValueError(result.output.strip().splitlines()[-1])
        raise RuntimeError(f"exit {result.exit_code}: {result.exception!r} {result.output[-300:]}")

    return {"load_model": lambda c: load_model(c["path"]), "model_info": lambda c: model_info(c["path"]),
            "dataset": lambda c: load_dataset(c["kind"], path=c["path"]), "cli": cli}


def run(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Run every case in this process; see the module docstring."""
    calls = _calls()
    results = []
    for case in cases:
        before = _listing(case["cwd"])
        os.chdir(case["cwd"])
        try:
            calls[case["call"]](case)
            error = None
        except (ValueError, FileNotFoundError) as exc:
            error = {"type": type(exc).__name__, "message": str(exc)[:300], "clean": True}
        except BaseException as exc:  # noqa: BLE001 - reported, and the test fails on it
            error = {"type": type(exc).__name__, "message": str(exc)[:300], "clean": False}
        results.append({"name": case["name"], "error": error, "unchanged": _listing(case["cwd"]) == before})
    return {"results": results, "peak_bytes": peak_memory()}


def peak_memory() -> int:
    """Peak resident memory of this process in bytes: the kernel's high-water mark of its
    address space (``VmHWM``; ``ru_maxrss`` would also count the parent's memory at the fork
    that started this process), or ``ru_maxrss`` where /proc is missing."""
    import resource

    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    import resource

    cap = 6 << 30  # a regression fails with MemoryError here instead of exhausting the machine
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    cases_path, out_path = sys.argv[1:3]
    with open(cases_path) as fh:
        cases = json.load(fh)
    with open(out_path, "w") as fh:
        json.dump(run(cases), fh)


if __name__ == "__main__":
    main()
