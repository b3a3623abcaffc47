"""Planners: each round they choose, per prunable layer, the fraction of its remaining weights to prune.

The IMP loop calls `observe` with the round's training result, then `propose`, then prunes by magnitude with
the proposed fractions. A planner's whole state must round-trip through `state_dict` (tensors and plain Python
values only, loadable with `weights_only=True`) so that a stopped run resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mdp_prune.config import RunConfig
from mdp_prune.engine import pruning
from mdp_prune.engine.data import Splits
from mdp_prune.engine.training import TrainResult, derive_seed


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


class LotteryTicket(Planner):
    """Frankle & Carbin's fixed layerwise rates: conv, hidden fully connected and output layer."""

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        p = self.config.prune
        rate = {"conv": p.prune_conv, "fc": p.prune_fc, "output": p.prune_output}
        return {name: rate[kind] for name, kind in ctx.kinds.items()}


class GlobalMagnitude(Planner):
    """OpenLTH's default: `prune_global` of all remaining weights, smallest magnitudes across layers."""

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        scores = {n: w.abs() for n, w in ctx.weights.items()}
        return pruning.global_fractions(scores, ctx.masks, self.config.prune.prune_global)


class Lamp(Planner):
    """LAMP (Lee et al. 2021): global pruning by layer-adaptive magnitude scores."""

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        scores = pruning.lamp_scores({n: w * ctx.masks[n] for n, w in ctx.weights.items()})
        return pruning.global_fractions(scores, ctx.masks, self.config.prune.prune_global)


class Erk(Planner):
    """Erdős–Rényi-Kernel allocation of the next round's density (`prune_global` fewer weights overall).

    Pruning cannot regrow weights: a layer already sparser than its ERK share is left as it is.
    """

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        overall, per_layer = pruning.remaining(ctx.masks)
        target = pruning.erk_densities({n: m.shape for n, m in ctx.masks.items()},
                                       overall * (1 - self.config.prune.prune_global))
        return {n: float(np.clip(1 - target[n] / per_layer[n], 0.0, 0.999)) if per_layer[n] > 0 else 0.0
                for n in ctx.masks}


class RandomAllocation(Planner):
    """Per-layer fractions drawn uniformly from the action set (never all zero): the allocation control for the
    Q-planner."""

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        rng = np.random.default_rng(derive_seed(self.config.train.seed, "random-allocation", ctx.round))
        actions = self.config.prune.actions
        # An empty plan ends a run (the next round would repeat this one), so a draw that prunes nothing, once
        # in len(actions) ** layers rounds, would stop the control early; it is drawn again instead.
        while True:
            fractions = {name: float(actions[rng.integers(len(actions))]) for name in ctx.kinds}
            if any(fractions.values()) or not any(actions):
                return fractions


def _qlearning(config: RunConfig) -> Planner:
    from mdp_prune.planners.qlearning.planner import QLearningPlanner

    return QLearningPlanner(config)


PLANNERS: dict[str, Callable[[RunConfig], Planner]] = {
    "lt": LotteryTicket,
    "global": GlobalMagnitude,
    "random": RandomAllocation,
    "lamp": Lamp,
    "erk": Erk,
    "qlearning": _qlearning,
}
