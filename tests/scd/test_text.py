"""scd.text: tokenisation, word-vector files and their errors, averaged vectors and neighbours."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from scd.text import Embedding, read_vectors, tokenize


def test_tokenize_splits_clitics_and_punctuation():
    assert tokenize("Don't stop, it's 21st-century!") == ["do", "n't", "stop", ",", "it", "'s", "21st-century", "!"]
    assert tokenize("  ") == []


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_glove_and_word2vec_files(tmp_path):
    glove = read_vectors(_write(tmp_path / "g.txt", "the 0.1 0.2 0.3\ncat -1 2.5 1e-3 \n"))
    assert glove.words == ["the", "cat"] and glove.dim == 3
    np.testing.assert_array_equal(glove.vectors, np.array([[0.1, 0.2, 0.3], [-1, 2.5, 1e-3]], np.float32))
    w2v = read_vectors(_write(tmp_path / "w.txt", "2 2\nthe 1 0\ncat 0 1\n"))
    assert w2v.words == ["the", "cat"] and w2v.dim == 2
    assert read_vectors(tmp_path / "w.txt", limit=1).words == ["the"]


@pytest.mark.parametrize("text, message", [
    ("the 0.1 0.2\ncat 0.3 x\n", r"g\.txt:2: not a word followed by numbers"),
    ("the 0.1 0.2\nthe 0.3 0.4\n", r"g\.txt:2: the word 'the' appears twice \(first on line 1\)"),
    ("the 0.1 0.2\ncat 0.3\n", r"g\.txt:2: the vector of 'cat' has 1 values, expected 2"),
    ("3 2\nthe 0.1 0.2 0.5\n", r"g\.txt:2: the vector of 'the' has 3 values, expected 2"),
    ("3 2\nthe 0.1 0.2\n", "announces 3 words, the file holds 1"),
    ("the 0.1 nan\n", "is not finite"),
    ("the\n", "a word with no vector"),
    ("", "no word vectors"),
])
def test_bad_vector_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_vectors(_write(tmp_path / "g.txt", text))


def test_missing_vector_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="embedding file not found"):
        read_vectors(tmp_path / "none.txt")


def test_embedding_checks_its_words():
    with pytest.raises(ValueError, match="'a' appears twice"):
        Embedding(["a", "b", "a"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="one vector per word"):
        Embedding(["a"], np.zeros((2, 2)))


def test_mean_stack_and_neighbours_against_brute_force():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    emb = Embedding(words, rng.normal(size=(40, 5)))
    docs = [["w1", "w2", "unknown", "w1"], [], ["unknown"]]
    mean = emb.mean(docs)
    np.testing.assert_allclose(mean[0], emb.vectors[[1, 2, 1]].mean(axis=0), rtol=1e-6)
    assert not mean[1:].any()
    stacked = emb.stack(docs, 3).reshape(3, 3, 5)
    np.testing.assert_array_equal(stacked[0], np.stack([emb.vectors[1], emb.vectors[2], np.zeros(5)]))
    cos = cosine_similarity(emb.vectors[:30], emb.vectors[7:8])[:, 0]  # scikit-learn, not our code
    cos[7] = -np.inf
    expected = [f"w{j}" for j in np.argsort(-cos, kind="stable")[:6] if cos[j] >= 0.1]
    got = emb.neighbours("w7", 6, min_cosine=0.1, vocabulary=30)
    assert [w for w, _ in got] == expected
    np.testing.assert_allclose([c for _, c in got], cos[[int(w[1:]) for w in expected]], rtol=1e-5)
    assert emb.neighbours("unknown", 5) == []
