"""Attacks on any classifier through one query-counted target interface (see the issues for the attack suite)."""
