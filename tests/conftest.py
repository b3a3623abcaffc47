"""Shared fixtures: tiny configurations on the embedded digits data, so the suite stays fast."""

from __future__ import annotations

import pytest
import torch

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


TINY_GRID = {"base": {"train.model": "mlp", "train.hidden_sizes": [16], "train.train_iterations": 30,
                      "train.eval_every": 10, "train.batch_size": 32, "prune.planner": "qlearning",
                      "qlearning.budget": "lt", "qlearning.episodes": 15, "rounds": 2, "device": "cpu"},
             "params": {"qlearning.alpha": [0.1, 0.5]}, "seeds": [0, 1]}


@pytest.fixture(scope="session")
def tiny_comparison(tmp_path_factory):
    """A real comparison folder (`make compare-baseline` on a tiny grid): the notebooks and the report read it."""
    import yaml

    from gridsearch.compare import compare
    from gridsearch.grid import load_grid

    folder = tmp_path_factory.mktemp("compare")
    (folder / "grid.yaml").write_text(yaml.safe_dump(TINY_GRID))
    report = compare(load_grid(str(folder / "grid.yaml")), folder / "out", n_jobs=2, progress=False,
                     baselines=("lt", "global"))
    return report.parent
