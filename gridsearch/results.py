"""The comparison folder as tables: what `compare` writes (comparison.csv) and what the notebooks read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mdp_prune.store import io, paths

COMPARISON_COLUMNS = ("method", "seed", *io.ROUND_COLUMNS, "run_dir")
# What a comparison.csv needs for the figures; older ones lack the later columns (e.g. proxy_iterations).
REQUIRED_COLUMNS = ("method", "seed", "round", "weights_remaining", "test_accuracy", "val_accuracy",
                    "early_stop_iteration", "run_dir")


def comparison_frame(out: Path, runs: dict[str, dict[int, Path]]) -> pd.DataFrame:
    """Long table of every method's rounds (and the reinit control of the chosen Q-learning tickets)."""
    parts = []
    for method, by_seed in runs.items():
        for seed, run in by_seed.items():
            rows = _round_columns(io.read_rounds(run)).assign(
                method=method, seed=seed, run_dir=str(run.relative_to(out)))
            parts.append(rows)
            if method == "qlearning":
                control = io.read_csv(paths.control_file(run, "reinit"))
                if not control.empty:
                    dense = rows[rows["round"] == 0]
                    parts.append(pd.concat([dense, _round_columns(control).assign(
                        method="reinit", seed=seed, run_dir=str(run.relative_to(out)))]).assign(method="reinit"))
    frame = pd.concat(parts, ignore_index=True)
    return frame[list(COMPARISON_COLUMNS)]


def _round_columns(rounds: pd.DataFrame) -> pd.DataFrame:
    # Runs and controls written before the planner's proxies could retrain have no proxy_iterations: they spent none.
    return rounds.reindex(columns=io.ROUND_COLUMNS, fill_value=0)


def load_comparison(results_dir: str | Path) -> dict[str, Any]:
    """Read a comparison folder (what `make compare-baseline` writes, default `results/compare/`).

    Returns a dict: `root` (Path), `comparison` (DataFrame of comparison.csv), `grid` (DataFrame of grid.csv, or
    None), `runs` ({method: {seed: run folder}}, folders that exist), `dense_accuracy` (mean test accuracy of the
    dense round 0 over seeds, or None), `report` and `figures` (Paths, or None when absent).
    """
    root = Path(results_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist: run `make compare-baseline` first, "
                                "or point RESULTS at a comparison folder")
    table = root / paths.COMPARISON_CSV
    if not table.is_file():
        raise FileNotFoundError(f"{root} is not a comparison folder (no {paths.COMPARISON_CSV}): expected the output "
                                "of `make compare-baseline` (default results/compare)")
    comparison = pd.read_csv(table)
    missing = [c for c in REQUIRED_COLUMNS if c not in comparison.columns]
    if missing:
        raise ValueError(f"{table} lacks the column(s) {', '.join(missing)}")
    grid = pd.read_csv(root / paths.GRID_CSV) if (root / paths.GRID_CSV).is_file() else None

    runs: dict[str, dict[int, Path]] = {}
    for (method, seed), group in comparison.groupby(["method", "seed"], sort=True):
        for rel in group["run_dir"].dropna().unique():
            run = root / str(rel)
            if run.is_dir():
                runs.setdefault(str(method), {})[int(seed)] = run
                break
    dense = comparison[comparison["round"] == 0].drop_duplicates("seed")["test_accuracy"].dropna()
    return {
        "root": root,
        "comparison": comparison,
        "grid": grid,
        "runs": runs,
        "dense_accuracy": float(dense.mean()) if len(dense) else None,
        "report": root / paths.REPORT if (root / paths.REPORT).is_file() else None,
        "figures": root / paths.FIGURES if (root / paths.FIGURES).is_dir() else None,
    }


def find_run(data: dict[str, Any], method: str = "qlearning", seed: int = 0) -> Path | None:
    """The run folder of `method` for `seed` from `load_comparison`'s result; else its first seed; else the first
    `<method>_<hash>` run folder under the comparison's runs folder; else None."""
    by_seed = data.get("runs", {}).get(method, {})
    if seed in by_seed:
        return by_seed[seed]
    if by_seed:
        return by_seed[min(by_seed)]
    runs = paths.runs_dir(Path(data["root"]))
    found = sorted(p for p in runs.glob(f"{method}_*") if paths.is_run_dir(p)) if runs.is_dir() else []
    return found[0] if found else None
