"""Action selection from one row of a Q-table."""

from __future__ import annotations

import numpy as np


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Random action with probability epsilon, else greedy.

    Ties among maxima are broken at random: with a zero-initialised table every action starts tied, and a
    fixed tie-break would keep trying the same one.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    q_row = np.asarray(q_row)
    # Always draw the coin, so the random stream does not depend on the value of epsilon.
    if rng.random() < epsilon:
        return int(rng.integers(q_row.size))
    return int(rng.choice(np.flatnonzero(q_row == q_row.max())))


def greedy(q_row: np.ndarray) -> int:
    """Deterministic argmax (lowest index on ties), for evaluation and committed plans."""
    return int(np.argmax(q_row))
