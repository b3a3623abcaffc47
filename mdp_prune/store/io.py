"""Atomic reads and writes of the results store.

Every write goes to a temporary file in the same folder and is renamed into place, so a killed run leaves
either the old file or the new one, never half of one. Unreadable files raise `UserError` (one line, exit
code 2) instead of being overwritten.
"""

from __future__ import annotations

import io
import json
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


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None


def save_torch(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def load_torch(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint with `weights_only=True`; a damaged file is a clear error, never a traceback."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"missing checkpoint {path}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise UserError(
            f"corrupt checkpoint {path} ({type(e).__name__}); delete the run folder to start it again"
        ) from None


def write_csv(path: Path, rows: Sequence[dict[str, Any]] | pd.DataFrame) -> None:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    write_bytes(path, frame.to_csv(index=False, float_format="%.10g").encode())


def read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot read {path} ({e}); delete it to start that table again") from None


def append_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append rows by rewriting the whole (small) table atomically."""
    old = read_csv(path)
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


def read_config(run: Path) -> RunConfig:
    """The configuration a run folder was made with."""
    return RunConfig.from_dict(read_json(run / paths.CONFIG))


def load_masks(run: Path, round_: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The masks round `round_` (at least 1) of a run trains with."""
    return load_torch(paths.masks_file(run, round_), map_location=device)


def last_round(run: Path) -> int:
    """The run's last committed round (its last row of rounds.csv), -1 when none is."""
    rows = read_csv(run / paths.ROUNDS)
    return int(rows["round"].iloc[-1]) if len(rows) else -1
