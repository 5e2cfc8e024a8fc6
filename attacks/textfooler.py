"""TextFooler (Jin et al. 2020): a black-box word-substitution attack on text classifiers.

For each document the model classifies correctly:

1. **Importance.**  Each token is deleted in turn; its importance is the drop of the true
   class's score, plus, where the deletion changes the label, the rise of the new label's
   score (Jin et al., eq. 2).  One query per token.
2. **Candidates.**  In decreasing importance, each token that is a word (it has a letter or a
   digit) and not a stop word (:data:`STOP_WORDS`) gets up to ``k`` substitutes: its nearest
   neighbours by cosine in the synonym embedding, at least ``min_cosine``, among its first
   ``vocabulary`` words (Jin et al.: counter-fitted vectors, k = 50, 0.5).
3. **Constraint.**  A candidate document is kept only if ``similarity(original, candidate)`` is
   at least ``min_similarity``.  Jin et al. use the Universal Sentence Encoder, which is not
   available offline; the default scorer here is the cosine between the two documents'
   averaged synonym-embedding vectors (:func:`mean_vector_similarity`).  It is far weaker: it
   barely moves for one substitution, so the constraint mostly binds after several.  Pass any
   ``similarity(original_tokens, candidate_tokens) -> float`` instead.  The part-of-speech
   check of Jin et al. is not done.
4. **Greedy replacement.**  All kept candidates are queried at once.  If some change the label,
   the most similar of them is the adversarial document; otherwise the one lowering the true
   class's score most is kept (when it lowers it at all) and the next word is tried.

Every model query goes through an :class:`~attacks.oracle.Oracle` (so queries are counted, and a
``max_queries`` budget enforced, in one place): documents are encoded as rows of token ids, and
the oracle's model decodes them and calls the classifier.  The final document is confirmed on
the model (an uncounted :meth:`~attacks.oracle.Oracle.confirm`); success means that answer
differs from the true label.  Everything is deterministic (no randomness is drawn).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from scd.text import Embedding

from .oracle import Oracle

__all__ = ["STOP_WORDS", "TextAttackResult", "TextFooler", "mean_vector_similarity"]

STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"}
"""Words never substituted: scikit-learn's English stop words (318, as in Jin et al.'s list they
include the negations no, nor, not, never) and the clitics :func:`scd.text.tokenize` splits off."""

_PAD = -1.0
_MAX_ID = float(2**24)  # token ids are exact in float32 below this


def mean_vector_similarity(embedding: Embedding) -> Callable[[Sequence[str], Sequence[str]], float]:
    """The default sentence-similarity scorer: cosine between the averaged ``embedding`` vectors
    of two token lists (1.0 for identical lists; 0.0 when either has no known word)."""

    def similarity(a: Sequence[str], b: Sequence[str]) -> float:
        if list(a) == list(b):
            return 1.0
        u, v = embedding.mean([list(a), list(b)]).astype(np.float64)
        norm = np.linalg.norm(u) * np.linalg.norm(v)
        return float(u @ v / norm) if norm > 0 else 0.0

    return similarity


@dataclass
class TextAttackResult:
    """Per document: the adversarial tokens (the original where the attack failed), whether the
    model's confirmed label differs from the true one, the substitutions ``(position, old, new)``,
    the counted queries and the final similarity to the original."""

    original: list[list[str]]
    adversarial: list[list[str]]
    labels: np.ndarray
    success: np.ndarray
    already_adversarial: np.ndarray
    queries: np.ndarray
    confirm_queries: np.ndarray
    substitutions: list[list[tuple[int, str, str]]]
    similarity: np.ndarray
    sample_ids: np.ndarray
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


class TextFooler:
    """TextFooler word-substitution attack (see the module docstring).

    Parameters
    ----------
    synonyms : scd.text.Embedding
        Where substitutes come from (Jin et al.: counter-fitted vectors).
    k : int, default=50
        Most candidates per word.
    min_cosine : float, default=0.5
        Least cosine between a word and a candidate.
    vocabulary : int or None, default=50000
        Candidates only among the embedding's first ``vocabulary`` words (GloVe lists the most
        frequent first); None: all.
    min_similarity : float, default=0.84
        Least ``similarity(original, candidate)`` (0.840845057 is Jin et al.'s USE threshold).
    similarity : callable, optional
        ``similarity(original_tokens, candidate_tokens) -> float``; default
        :func:`mean_vector_similarity` over ``synonyms``.
    stop_words : collection of str, default=STOP_WORDS
    max_queries : int, optional
        Per-document budget of counted queries (the oracle refuses the rest).
    batch_size : int, default=1024
        Most documents per model call.
    """

    name = "textfooler"

    def __init__(self, synonyms: Embedding, *, k: int = 50, min_cosine: float = 0.5, vocabulary: int | None = 50000,
                 min_similarity: float = 0.84, similarity: Callable[[Sequence[str], Sequence[str]], float] | None = None,
                 stop_words: Any = STOP_WORDS, max_queries: int | None = None, batch_size: int = 1024):
        if not isinstance(synonyms, Embedding):
            raise TypeError(f"synonyms must be a scd.text.Embedding, got {type(synonyms).__name__}.")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        if not -1.0 <= min_cosine <= 1.0:
            raise ValueError(f"min_cosine must lie in [-1, 1], got {min_cosine}.")
        if vocabulary is not None and int(vocabulary) < 1:
            raise ValueError(f"vocabulary must be >= 1 or None, got {vocabulary}.")
        if max_queries is not None and int(max_queries) < 1:
            raise ValueError(f"max_queries must be >= 1 or None, got {max_queries}.")
        self.synonyms = synonyms
        self.k = int(k)
        self.min_cosine = float(min_cosine)
        self.vocabulary = None if vocabulary is None else int(vocabulary)
        self.min_similarity = float(min_similarity)
        self.similarity = similarity or mean_vector_similarity(synonyms)
        self.stop_words = frozenset(stop_words)
        self.max_queries = None if max_queries is None else int(max_queries)
        self.batch_size = int(batch_size)
        self._candidates: dict[str, list[str]] = {}

    def params(self) -> dict[str, Any]:
        """The settings, for records."""
        return {"k": self.k, "min_cosine": self.min_cosine, "vocabulary": self.vocabulary,
                "min_similarity": self.min_similarity, "synonyms": self.synonyms.name,
                "similarity": getattr(self.similarity, "__name__", type(self.similarity).__name__),
                "max_queries": self.max_queries}

    def candidates(self, word: str) -> list[str]:
        """The substitutes of ``word`` (none for stop words and tokens without a letter or digit)."""
        if word not in self._candidates:
            usable = word not in self.stop_words and any(c.isalnum() for c in word)
            found = self.synonyms.neighbours(word, self.k, self.min_cosine, self.vocabulary) if usable else []
            self._candidates[word] = [w for w, _ in found if w not in self.stop_words]
        return self._candidates[word]

    # ------------------------------------------------------------------ the run
    def attack(self, classify: Callable[[list[list[str]]], Any], documents: Sequence[Sequence[str]], y: Any, *,
               sample_ids: Any = None, n_classes: int = 2, output: str = "proba") -> TextAttackResult:
        """Attack ``classify`` on tokenised ``documents`` with true class indices ``y``.

        ``classify(list_of_token_lists)`` returns class probabilities ``(n, n_classes)``
        (``output="proba"``) or class indices (``output="labels"``: importance is then only
        whether a deletion changes the label, and no candidate is kept unless it flips it).
        ``sample_ids`` (default ``0..n-1``) name the documents in the query counts.
        """
        start = time.perf_counter()
        docs = [list(d) for d in documents]
        y = np.asarray(y, np.int64)
        if y.shape != (len(docs),) or np.any((y < 0) | (y >= n_classes)):
            raise ValueError(f"y must be {len(docs)} class indices in [0, {n_classes}).")
        ids = np.arange(len(docs)) if sample_ids is None else np.asarray(sample_ids, np.int64)
        if ids.shape != (len(docs),):
            raise ValueError(f"sample_ids must have one id per document ({len(docs)}), got shape {ids.shape}.")
        width = max([1, *map(len, docs)])
        vocab: list[str] = []
        index: dict[str, int] = {}

        def encode(tokens: Sequence[str]) -> np.ndarray:
            row = np.full(width, _PAD, np.float32)
            for j, t in enumerate(tokens):
                if t not in index:
                    index[t] = len(vocab)
                    vocab.append(t)
                row[j] = index[t]
            return row

        def model(rows: np.ndarray) -> Any:
            return classify([[vocab[int(i)] for i in row if i >= 0] for row in rows])

        model.__name__ = getattr(classify, "__name__", "classifier")
        oracle = Oracle(model, bounds=(_PAD, _MAX_ID), n_features=width, classes=n_classes, output=output,
                        batch_size=self.batch_size, budget=self.max_queries)
        n = len(docs)
        result = TextAttackResult(original=docs, adversarial=[list(d) for d in docs], labels=y,
                                  success=np.zeros(n, bool), already_adversarial=np.zeros(n, bool),
                                  queries=np.zeros(n, np.int64), confirm_queries=np.zeros(n, np.int64),
                                  substitutions=[[] for _ in docs], similarity=np.ones(n), sample_ids=ids,
                                  seconds=0.0, params=self.params())
        for i in range(n):
            self._one(oracle, encode, docs[i], int(y[i]), int(ids[i]), result, i)
        result.queries = oracle.queries(ids)
        result.seconds = time.perf_counter() - start
        return result

    def _one(self, oracle: Oracle, encode: Callable, tokens: list[str], label: int, sid: int,
             result: TextAttackResult, i: int) -> None:
        """Attack one document; writes row ``i`` of ``result``."""
        ask = oracle.scores if oracle.has_scores else self._one_hot(oracle)
        p0 = ask(encode(tokens)[None], ids=sid)[0]
        if not np.isfinite(p0).all():
            return  # the budget refused even the first query
        if int(np.argmax(p0)) != label:
            result.already_adversarial[i] = True
            return
        order = self._importance_order(ask, encode, tokens, label, sid, p0)
        current, current_score = list(tokens), p0[label]
        found = False
        for pos in order:
            if oracle.remaining(sid)[0] <= 0:
                break
            trials = []
            for c in self.candidates(tokens[pos]):
                doc = current[:pos] + [c] + current[pos + 1:]
                s = float(self.similarity(tokens, doc))
                if s >= self.min_similarity:
                    trials.append((c, doc, s))
            if not trials:
                continue
            scores = ask(np.stack([encode(d) for _, d, _ in trials]), ids=np.full(len(trials), sid))
            answered = np.isfinite(scores).all(axis=1)
            flipped = [j for j in range(len(trials)) if answered[j] and int(np.argmax(scores[j])) != label]
            if flipped:
                j = max(flipped, key=lambda j: (trials[j][2], -j))
                current = trials[j][1]
                result.substitutions[i].append((int(pos), tokens[pos], trials[j][0]))
                found = True
                break
            usable = np.flatnonzero(answered)
            if len(usable) == 0:
                break
            j = int(usable[np.argmin(scores[usable, label])]) if oracle.has_scores else None
            if j is not None and scores[j, label] < current_score:
                current, current_score = trials[j][1], scores[j, label]
                result.substitutions[i].append((int(pos), tokens[pos], trials[j][0]))
        if not found:
            result.substitutions[i] = []
            return
        confirmed = int(oracle.confirm(encode(current)[None], ids=sid)[0])
        result.confirm_queries[i] = 1
        if confirmed != label:
            result.success[i] = True
            result.adversarial[i] = current
            result.similarity[i] = float(self.similarity(tokens, current))
        else:
            result.substitutions[i] = []

    def _importance_order(self, ask: Callable, encode: Callable, tokens: list[str], label: int, sid: int,
                          p0: np.ndarray) -> list[int]:
        """Positions by decreasing deletion importance (ties: earlier first); one query per token."""
        if not tokens:
            return []
        rows = np.stack([encode(tokens[:j] + tokens[j + 1:]) for j in range(len(tokens))])
        p = ask(rows, ids=np.full(len(tokens), sid))
        answered = np.isfinite(p).all(axis=1)
        importance = np.full(len(tokens), -np.inf)
        new = np.argmax(np.where(answered[:, None], p, -np.inf), axis=1)
        gain = np.where(new != label, p[np.arange(len(p)), new] - p0[new], 0.0)
        importance[answered] = (p0[label] - p[answered, label] + gain[answered])
        return [int(j) for j in np.argsort(-importance, kind="stable") if answered[j]]

    @staticmethod
    def _one_hot(oracle: Oracle) -> Callable:
        """Scores from hard labels (label-only models): one-hot rows, NaN where refused."""

        def ask(x: np.ndarray, ids: Any) -> np.ndarray:
            labels = oracle.labels(x, ids=ids)
            out = np.full((len(labels), oracle.n_classes), np.nan)
            ok = labels >= 0
            out[ok] = np.eye(oracle.n_classes)[labels[ok]]
            return out

        return ask
