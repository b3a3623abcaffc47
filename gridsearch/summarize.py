"""`python -m gridsearch summarize RUN_DIR...`: a markdown table of runs grouped by method, mean ± std over seeds.

For each requested round: weights remaining, test accuracy and early-stopping iteration of every method, and of
the random-reinitialisation / random-pruning controls when the runs have them (`controls/<kind>.csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gridsearch.compare import _markdown, _pm
from mdp_prune import paths, store
from mdp_prune.config import ConfigError, RunConfig
from mdp_prune.controls import KINDS


def method_name(config: RunConfig) -> str:
    if config.prune.planner == "qlearning":
        return f"qlearning ({config.qlearning.budget})"
    return config.prune.planner


def collect(run_dirs: Sequence[Path]) -> pd.DataFrame:
    parts = []
    for run in run_dirs:
        if not paths.is_run_dir(run):
            raise ConfigError(f"{run} is not a run folder")
        config = RunConfig.from_dict(store.read_json(run / paths.CONFIG))
        seed, method = config.train.seed, method_name(config)
        parts.append(store.read_csv(run / paths.ROUNDS).assign(method=method, seed=seed))
        for kind in KINDS:
            control = store.read_csv(paths.control_file(run, kind))
            if not control.empty:
                parts.append(control.assign(method=f"{method} {kind}", seed=seed))
    return pd.concat(parts, ignore_index=True)


def summarize(run_dirs: Sequence[Path], rounds: Sequence[int] | None = None) -> str:
    frame = collect(run_dirs)
    rounds = sorted(frame["round"].unique()) if not rounds else rounds
    rows = []
    for method, g in frame.groupby("method", sort=False):
        for r in rounds:
            sub = g[g["round"] == r]
            if sub.empty:
                continue
            rows.append({"method": method, "round": r, "seeds": len(sub),
                         "weights remaining %": f"{sub['weights_remaining'].mean() * 100:.1f}",
                         "test accuracy %": _pm(sub["test_accuracy"]),
                         "early-stop iteration": _pm(sub["early_stop_iteration"], 1, 0)})
    return _markdown(pd.DataFrame(rows))
