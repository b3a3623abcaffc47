"""The baselines: fixed rules that each round choose, per prunable layer, the fraction of its remaining weights
to prune (the lottery ticket's layerwise rates, global magnitude, LAMP, ERK and a random allocation)."""

from __future__ import annotations

import numpy as np

from mdp_prune.engine import pruning
from mdp_prune.engine.training import derive_seed
from mdp_prune.planners.base import Planner, RoundContext


class LotteryTicket(Planner):
    """Frankle & Carbin's fixed layerwise rates: conv, hidden fully connected and output layer."""

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        return pruning.lt_fractions({n: m.shape for n, m in ctx.masks.items()}, self.config.prune)


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
        overall, _ = pruning.remaining(ctx.masks)
        return pruning.erk_fractions(ctx.masks, overall * (1 - self.config.prune.prune_global))


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
