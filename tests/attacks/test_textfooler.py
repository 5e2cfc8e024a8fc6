"""TextFooler on a tiny vocabulary against a known classifier: the substitution it must find and
its exact query count."""
from __future__ import annotations

import numpy as np
import pytest

from attacks.textfooler import STOP_WORDS, TextFooler
from scd.text import Embedding

# 2-d vectors: "fine" and "great" are good's neighbours (cosine 0.99 and 0.9), "very" is one too
# but a stop word, "bad" is opposite (cosine -1), "movie" orthogonal.
_WORDS = {"good": (1, 0), "fine": (0.99, 0.141), "great": (0.9, 0.436), "very": (0.98, 0.199), "bad": (-1, 0),
          "movie": (0, 1), "the": (0.1, 0.1), "is": (0.1, -0.1)}
_LEXICON = {"good": 3.0, "great": 3.0, "bad": -3.0}


def _embedding():
    return Embedding(list(_WORDS), np.array(list(_WORDS.values()), float), name="tiny")


class Lexicon:
    """p(positive) = sigmoid(sum of word scores - 0.5); counts every document it is asked about."""

    def __init__(self):
        self.rows = 0

    def __call__(self, docs):
        self.rows += len(docs)
        score = np.array([sum(_LEXICON.get(w, 0.0) for w in d) - 0.5 for d in docs])
        p = 1 / (1 + np.exp(-score))
        return np.stack([1 - p, p], axis=1)


def test_finds_the_expected_substitution_with_exact_queries():
    assert "very" in STOP_WORDS and "good" not in STOP_WORDS
    model = Lexicon()
    doc = ["the", "movie", "is", "good"]
    result = TextFooler(_embedding(), min_similarity=0.0).attack(model, [doc], [1], sample_ids=[5])
    # 1 query for the clean label, 4 deletions (good matters most), then good's two candidates
    # (fine, great; very is a stop word, bad too far) in one batch: fine flips the label.
    assert result.success.tolist() == [True]
    assert result.adversarial == [["the", "movie", "is", "fine"]]
    assert result.substitutions == [[(3, "good", "fine")]]
    assert result.queries.tolist() == [1 + 4 + 2]
    assert result.confirm_queries.tolist() == [1]
    assert model.rows == 1 + 4 + 2 + 1  # what the classifier itself saw: the counted queries and the confirmation
    # a label-only model: importance is whether a deletion flips the label (only "good"'s does)
    labels = TextFooler(_embedding(), min_similarity=0.0).attack(lambda d: Lexicon()(d).argmax(axis=1), [doc], [1],
                                                                 output="labels")
    assert labels.substitutions == [[(3, "good", "fine")]] and labels.queries.tolist() == [7]


def test_user_similarity_scorer_and_budget():
    seen = []

    def strict(original, candidate):
        seen.append((tuple(original), tuple(candidate)))
        return 0.0 if "fine" in candidate else 1.0  # forbids the flipping substitute

    result = TextFooler(_embedding(), similarity=strict).attack(Lexicon(), [["the", "movie", "is", "good"]], [1])
    assert not result.success[0] and result.adversarial[0] == ["the", "movie", "is", "good"]
    assert result.queries.tolist() == [1 + 4 + 1]  # only "great" is asked about (it keeps the label)
    assert {c for _, c in seen} >= {("the", "movie", "is", "fine"), ("the", "movie", "is", "great")}
    capped = TextFooler(_embedding(), min_similarity=0.0, max_queries=5).attack(Lexicon(), [["the", "movie", "is", "good"]], [1])
    assert not capped.success[0] and capped.queries.tolist() == [5]


def test_misclassified_document_is_not_attacked():
    model = Lexicon()
    result = TextFooler(_embedding()).attack(model, [["the", "movie"]], [1])
    assert result.already_adversarial.tolist() == [True] and not result.success[0]
    assert result.queries.tolist() == [1] and model.rows == 1


def test_rejects_bad_labels():
    with pytest.raises(ValueError, match="class indices"):
        TextFooler(_embedding()).attack(Lexicon(), [["good"]], [2])
