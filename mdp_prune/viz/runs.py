"""Readers of one run folder's tables (the layout `mdp_prune.store.paths` names), for the figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdp_prune.store import io, paths
from qtable import Discretizer


def read_table(run: str | Path, name: str) -> pd.DataFrame | None:
    """A run's CSV table (e.g. `paths.QLEARNING_LOG`), or None when the run has none."""
    path = Path(run) / name
    return pd.read_csv(path) if path.is_file() and path.stat().st_size > 0 else None


def layer_names(run: str | Path) -> list[str]:
    """The run's prunable layers in order, from the `remaining:<layer>` columns of rounds.csv."""
    table = read_table(run, paths.ROUNDS)
    return [] if table is None else [c.split(":", 1)[1] for c in table.columns if c.startswith("remaining:")]


def qtable_snapshot(run: str | Path, round_: int | None = None) -> dict[str, Any]:
    """The keyword arguments of `qtable_heatmaps` and `coverage` for a run's Q-table after `round_` (default: the
    last saved round), read from its Q-table snapshots and config.json."""
    run = Path(run)
    saved = paths.qtable_rounds(run)
    if not saved:
        raise FileNotFoundError(f"{run} has no Q-table snapshots ({paths.qtable_file(run, 0).parent.name}/): "
                                "is it a qlearning run?")
    round_ = saved[-1] if round_ is None else int(round_)
    with np.load(paths.qtable_file(run, round_)) as npz:
        values, visits = np.array(npz["values"]), np.array(npz["visits"])
    # read_config, not the raw JSON: a config.json written before state_history existed reads as its value then.
    config = io.read_config(run)
    acc = Discretizer(config.qlearning.accuracy_edges)
    sparsity = Discretizer(config.qlearning.sparsity_edges)
    actions = list(config.prune.actions)
    layers = layer_names(run)

    def sizes(n: int) -> tuple[int, ...]:
        return config.qlearning.state_sizes(n, len(actions))

    # The number of states grows with the number of layers, so at most one count fits the table.
    n_layers = next((n for n in range(1, 1000) if math.prod(sizes(n)) == values.shape[0]), 0)
    if n_layers == 0:
        raise ValueError(f"{paths.qtable_file(run, round_)}: {values.shape[0]} states fit no number of layers of "
                         f"the run's state layout")
    if len(layers) != n_layers:
        layers = [f"layer {i}" for i in range(n_layers)]
    values, visits = _without_history(values, visits, sizes(n_layers))
    return {"values": values, "visits": visits, "space_sizes": (n_layers + 1, acc.n_buckets, sparsity.n_buckets),
            "actions": actions, "accuracy_labels": acc.labels(),
            "sparsity_labels": sparsity.labels(), "layers": layers, "round_": round_}


def _without_history(values: np.ndarray, visits: np.ndarray, sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A table whose states keep previous actions (`state_history` > 0), folded onto (layer, accuracy, sparsity)
    for the heatmaps: visits summed, Q averaged over the previous actions weighted by visits (unvisited: plain
    mean)."""
    if len(sizes) == 3:
        return values, visits
    n_actions, cells = values.shape[1], math.prod(sizes[:3])
    q = values.reshape(cells, -1, n_actions)
    n = visits.reshape(cells, -1, n_actions)
    total = n.sum(1)
    weighted = np.where(total > 0, (q * n).sum(1) / np.maximum(total, 1), q.mean(1))
    return weighted, total
