"""Turning continuous observations into table rows.

A Discretizer buckets one scalar; a StateSpace combines several bucket indices into one row index, so the
table itself stays a plain 2-D array whatever the state is made of.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Discretizer:
    """Buckets a scalar by fixed edges: bucket i holds [edges[i-1], edges[i]) (np.digitize semantics).

    Values exactly on an edge go to the upper bucket, so edges read as "at least this much".
    """

    def __init__(self, edges: Sequence[float], name: str = "") -> None:
        arr = np.asarray(edges, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"edges must be a non-empty 1-D sequence, got {edges!r}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"edges must be finite, got {edges!r}")
        if np.any(np.diff(arr) <= 0):
            raise ValueError(f"edges must be strictly increasing, got {edges!r}")
        self.edges = arr
        self.name = name

    @property
    def n_buckets(self) -> int:
        return self.edges.size + 1

    def __call__(self, value: float) -> int:
        value = float(value)
        if np.isnan(value):
            raise ValueError(f"cannot discretize NaN{f' for {self.name}' if self.name else ''}")
        return int(np.digitize(value, self.edges))

    def label(self, i: int) -> str:
        """Human-readable bucket, for tables of visits and greedy actions in reports."""
        if not 0 <= i < self.n_buckets:
            raise ValueError(f"bucket {i} out of range [0, {self.n_buckets})")
        e = [f"{x:g}" for x in self.edges]
        if i == 0:
            return f"<{e[0]}"
        if i == self.n_buckets - 1:
            return f">={e[-1]}"
        return f"[{e[i - 1]}, {e[i]})"

    def labels(self) -> list[str]:
        return [self.label(i) for i in range(self.n_buckets)]

    def __repr__(self) -> str:
        return f"Discretizer(edges={self.edges.tolist()}, name={self.name!r})"


class StateSpace:
    """Row-major bijection between per-dimension indices and one flat state index."""

    def __init__(self, sizes: Sequence[int]) -> None:
        sizes = tuple(sizes)
        if not sizes:
            raise ValueError("sizes must have at least one dimension")
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
                raise ValueError(f"sizes must be positive integers, got {sizes!r}")
        self.sizes = tuple(int(n) for n in sizes)

    @property
    def n_states(self) -> int:
        return int(np.prod(self.sizes))

    def index(self, indices: Sequence[int]) -> int:
        indices = tuple(int(i) for i in indices)
        if len(indices) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} indices, got {len(indices)}: {indices!r}")
        for i, n in zip(indices, self.sizes, strict=True):
            if not 0 <= i < n:
                raise ValueError(f"indices {indices!r} out of range for sizes {self.sizes!r}")
        return int(np.ravel_multi_index(indices, self.sizes))

    def unravel(self, state: int) -> tuple[int, ...]:
        if not 0 <= state < self.n_states:
            raise ValueError(f"state {state} out of range [0, {self.n_states})")
        return tuple(int(i) for i in np.unravel_index(int(state), self.sizes))

    def __repr__(self) -> str:
        return f"StateSpace(sizes={self.sizes!r})"
