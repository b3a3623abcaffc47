"""What the planner's reward believes a plan's accuracy will be after rewind-and-retrain.

Three proxy kinds (`--proxy`):

- `pruned`: the round's trained weights W_T under the plan's mask, no retraining. One evaluation per plan,
  cached by plan prefix. Cheap, but blind to recovery: retraining repairs most of a pruning step's damage, so it
  penalises every cut far more than rewind-and-retrain will.
- `finetune`: W_T under the plan's mask, then `proxy_share` of a round's steps of its optimizer (fresh state).
- `rewind`: the survivors rewound to W_k and retrained for `proxy_share` of a round's steps with the round's own data
  order: the first steps of the real retraining (EagleEye, Li et al. 2020, made the same point with a short
  recalibration; Zimmer et al. 2023 show a few steps recover most of a pruning step's damage).

A retraining proxy costs steps, so a round scores only a few *candidate* plans with it: the plans a round can
reach are grouped by the share of the round's weights they remove (`proxy_candidates` equal-width groups), and
each group's best plan by the cheap `pruned` proxy is retrained. Every other plan takes its group's retrained
accuracy minus its cheap-proxy gap to the candidate. Retraining thus sets the level (how far this round may
prune) and the cheap proxy the allocation between layers at that level. States always use the cheap proxy.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping

import torch
from torch import nn

from mdp_prune.config import TrainConfig
from mdp_prune.engine.data import Splits
from mdp_prune.engine.training import train

# Plan spaces up to this size are enumerated (candidates, the exact optimum); larger ones (deep conv nets) use
# uniform plans as candidates and report no exact optimum.
MAX_ENUMERATED_PLANS = 10_000

Plan = tuple[int, ...]


class Retrainer:
    """Short retraining of one round's network under other masks. Counts every step it trains."""

    def __init__(self, model: nn.Module, trained: Mapping[str, torch.Tensor], rewind: Mapping[str, torch.Tensor],
                 splits: Splits, train_config: TrainConfig, order: torch.Tensor) -> None:
        self.model = model
        self.trained = dict(trained)
        self.rewind = dict(rewind)
        self.splits = splits.for_proxy()  # scored on the proxy's images, never on held-out validation
        self.train_config = train_config
        self.order = order
        self.iterations = 0

    def accuracy(self, kind: str, masks: Mapping[str, torch.Tensor], iterations: int) -> float:
        """Validation accuracy after `iterations` steps of `kind` ('finetune' or 'rewind') under `masks`."""
        start_state = self.rewind if kind == "rewind" else self.trained
        model = copy.deepcopy(self.model)
        model.load_state_dict(start_state)
        k = self.train_config.rewind_iteration
        stop = min(k + iterations, self.train_config.train_iterations)
        # The round's own data order from the rewind point: the rewind proxy is the real retraining's first
        # steps, and both retraining kinds are deterministic for a seed.
        result = train(model, dict(masks), self.splits, self.train_config, self.order, k, stop=stop, test=False)
        self.iterations += result.iterations
        return result.val_accuracy


def proxy_iterations(share: float, train_config: TrainConfig) -> int:
    """Steps a retraining proxy trains each candidate for: `share` of a round's retraining (T - k)."""
    return max(1, round(share * (train_config.train_iterations - train_config.rewind_iteration)))


def all_prefixes(n_layers: int, n_actions: int) -> list[Plan]:
    """Every node of the plan tree: the empty plan, every partial plan and every full plan."""
    return [p for length in range(n_layers + 1) for p in itertools.product(range(n_actions), repeat=length)]


def plan_space_size(n_layers: int, n_actions: int) -> int:
    return n_actions**n_layers


class RetrainedProxy:
    """The reward's accuracy for every (partial) plan of a round, from a few retrained candidates.

    `cheap` is the round's `ProxyEvaluator` (the `pruned` proxy); `retrain(masks)` returns the retraining
    proxy's accuracy under a mask. Candidates are chosen and retrained on construction.
    """

    def __init__(self, cheap, retrain, n_candidates: int) -> None:  # noqa: ANN001 - duck-typed evaluator
        self.cheap = cheap
        self.n_layers = cheap.n_layers
        n_actions = len(cheap.actions)
        if plan_space_size(self.n_layers, n_actions) <= MAX_ENUMERATED_PLANS:
            pool = all_prefixes(self.n_layers, n_actions)
        else:  # the same fraction in every layer, one plan per action
            pool = [tuple([a] * self.n_layers) for a in range(n_actions)]
        cheap.accuracies(pool)  # in one sweep of the plan tree, which shares the forward pass over prefixes
        largest = max(self._removed_share(p) for p in pool)
        self._width = largest / n_candidates if largest > 0 else 1.0
        self._n_bins = n_candidates
        best: dict[int, Plan] = {}
        for p in pool:  # pool order is deterministic; ties keep the first (shortest, lowest-index) plan
            b = self._bin(p)
            if b not in best or cheap.accuracy(p) > cheap.accuracy(best[b]):
                best[b] = p
        self.candidates = dict(sorted(best.items()))
        self.retrained = {b: retrain(cheap.plan_masks(p)) for b, p in self.candidates.items()}
        self._accuracy: dict[Plan, float] = {}

    def _removed_share(self, plan: Plan) -> float:
        kept = self.cheap.kept_total
        return self.cheap.removed(plan) / kept if kept else 0.0

    def _bin(self, plan: Plan) -> int:
        return min(self._n_bins - 1, int(self._removed_share(plan) / self._width))

    def accuracy(self, plan: Plan) -> float:
        if plan not in self._accuracy:
            b = self._bin(plan)
            if b not in self.candidates:  # only with the uniform-plan pool: use the nearest retrained group
                b = min(self.candidates, key=lambda c: (abs(c - b), c))
            candidate = self.candidates[b]
            self._accuracy[plan] = self.retrained[b] - (self.cheap.accuracy(candidate) - self.cheap.accuracy(plan))
        return self._accuracy[plan]

    def remaining(self, plan: Plan) -> float:
        return self.cheap.remaining(plan)
