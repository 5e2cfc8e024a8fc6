"""Where the tests find the repository and the shared data."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (where pyproject.toml is)."""
SHARED_DATA = ROOT.parent / "shared" / "data"
"""The real data beside the repository (CIFAR-10 classes 0/1, MNIST, MR)."""
