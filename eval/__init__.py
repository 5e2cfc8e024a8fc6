"""Evaluation utilities: datasets, I/O helpers."""
