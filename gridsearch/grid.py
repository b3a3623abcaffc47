"""Grid files and their expansion, after scikit-learn's `ParameterGrid` (sorted keys, last key fastest).

A grid is YAML or JSON with these keys:
    base:   {dotted.config.name: value}        fixed settings of every cell
    params: {dotted.config.name: [values]}     the grid
    seeds:  [0, 1, 2]                           every combination is run with every seed
    search_rounds: 8                            optional: cells run and are scored on their first 8 rounds
                                                only; `compare` extends the chosen ones to `rounds`
    extends: small                              optional: start from another grid (a built-in name, or a
                                                file relative to this one's folder) and change it
Under `extends`, this file's `base` and `params` entries replace the other grid's entry of the same key (a key
fixed in `base` here is no longer searched), and its `seeds` and `search_rounds`, where given, replace the other's.
Named grids are the YAML files of gridsearch/grids/ (`gridsearch.grids.builtin_grids`).

A grid is checked whole when it is loaded, before any cell runs: every key and value against the same per-field
rules as the command line (`mdp_prune.config.RULES`), then every cell's configuration; a mistake is one line
naming the file and the key. Numbers that YAML 1.1 reads as strings (`1e-3`) are taken as numbers, and an
integral float (`64.0`) for an integer field as that integer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sklearn.model_selection import ParameterGrid

from gridsearch.grids import GRIDS_DIR, builtin_grids
from mdp_prune.config import PRESETS, RULES, RunConfig, parse_value
from mdp_prune.errors import UserError
from mdp_prune.experiments.imp import check_names
from mdp_prune.store import paths


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
    path: str = ""  # the file it was read from, for messages

    def combinations(self) -> list[dict[str, Any]]:
        return list(ParameterGrid(self.params)) if self.params else [{}]

    def cells(self, overrides: dict[str, Any] | None = None, preset: str | None = None) -> list[Cell]:
        """Every (combination, seed) as a validated configuration; `preset`, then the grid's base, then
        `overrides` (the command line's), then the combination set its fields. Cells carry the full `rounds`;
        the search runs them for `scored_rounds` only. Two cells that would share a run folder are an error."""
        base = {**(PRESETS[preset] if preset else {}), **self.base, **(overrides or {})}
        out: list[Cell] = []
        folders: dict[str, Cell] = {}
        for combo in self.combinations():
            for seed in self.seeds:
                cell = Cell(len(out), combo, seed, self._config({**base, **combo, "train.seed": seed}, combo, seed))
                folder = paths.run_dir("", cell.config).name
                if folder in folders:
                    first = folders[folder]
                    raise UserError(
                        f"grid {self.path or self.name}: cells {_label(first.params, first.seed)} and "
                        f"{_label(combo, seed)} are the same run ({folder}): a repeated value or seed, or a "
                        f"parameter that planner {cell.config.prune.planner} does not read")
                folders[folder] = cell
                out.append(cell)
        return out

    def _config(self, values: dict[str, Any], combo: dict[str, Any], seed: int) -> RunConfig:
        try:
            return check_names(RunConfig().replace(**values).validate())
        except UserError as e:
            raise UserError(f"grid {self.path or self.name}, cell {_label(combo, seed)}: {e}") from None

    def scored_rounds(self, config: RunConfig) -> int:
        """Rounds a cell is run and scored on: `search_rounds`, at most the comparison's `rounds`."""
        return config.rounds if self.search_rounds is None else min(self.search_rounds, config.rounds)


KEYS = ("base", "params", "seeds", "search_rounds", "extends")


def load_grid(name_or_path: str) -> Grid:
    """A grid by built-in name or file, checked whole before any cell runs: every key, value and cell."""
    grid = _load(_grid_path(name_or_path, None), ())
    grid.cells()  # validate every field name and value now, with one clear error
    return grid


def _grid_path(name_or_path: str, extended_by: Path | None) -> Path:
    named = builtin_grids()
    if name_or_path in named:
        return GRIDS_DIR / f"{name_or_path}.yaml"
    path = Path(name_or_path)
    if extended_by is not None and not path.is_absolute():
        path = extended_by.parent / path  # relative to the grid that names it, not to the working directory
    if not path.is_file():
        where = f"grid {extended_by}: extends " if extended_by is not None else ""
        raise UserError(f"{where}no grid {name_or_path!r}: give a YAML/JSON file or one of {', '.join(named)}")
    return path


def _load(path: Path, chain: tuple[Path, ...]) -> Grid:
    raw = _read(path)
    unknown = set(raw) - set(KEYS)
    if unknown:
        raise UserError(f"grid {path} must have only {', '.join(KEYS[:-1])} and {KEYS[-1]} "
                        f"(got {sorted(map(str, raw))})")
    base = {key: _value(path, "base", key, value) for key, value in _mapping(path, raw, "base").items()}
    params = {key: _values(path, key, values) for key, values in _mapping(path, raw, "params").items()}
    seeds = _seeds(path, raw["seeds"]) if "seeds" in raw else None
    search_rounds = _search_rounds(path, raw)
    if "extends" in raw:
        parent = _load(_parent_path(path, raw["extends"], chain), (*chain, path))
        base = {**parent.base, **base}
        params = {key: values for key, values in {**parent.params, **params}.items()
                  if key in params or key not in base}  # fixing a searched key here ends its search
        seeds = parent.seeds if seeds is None else seeds
        search_rounds = parent.search_rounds if "search_rounds" not in raw else search_rounds
    return Grid(path.stem, base, params, [0] if seeds is None else seeds, search_rounds, str(path))


def _parent_path(path: Path, extends: Any, chain: tuple[Path, ...]) -> Path:
    if not isinstance(extends, str) or not extends:
        raise UserError(f"grid {path}: extends must name a built-in grid or a grid file, got {extends!r}")
    parent = _grid_path(extends, path)
    seen = [p.resolve() for p in (*chain, path)]
    if parent.resolve() in seen:
        cycle = " -> ".join(str(p) for p in (*chain, path, parent)[seen.index(parent.resolve()):])
        raise UserError(f"grid {path}: extends makes a cycle ({cycle})")
    return parent


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except UnicodeDecodeError:
        raise UserError(f"cannot read grid {path}: it is not UTF-8 text (a YAML or JSON file is expected)") from None
    except OSError as e:
        raise UserError(f"cannot read grid {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"cannot parse grid {path}{where}: {what}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more digits than Python reads, deep nesting
        raise UserError(f"cannot parse grid {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"grid {path} must be a mapping with extends, base, params, seeds and search_rounds, "
                        f"got a {_kind(raw)}")
    return raw


def _mapping(path: Path, raw: dict[str, Any], section: str) -> dict[str, Any]:
    value = raw.get(section)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"grid {path}: {section} must be a mapping of dotted config names (like train.lr) to "
                        f"{'values' if section == 'base' else 'lists of values'}, got a {_kind(value)}")
    if "train.seed" in value:
        raise UserError(f"grid {path}: {section} sets train.seed; give the seeds as `seeds: [0, 1, 2]`")
    return value


def _value(path: Path, section: str, key: Any, value: Any) -> Any:
    try:
        return parse_value(key, value)
    except UserError as e:
        hint = ""
        if section == "params" and isinstance(key, str) and key in RULES and RULES[key].items:
            hint = " (params lists one value per cell, so each value is a list: [[300, 100], [100]])"
        raise UserError(f"grid {path}: {section}: {e}{hint}") from None


def _values(path: Path, key: Any, values: Any) -> list[Any]:
    values = [_value(path, "params", key, v) for v in (values if isinstance(values, list) else [values])]
    if not values:
        raise UserError(f"grid {path}: params: {key} has no values")
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise UserError(f"grid {path}: params: {key} repeats the value {repeated[0]!r}")
    return values


def _seeds(path: Path, seeds: Any) -> list[int]:
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise UserError(f"grid {path}: seeds must be a non-empty list of integers, got {seeds!r}")
    for seed in seeds:
        _value(path, "seeds", "train.seed", seed)
    if len(set(seeds)) < len(seeds):
        raise UserError(f"grid {path}: seeds repeat a seed: {seeds}")
    return seeds


def _search_rounds(path: Path, raw: dict[str, Any]) -> int | None:
    search_rounds = raw.get("search_rounds")
    if search_rounds is not None and (type(search_rounds) is not int or search_rounds < 1):
        raise UserError(f"grid {path}: search_rounds must be a positive integer, got {search_rounds!r}")
    return search_rounds


def _label(combo: dict[str, Any], seed: int) -> str:
    return "(" + ", ".join([*(f"{k}={v}" for k, v in combo.items()), f"seed {seed}"]) + ")"


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value),
                                                                                               type(value).__name__)
