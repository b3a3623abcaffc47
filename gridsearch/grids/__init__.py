"""The named grids (`--grid small`): the YAML files of this folder, by stem. Kept free of heavy imports so that
`mdp-grid --help` can list them."""

from __future__ import annotations

from pathlib import Path

GRIDS_DIR = Path(__file__).parent


def builtin_grids() -> list[str]:
    return sorted(p.stem for p in GRIDS_DIR.glob("*.yaml"))
