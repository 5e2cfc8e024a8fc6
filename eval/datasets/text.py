"""Text classification data: MR, IMDB, Yelp polarity and AG News (two classes), as averaged word vectors.

Each loader reads the documents, tokenises them (:func:`scd.text.tokenize`) and returns a
:class:`TextDataset`: the usual :class:`~eval.datasets.dataset.Dataset` whose features are the
averaged word vectors of each document (:meth:`scd.text.Embedding.mean`), min-max scaled to
[0, 1] with the training minimum and maximum, plus the tokens and the embedding, so the same
features can be computed for any other text (:meth:`TextDataset.features`, what the attack's
texts go through) and the WordCNN can take the stacked vectors (:meth:`TextDataset.word_matrices`).

Sources, looked for in the data directory in this order (archives are downloaded when missing
and checked against the checksums in :mod:`~eval.datasets.registry` before they are used):

* ``mr``: ``mr_polarity.npz`` (``x``, ``y``; see ``shared/data/README.md``), the folder
  ``rt-polaritydata/`` or the official ``rt-polaritydata.tar.gz`` (the md5 of ``rt-polarity.pos``
  and ``rt-polarity.neg`` is checked; the tarball itself has no published checksum).  No
  official split: stratified, ``test_size``/``random_state``.  0 negative, 1 positive.
* ``imdb``: ``aclImdb/`` or ``aclImdb_v1.tar.gz``; the official 25,000/25,000 split;
  ``<br />`` becomes a space.  0 negative, 1 positive.
* ``yelp``: ``yelp_review_polarity_csv/`` or ``yelp_review_polarity_csv.tgz`` (Zhang et al.
  2015); official split; labels 1 negative, 2 positive.
* ``ag``: ``ag_news_csv/`` or ``ag_news_csv.tgz``; official split; the paper's two classes are
  1 World and 2 Sports (3 Business and 4 Sci/Tech are the others); a document is its title and
  description.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from eval.datasets._common import (
    fetch,
    positions,
    read_npz,
    resolve_classes,
    resolve_dir,
    split,
)
from eval.datasets.dataset import Dataset
from eval.datasets.registry import REGISTRY, TEXT_ARCHIVES

__all__ = ["TextDataset", "load"]

_MR_MD5 = {"rt-polarity.pos": "afcc7ff580b3b4df4bdb6528e6558ab5", "rt-polarity.neg": "1e35b7f7c5df24a135ca62b8eecded53"}


@dataclass(frozen=True, eq=False)
class TextDataset(Dataset):
    """A :class:`Dataset` of documents: ``x_*`` are the scaled averaged word vectors of ``tokens_*``.

    Attributes (beyond the Dataset's)
    ----------------------------------
    tokens_train, tokens_test : tuple of tuple of str
        The tokenised documents, row for row with ``x_train`` / ``x_test``.
    embedding : scd.text.Embedding
        The word vectors behind the features.
    low, span : np.ndarray
        The training minimum and ``max - min`` of each averaged-vector feature (span 1 where
        constant): ``features = clip((mean - low) / span, 0, 1)``.
    """

    tokens_train: tuple = ()
    tokens_test: tuple = ()
    embedding: Any = None
    low: np.ndarray | None = None
    span: np.ndarray | None = None

    def features(self, documents: Sequence[Sequence[str]]) -> np.ndarray:
        """The model features of tokenised ``documents``, exactly as ``x_train`` was made."""
        mean = self.embedding.mean(documents).astype(np.float64)
        return np.clip((mean - self.low) / self.span, 0.0, 1.0).astype(np.float32)

    def word_matrices(self, length: int | None = None) -> Dataset:
        """The same split with the WordCNN's input: each document's first ``length`` word vectors
        (default: the longest training document), flattened; ``input_shape`` is ``(length, dim)``."""
        length = int(length or max(1, max(map(len, self.tokens_train))))
        return Dataset(self.name, self.embedding.stack(self.tokens_train, length), self.y_train,
                       self.embedding.stack(self.tokens_test, length), self.y_test, self.classes,
                       (length, self.embedding.dim), self.source)


def load(name: str, classes: tuple[int, ...] | str, data_dir: str | os.PathLike[str] | None, download_missing: bool,
         embedding: Any, test_size: float, random_state: int) -> TextDataset:
    """Load text dataset ``name`` (``mr``, ``imdb``, ``yelp``, ``ag``) as a :class:`TextDataset`;
    ``embedding`` is a :class:`scd.text.Embedding` or what :func:`scd.text.load_embedding` takes.
    Class ``classes[i]`` becomes label ``i`` (:func:`eval.datasets.load_dataset`)."""
    from scd.text import Embedding, load_embedding, tokenize

    data_dir = resolve_dir(data_dir)
    texts, labels, source = _READERS[name](data_dir, download_missing)
    if isinstance(labels, tuple):  # official split: (train, test) of each
        (train_texts, test_texts), (y_train, y_test) = texts, labels
        classes = resolve_classes(y_train, classes, source)
        keep_train, keep_test = np.isin(y_train, classes), np.isin(y_test, classes)
        tokens_train = [tokenize(train_texts[i]) for i in np.flatnonzero(keep_train)]
        tokens_test = [tokenize(test_texts[i]) for i in np.flatnonzero(keep_test)]
        y_train, y_test = positions(y_train[keep_train], classes), positions(y_test[keep_test], classes)
    else:
        classes = resolve_classes(labels, classes, source)
        keep = np.isin(labels, classes)
        rows = np.flatnonzero(keep)
        y = positions(labels[keep], classes)
        train_rows, y_train, test_rows, y_test = split(rows, y, test_size, random_state, source)
        tokens_train = [tokenize(texts[i]) for i in train_rows]
        tokens_test = [tokenize(texts[i]) for i in test_rows]
    emb = embedding if isinstance(embedding, Embedding) else load_embedding(embedding)
    mean_train = emb.mean(tokens_train).astype(np.float64)
    low = mean_train.min(axis=0)
    high = mean_train.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scale = lambda m: np.clip((m - low) / span, 0.0, 1.0).astype(np.float32)
    return TextDataset(name, scale(mean_train), y_train, scale(emb.mean(tokens_test).astype(np.float64)), y_test,
                       classes, (emb.dim,), f"{source} ({emb.name})", tuple(map(tuple, tokens_train)),
                       tuple(map(tuple, tokens_test)), emb, low, span)


# ------------------------------------------------------------------------------ readers
def _missing(name: str, data_dir: Path, error: Exception | None = None) -> FileNotFoundError:
    url, sha256 = TEXT_ARCHIVES[name]
    check = f"sha256 {sha256}" if sha256 else "its rt-polarity.pos/.neg md5s are checked"
    message = (f"{name} data not found in {data_dir}: looked for {', '.join(REGISTRY[name].files)}. Download "
               f"{url} ({check}) into that directory, or pass --data-dir / set SCD_DATA_DIR to a directory "
               "holding one of them.")
    if error is not None:
        message += f" Download failed: {error}"
    return FileNotFoundError(message)


def _archive(name: str, data_dir: Path, download_missing: bool) -> Path:
    """The dataset's archive in ``data_dir``, downloaded (and checked against its sha256, where
    there is one) when missing."""
    url, sha256 = TEXT_ARCHIVES[name]
    return fetch(data_dir / REGISTRY[name].files[-1], url, sha256, "sha256", download_missing,
                 lambda error: _missing(name, data_dir, error))


def _members(tarball: Path, wanted: Callable[[PurePosixPath], bool]) -> dict[str, bytes]:
    """The regular files of a .tar.gz whose path ``wanted`` accepts, read in one streaming pass."""
    out = {}
    try:
        with tarfile.open(tarball, "r|gz") as archive:
            for member in archive:
                if member.isfile() and wanted(PurePosixPath(member.name)):
                    out[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{tarball} is not a readable .tar.gz archive: {exc}") from exc
    return out


def _read_mr(data_dir: Path, download_missing: bool) -> tuple[list[str], np.ndarray, str]:
    npz = data_dir / REGISTRY["mr"].files[0]
    if npz.is_file():
        arrays = read_npz(npz, ("x", "y"))
        x, y = arrays["x"], arrays["y"]
        if x.ndim != 1 or x.dtype.kind != "U" or y.shape != x.shape:
            raise ValueError(f"{npz}: expected x as one string per sentence and y one label each")
        return x.tolist(), y.astype(np.int64), str(npz)
    folder = data_dir / REGISTRY["mr"].files[1].rstrip("/")
    if folder.is_dir():
        files = {name: (folder / name).read_bytes() for name in _MR_MD5}
        source = str(folder)
    else:
        tarball = _archive("mr", data_dir, download_missing)  # no published checksum: its files' md5s are checked
        found = _members(tarball, lambda p: p.name in _MR_MD5)
        files = {PurePosixPath(k).name: v for k, v in found.items()}
        source = str(tarball)
    texts, labels = [], []
    for label, name in ((1, "rt-polarity.pos"), (0, "rt-polarity.neg")):
        data = files.get(name)
        digest = None if data is None else hashlib.md5(data, usedforsecurity=False).hexdigest()
        if digest != _MR_MD5[name]:
            raise ValueError(f"{source}: {name} is {'missing' if data is None else f'not the official file (md5 {digest})'}"
                             f"; expected md5 {_MR_MD5[name]}")
        lines = data.split(b"\n")[:-1]  # latin-1 bytes, one sentence per line (never splitlines: \x85)
        texts += [line.decode("latin-1") for line in lines]
        labels += [label] * len(lines)
    return texts, np.array(labels, np.int64), source


def _read_imdb(data_dir: Path, download_missing: bool):
    folder = data_dir / "aclImdb"
    docs: dict[tuple[str, int], list[tuple[str, str]]] = {}
    if folder.is_dir():
        for part in ("train", "test"):
            for label, sub in ((0, "neg"), (1, "pos")):
                docs[part, label] = [(p.name, p.read_text(encoding="utf-8")) for p in (folder / part / sub).glob("*.txt")]
        source = str(folder)
    else:
        tarball = _archive("imdb", data_dir, download_missing)
        wanted = lambda p: len(p.parts) == 4 and p.parts[1] in ("train", "test") and p.parts[2] in ("pos", "neg")
        for name, data in _members(tarball, wanted).items():
            p = PurePosixPath(name)
            docs.setdefault((p.parts[1], int(p.parts[2] == "pos")), []).append((p.name, data.decode("utf-8")))
        source = str(tarball)
    texts, labels = ([], []), ([], [])
    for i, part in enumerate(("train", "test")):
        for label in (0, 1):
            rows = sorted(docs.get((part, label), []))
            if not rows:
                raise ValueError(f"{source}: no {part}/{'pos' if label else 'neg'} reviews found")
            texts[i].extend(text.replace("<br />", " ") for _, text in rows)
            labels[i].extend([label] * len(rows))
    return texts, tuple(np.array(v, np.int64) for v in labels), source


def _csv_reader(name: str, folder_name: str, fields: Callable[[list[str]], str]):
    def read(data_dir: Path, download_missing: bool):
        folder = data_dir / folder_name
        if folder.is_dir():
            files = {part: (folder / f"{part}.csv").read_bytes() for part in ("train", "test")}
            source = str(folder)
        else:
            tarball = _archive(name, data_dir, download_missing)
            found = _members(tarball, lambda p: p.name in ("train.csv", "test.csv"))
            files = {PurePosixPath(k).stem: v for k, v in found.items()}
            source = str(tarball)
        texts, labels = ([], []), ([], [])
        for i, part in enumerate(("train", "test")):
            if part not in files:
                raise ValueError(f"{source}: {part}.csv not found")
            for number, row in enumerate(csv.reader(io.StringIO(files[part].decode("utf-8"))), 1):
                try:
                    labels[i].append(int(row[0]))
                    texts[i].append(fields(row[1:]).replace("\\n", " "))
                except (ValueError, IndexError):
                    raise ValueError(f"{source}: {part}.csv line {number} is not a label and text: {row!r}") from None
        return texts, tuple(np.array(v, np.int64) for v in labels), source
    return read


_READERS = {
    "mr": _read_mr,
    "imdb": _read_imdb,
    "yelp": _csv_reader("yelp", "yelp_review_polarity_csv", lambda f: f[0]),
    "ag": _csv_reader("ag", "ag_news_csv", lambda f: " ".join(f)),
}
