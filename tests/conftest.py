"""Shared fixtures: tiny configurations on the embedded digits data, so the suite stays fast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mdp_prune.config import RunConfig

torch.set_num_threads(1)  # bitwise reproducibility on the CPU is per thread count; keep tests comparable


def tiny_config(**dotted) -> RunConfig:
    base = {"train.model": "mlp", "train.hidden_sizes": (32, 16), "train.train_iterations": 40,
            "train.eval_every": 10, "train.batch_size": 32, "rounds": 3, "device": "cpu"}
    base.update(dotted)
    return RunConfig().replace(**base).validate()


@pytest.fixture
def tiny():
    return tiny_config


def write_grid(folder: Path, params: dict, seeds=(0, 1), base: dict | None = None, **extra) -> Path:
    """A grid file over tiny Q-learning settings (an mlp of 16 units, 30 iterations, 2 rounds, 15 episodes)."""
    tiny_base = {"train.model": "mlp", "train.hidden_sizes": [16], "train.train_iterations": 30,
                 "train.eval_every": 10, "train.batch_size": 32, "prune.planner": "qlearning",
                 "qlearning.budget": "lt", "qlearning.episodes": 15, "rounds": 2, "device": "cpu"}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({"base": {**tiny_base, **(base or {})}, "params": params, "seeds": list(seeds),
                                    **extra}))
    return path


@pytest.fixture
def tiny_grid(tmp_path):
    """tiny_grid(params, seeds=(0, 1), base=None, **extra) -> the path of a tiny grid file in tmp_path."""
    return lambda *args, **kwargs: write_grid(tmp_path, *args, **kwargs)


@pytest.fixture(scope="session")
def tiny_comparison(tmp_path_factory):
    """A real comparison folder (`make compare-baseline` on a tiny grid): the notebooks and the report read it."""
    from gridsearch.compare import compare
    from gridsearch.grid import load_grid

    folder = tmp_path_factory.mktemp("compare")
    grid = load_grid(str(write_grid(folder, {"qlearning.alpha": [0.1, 0.5]})))
    report = compare(grid, folder / "out", n_jobs=2, progress=False, baselines=("lt", "global"))
    return report.parent
