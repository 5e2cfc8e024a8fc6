"""Fixtures shared by the test packages (tests/scd, tests/attacks, tests/eval)."""

import pytest

from eval.datasets import load_dataset


@pytest.fixture(scope="session")
def digits():
    """sklearn's digits, 1 vs 8, as the package loads it (do not mutate)."""
    return load_dataset("digits")
