"""Grid files and their expansion, after scikit-learn's `ParameterGrid` (sorted keys, last key fastest).

A grid is YAML or JSON with three keys:
    base:   {dotted.config.name: value}        fixed settings of every cell
    params: {dotted.config.name: [values]}     the grid
    seeds:  [0, 1, 2]                           every combination is run with every seed
    search_rounds: 8                            optional: cells run and are scored on their first 8 rounds
                                                only; `compare` extends the chosen ones to `rounds`
Named grids (`small`, `paper`) live in gridsearch/grids/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sklearn.model_selection import ParameterGrid

from mdp_prune.config import PRESETS, RunConfig
from mdp_prune.errors import UserError
from mdp_prune.experiments.imp import check_names

GRIDS_DIR = Path(__file__).parent / "grids"


@dataclass(frozen=True)
class Cell:
    index: int
    params: dict[str, Any]
    seed: int
    config: RunConfig = field(repr=False)


@dataclass(frozen=True)
class Grid:
    name: str
    base: dict[str, Any]
    params: dict[str, list[Any]]
    seeds: list[int]
    search_rounds: int | None = None

    def combinations(self) -> list[dict[str, Any]]:
        return list(ParameterGrid(self.params)) if self.params else [{}]

    def cells(self, overrides: dict[str, Any] | None = None, preset: str | None = None) -> list[Cell]:
        """Every (combination, seed) as a validated configuration; `preset`, then the grid's base, then
        `overrides` (the command line's), then the combination set its fields. Cells carry the full `rounds`;
        the search runs them for `scored_rounds` only."""
        base = {**(PRESETS[preset] if preset else {}), **self.base, **(overrides or {})}
        out = []
        for combo in self.combinations():
            for seed in self.seeds:
                config = check_names(RunConfig().replace(**{**base, **combo, "train.seed": seed}).validate())
                out.append(Cell(len(out), combo, seed, config))
        return out

    def scored_rounds(self, config: RunConfig) -> int:
        """Rounds a cell is run and scored on: `search_rounds`, at most the comparison's `rounds`."""
        return config.rounds if self.search_rounds is None else min(self.search_rounds, config.rounds)


def builtin_grids() -> list[str]:
    return sorted(p.stem for p in GRIDS_DIR.glob("*.yaml"))


def load_grid(name_or_path: str) -> Grid:
    path = GRIDS_DIR / f"{name_or_path}.yaml" if name_or_path in builtin_grids() else Path(name_or_path)
    if not path.is_file():
        raise UserError(f"no grid {name_or_path!r}: give a YAML/JSON file or one of {', '.join(builtin_grids())}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}  # JSON is YAML
    except yaml.YAMLError as e:
        raise UserError(f"cannot parse grid {path}: {str(e).splitlines()[0]}") from None
    unknown = set(raw) - {"base", "params", "seeds", "search_rounds"}
    if unknown or not isinstance(raw.get("params", {}), dict):
        raise UserError(f"grid {path} must have only base, params, seeds and search_rounds (got {sorted(raw)})")
    params = {k: v if isinstance(v, list) else [v] for k, v in (raw.get("params") or {}).items()}
    if any(len(v) == 0 for v in params.values()):
        raise UserError(f"grid {path} has a parameter with no values")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise UserError(f"grid {path}: seeds must be a non-empty list of integers")
    search_rounds = raw.get("search_rounds")
    if search_rounds is not None and (not isinstance(search_rounds, int) or search_rounds < 1):
        raise UserError(f"grid {path}: search_rounds must be a positive integer, got {search_rounds!r}")
    grid = Grid(path.stem, dict(raw.get("base") or {}), params, seeds, search_rounds)
    grid.cells()  # validate every field name and value now, with one clear error
    return grid
