"""Atomic reads and writes of the results store.

Every write goes to a temporary file in the same folder and is renamed into place, so a killed run leaves
either the old file or the new one, never half of one. Unreadable files raise `UserError` (one line, exit
code 2) instead of being overwritten.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mdp_prune.config import RunConfig
from mdp_prune.errors import UserError
from mdp_prune.store import paths

GZIP_MAGIC = b"\x1f\x8b"


def write_bytes(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a folder in the file's place: the old file is still there
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def writable_folder(folder: Path | str, what: str) -> Path:
    """`folder`, created if need be, after checking it can be written: fail before hours of training, not after."""
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{what} {folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{what} {folder} cannot be created: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{what} {folder} is not writable")
    return folder


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None


def save_torch(path: Path, obj: Any, compress: bool = False) -> None:
    """`compress` gzips the file (for the planner's state, whose Q-table is mostly untouched initial values);
    `load_torch` reads either kind."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    write_bytes(path, gzip.compress(data, compresslevel=1, mtime=0) if compress else data)


def load_torch(path: Path, map_location: str | torch.device = "cpu", remedy: str = "") -> Any:
    """Load a checkpoint with `weights_only=True`; a damaged file is a clear error, never a traceback. `remedy`
    says what fixes it where the default (delete the run folder) would not."""
    try:
        data = Path(path).read_bytes()
        if data[:2] == GZIP_MAGIC:
            data = gzip.decompress(data)
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"missing checkpoint {path}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise UserError(f"corrupt checkpoint {path} ({type(e).__name__}); "
                        f"{remedy or 'delete the run folder to start it again'}") from None


def write_csv(path: Path, rows: Sequence[dict[str, Any]] | pd.DataFrame) -> None:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    write_bytes(path, frame.to_csv(index=False, float_format="%.10g").encode())


def read_csv(path: Path, as_text: bool = False) -> pd.DataFrame:
    """A table of ours (empty if absent); `as_text` keeps every cell as written (a version "2.10" stays "2.10")."""
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False) if as_text else pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot read {path} ({e}); delete it to start that table again") from None


def append_csv(path: Path, rows: Sequence[dict[str, Any]], as_text: bool = False) -> None:
    """Append rows by rewriting the whole (small) table atomically. `as_text` copies the rows already there as
    written, for a table of names and versions that pandas would re-type ("2.10" read as the number 2.1)."""
    old = read_csv(path, as_text=as_text)
    new = pd.DataFrame(list(rows))
    write_csv(path, new if old.empty else pd.concat([old, new], ignore_index=True))


def replace_round(path: Path, round_: int, rows: Sequence[dict[str, Any]]) -> None:
    """Write a round's rows into a per-round table, replacing rows a killed attempt at the round left there."""
    old = read_csv(path)
    if not old.empty:
        old = old[old["round"] != round_]
    new = pd.DataFrame(list(rows))
    write_csv(path, new if old.empty else pd.concat([old, new], ignore_index=True))


# -- a run folder's files ---------------------------------------------------------------------------------------

# rounds.csv: one row per committed round, then one `remaining:<layer>` column per prunable layer.
ROUND_COLUMNS = ["round", "weights_remaining", "test_accuracy", "val_accuracy", "early_stop_iteration",
                 "train_iterations", "proxy_iterations", "seconds"]
_FRACTION_COLUMNS = ("weights_remaining", "test_accuracy", "val_accuracy")
_COUNT_COLUMNS = ("early_stop_iteration", "train_iterations", "proxy_iterations")
_OPTIONAL_COLUMNS = ("proxy_iterations",)  # runs written before the proxies could retrain lack it


def _first_bad_row(rows: pd.DataFrame) -> tuple[int, str] | None:
    """(position, what is wrong) of the first row of rounds.csv that cannot be trusted, or None."""
    layers = [c for c in rows.columns if c.startswith("remaining:")]
    fractions = [*_FRACTION_COLUMNS, *layers]
    for i, (_, row) in enumerate(rows.iterrows()):
        values = pd.to_numeric(row, errors="coerce")
        empty = [c for c in rows.columns if pd.isna(values[c])]
        if empty:
            return i, f"no number in {', '.join(empty)}"
        if values["round"] != i:
            return i, f"round {values['round']:g} where round {i} belongs"
        outside = [c for c in fractions if not 0.0 <= values[c] <= 1.0]
        if outside:
            return i, f"{', '.join(outside)} outside [0, 1]"
        negative = [c for c in _COUNT_COLUMNS if not (math.isfinite(values[c]) and values[c] >= 0
                                                       and values[c] == int(values[c]))]
        if negative:
            return i, f"{', '.join(negative)} not a whole number of iterations"
    return None


def _fill_legacy_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """A run written before a column existed spent nothing on it: the column is added as 0, and a run resumed by
    the version that added it has empty cells only above its first new row, which read as 0 (an empty cell below
    a number is damage, left for the checks)."""
    rows = rows.copy()
    for column in _OPTIONAL_COLUMNS:
        if column not in rows:
            rows[column] = 0
            continue
        numbers = pd.to_numeric(rows[column], errors="coerce")
        first = numbers.first_valid_index()
        leading = rows.index if first is None else rows.index[: rows.index.get_loc(first)]
        rows.loc[leading, column] = 0
    return rows


def read_rounds(run: Path, keep: int | None = None) -> pd.DataFrame:
    """A run's rounds.csv, checked before it is trusted: every column, a number in every cell, rounds 0, 1, ...

    With `keep`, only the first `keep` rows are read and checked (what `truncate` keeps). A damaged table is a
    one-line error that says how to recover the rounds before the damage.
    """
    path = run / paths.ROUNDS
    rows = read_csv(path)
    if rows.empty:
        return pd.DataFrame(columns=ROUND_COLUMNS)
    missing = [c for c in ROUND_COLUMNS if c not in rows and c not in _OPTIONAL_COLUMNS]
    if missing or not any(c.startswith("remaining:") for c in rows.columns):
        raise UserError(f"{path} is damaged: it lacks the columns {', '.join(missing) or 'remaining:<layer>'}; "
                        f"delete {run} and rerun its command")
    if keep is not None:
        rows = rows.iloc[:keep]
    rows = _fill_legacy_columns(rows)
    bad = _first_bad_row(rows)
    if bad is None:
        return rows
    position, problem = bad
    remedy = (f"`mdp-prune truncate {run} --round {position}` keeps the rounds before it, then rerun its command"
              if position > 0 else f"delete {run} and rerun its command")
    raise UserError(f"{path} is damaged at row {position + 1} ({problem}): {remedy}")


def read_config(run: Path) -> RunConfig:
    """The configuration a run folder was made with; a config.json that does not hold one is a one-line error."""
    path = run / paths.CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    else:
        try:
            return RunConfig.from_stored(json.loads(text)).validate()
        except UserError as e:
            problem = str(e)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, or an integer too long or nesting too deep
            problem = f"it is not valid JSON: {str(e).splitlines()[0]}"
    raise UserError(f"{path} is damaged ({problem}); `mdp-prune run` writes it: restore it, or rerun the command "
                    "with a fresh --out")


def load_masks(run: Path, round_: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The masks round `round_` (at least 1) of a run trains with."""
    return load_torch(paths.masks_file(run, round_), map_location=device)


def last_round(run: Path) -> int:
    """The run's last committed round (its last row of rounds.csv), -1 when none is."""
    rows = read_rounds(run)
    return int(rows["round"].iloc[-1]) if len(rows) else -1
