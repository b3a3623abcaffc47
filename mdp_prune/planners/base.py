"""The planner protocol: what the IMP loop gives a planner each round, and what it asks of it.

The IMP loop calls `observe` with the round's training result, then `propose`, then prunes by magnitude with
the proposed fractions. A planner's whole state must round-trip through `state_dict` (tensors and plain Python
values only, loadable with `weights_only=True`) so that a stopped run resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from mdp_prune.config import RunConfig
from mdp_prune.engine.data import Splits
from mdp_prune.engine.training import TrainResult

if TYPE_CHECKING:
    from mdp_prune.planners.proxies import Retrainer


@dataclass
class RoundContext:
    """What a planner may look at after round `round` has trained."""

    round: int
    model: nn.Module  # the trained, masked network W_T (planners must not modify it)
    weights: dict[str, torch.Tensor]  # its prunable weights, by layer name
    masks: dict[str, torch.Tensor]  # the committed masks this round trained with
    kinds: dict[str, str]  # 'conv', 'fc' or 'output' per layer
    splits: Splits
    result: TrainResult
    dense_result: TrainResult  # round 0, the reference accuracy
    run_dir: Path
    # Short retraining under other masks, for retraining-aware proxies; the IMP loop counts the steps it spends.
    retrainer: Retrainer | None = None


class Planner:
    """Base class: stateless planners only override `propose`."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def observe(self, ctx: RoundContext) -> None:
        """See the result of training with the previously committed plan."""

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def stale_round(self, log: pd.DataFrame) -> int | None:
        """The first round of a resumed run whose logged plan (its `qlearning_rounds.csv` rows) this version
        would have made under a different objective, or None. The config hash cannot see such a fix."""
        return None
