"""The grid search and the selection on validation.

Each grid cell is scored by validation accuracy alone (mean over the pruned rounds up to the grid's
`search_rounds`, and over the seeds); test accuracy is never read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gridsearch.grid import Grid
from gridsearch.runner import run_configs
from mdp_prune.errors import UserError
from mdp_prune.store import io, paths


def search(grid: Grid, out: Path, overrides: dict[str, Any] | None = None, preset: str | None = None,
           n_jobs: int = 2, backend: str = "loky", scheduler: str | None = None,
           progress: bool = True) -> pd.DataFrame:
    """Run every cell of the grid and write grid.csv (validation figures only)."""
    cells = grid.cells(overrides, preset)
    scored = grid.scored_rounds(cells[0].config)
    results = run_configs([c.config.replace(rounds=scored) for c in cells], paths.runs_dir(out), n_jobs, backend,
                          scheduler, progress, desc=f"grid {grid.name}")
    rows = []
    for cell, result in zip(cells, results, strict=True):
        run = Path(result["run_dir"])
        row = {"cell": cell.index, "seed": cell.seed, **cell.params,
               "run_dir": str(run.relative_to(out)), "status": result["status"], "error": result["error"]}
        if result["status"] == "done":
            row.update(_score(io.read_rounds(run), scored))
        rows.append(row)
    table = pd.DataFrame(rows)
    io.write_csv(out / paths.GRID_CSV, table)
    return table


def _score(rounds: pd.DataFrame, scored: int) -> dict[str, Any]:
    """A cell's validation figures over its first `scored` rounds."""
    if rounds.empty:
        return {}
    # A chosen cell extended by `compare` must score as it did when it was chosen.
    rounds = rounds[rounds["round"] <= scored]
    pruned = rounds[rounds["round"] > 0]
    return {"val_accuracy": float((pruned if len(pruned) else rounds)["val_accuracy"].mean()),
            "final_val_accuracy": float(rounds["val_accuracy"].iloc[-1]),
            "weights_remaining": float(rounds["weights_remaining"].iloc[-1]),
            "rounds_done": int(rounds["round"].iloc[-1])}


def select(table: pd.DataFrame, params: list[str]) -> dict[str, Any]:
    """The combination with the best mean validation accuracy over seeds (only combinations whose every
    seed finished); ties go to the first in grid order. Test accuracy plays no part."""
    done = table[table["status"] == "done"]
    complete = done.groupby(params, sort=False).filter(
        lambda g: len(g) == int((table[params] == g[params].iloc[0]).all(axis=1).sum())) if params else done
    if complete.empty:
        raise UserError("no grid combination finished on every seed; see the error column of grid.csv")
    if not params:
        return {}
    scores = complete.groupby(params, sort=False)["val_accuracy"].mean()
    best = scores.idxmax()
    best = best if isinstance(best, tuple) else (best,)
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(params, best, strict=True)}
