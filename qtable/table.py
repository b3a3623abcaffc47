"""The Q-table: a dense [states, actions] array plus visit counts.

Visit counts live next to the values because convergence is reported, not assumed: a value that was
updated twice means little, and the counts travel with the table when it is saved.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class QTable:
    """Action values Q(s, a) and visit counts N(s, a) for a finite MDP."""

    def __init__(self, n_states: int, n_actions: int, initial_value: float = 0.0) -> None:
        n_states, n_actions = _positive_int(n_states, "n_states"), _positive_int(n_actions, "n_actions")
        if not np.isfinite(initial_value):
            raise ValueError(f"initial_value must be finite, got {initial_value!r}")
        self.n_states = n_states
        self.n_actions = n_actions
        self.initial_value = float(initial_value)
        self.values = np.full((n_states, n_actions), self.initial_value, dtype=np.float64)
        self.visits = np.zeros((n_states, n_actions), dtype=np.int64)

    def __repr__(self) -> str:
        updates = int(self.visits.sum())
        return f"QTable(n_states={self.n_states}, n_actions={self.n_actions}, updates={updates})"

    # -- learning -------------------------------------------------------------------------------------------

    def update(
        self,
        state: int,
        action: int,
        reward: float,
        next_state: int | None,
        terminal: bool,
        alpha: float,
        gamma: float,
    ) -> float:
        """One Q-learning backup; returns the signed change so callers can track convergence (|ΔQ|)."""
        s, a = self._check_state(state), self._check_action(action)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        target = float(reward)
        if not terminal:
            if next_state is None:
                raise ValueError("next_state may only be None when terminal=True")
            target += gamma * float(self.values[self._check_state(next_state)].max())
        delta = alpha * (target - float(self.values[s, a]))
        self.values[s, a] += delta
        self.visits[s, a] += 1
        return delta

    # -- reading the policy ---------------------------------------------------------------------------------

    def greedy_action(self, state: int, rng: np.random.Generator | None = None) -> int:
        """argmax_a Q(s, a); an rng breaks ties at random so untried equal actions all get a chance."""
        row = self.values[self._check_state(state)]
        if rng is None:
            return int(np.argmax(row))
        return int(rng.choice(np.flatnonzero(row == row.max())))

    def greedy_policy(self) -> np.ndarray:
        """Deterministic greedy policy (lowest index on ties), so two equal tables give the same plan."""
        return np.argmax(self.values, axis=1)

    # -- persistence ----------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a compressed .npz (a large table is mostly untouched initial values); via a temp file and
        os.replace so a crash never leaves a half-written table. `load` reads compressed and plain files."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(
                    f,
                    values=self.values,
                    visits=self.visits,
                    initial_value=np.float64(self.initial_value),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QTable:
        with np.load(path) as data:
            values, visits = data["values"], data["visits"]
            if values.ndim != 2 or values.shape != visits.shape:
                raise ValueError(f"{path}: values {values.shape} and visits {visits.shape} do not match")
            table = cls(values.shape[0], values.shape[1], float(data["initial_value"]))
            table.values[:] = values
            table.visits[:] = visits
        return table

    # -- validation -----------------------------------------------------------------------------------------

    def _check_state(self, state: int) -> int:
        return _index(state, self.n_states, "state")

    def _check_action(self, action: int) -> int:
        return _index(action, self.n_actions, "action")


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _index(value: int, size: int, name: str) -> int:
    # Negative indices would silently wrap around in numpy; an out-of-range state is always a bug upstream.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} {value} out of range [0, {size})")
    return int(value)
