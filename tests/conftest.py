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
