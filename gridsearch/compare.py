"""`compare`: the grid search, the selection on validation, and the comparison against every baseline.

Protocol: the grid's Q-learning cells are scored on validation only (`selection`); the chosen configuration
then meets `lt`, `global`, `random`, `lamp` and `erk`, plus the random-reinitialisation control of its tickets
and the same configuration in free mode, all on the same seeds, data, training code and budgets. Test accuracy
is read only for this final comparison (`report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joblib import Parallel, delayed

from gridsearch.grid import Grid
from gridsearch.report import write_report
from gridsearch.results import comparison_frame
from gridsearch.runner import run_configs
from gridsearch.selection import search, select
from mdp_prune.config import QLearningConfig, RunConfig
from mdp_prune.engine import pruning
from mdp_prune.engine.models import layer_shapes
from mdp_prune.errors import UserError
from mdp_prune.experiments.controls import run_control
from mdp_prune.store import io, paths

BASELINES = ("lt", "global", "random", "lamp", "erk")


def compare(grid: Grid, out: Path, overrides: dict[str, Any] | None = None, preset: str | None = None,
            n_jobs: int = 2, backend: str = "loky", scheduler: str | None = None, progress: bool = True,
            baselines: tuple[str, ...] = BASELINES) -> Path:
    """Grid search, selection, all methods on the grid's seeds, report. Returns the report's path."""
    table = search(grid, out, overrides, preset, n_jobs, backend, scheduler, progress)
    best = select(table, list(grid.params))
    chosen = {c.seed: c.config for c in grid.cells(overrides, preset)
              if all(c.params.get(k) == v for k, v in best.items())}
    config = next(iter(chosen.values()))
    target = lt_target(config)
    methods = method_configs(chosen, target, baselines)
    _run_methods(methods, out, n_jobs, backend, scheduler, progress)
    runs = paths.runs_dir(out)
    Parallel(n_jobs=n_jobs)(delayed(run_control)(paths.run_dir(runs, c), "reinit", None, False)
                            for c in chosen.values())
    frame = comparison_frame(out, {m: {s: paths.run_dir(runs, c) for s, c in by_seed.items()}
                                   for m, by_seed in methods.items()})
    io.write_csv(out / paths.COMPARISON_CSV, frame)
    return write_report(out, frame, table, best, grid, config, target)


def lt_target(config: RunConfig) -> float:
    """Fraction of weights the lt ladder keeps after `config.rounds` rounds: where free mode stops."""
    ladder = pruning.lt_ladder(layer_shapes(config.train), config.prune, config.rounds)
    return sum(ladder[-1].values()) / sum(ladder[0].values())


def method_configs(chosen: dict[int, RunConfig], target: float,
                   baselines: tuple[str, ...]) -> dict[str, dict[int, RunConfig]]:
    """{method: {seed: configuration}}: the chosen Q-learning configuration in budget and free mode, and every
    baseline with the same training and pruning settings."""
    methods: dict[str, dict[int, RunConfig]] = {"qlearning": chosen}
    methods["qlearning-free"] = {s: c.replace(**{"qlearning.budget": "free", "prune.target_remaining": target})
                                 for s, c in chosen.items()}
    for planner in baselines:
        # Baselines keep the training and pruning settings and drop the Q-learning ones (not theirs to hash).
        methods[planner] = {s: RunConfig(train=c.train, prune=c.prune, qlearning=QLearningConfig(), rounds=c.rounds,
                                         data_dir=c.data_dir, device=c.device).replace(**{"prune.planner": planner})
                            for s, c in chosen.items()}
    return methods


def _run_methods(methods: dict[str, dict[int, RunConfig]], out: Path, n_jobs: int, backend: str,
                 scheduler: str | None, progress: bool) -> None:
    flat = [(m, s, c) for m, by_seed in methods.items() for s, c in by_seed.items()]
    results = run_configs([c for _, _, c in flat], paths.runs_dir(out), n_jobs, backend, scheduler, progress,
                          desc="comparison")
    failed = [f"{m} seed {s}: {r['error']}" for (m, s, _), r in zip(flat, results, strict=True)
              if r["status"] != "done"]
    if failed:
        raise UserError("comparison runs failed: " + "; ".join(failed))
