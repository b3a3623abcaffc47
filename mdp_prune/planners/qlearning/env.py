"""The pruning MDP of one IMP round as a Gymnasium environment (docs/design.md, section 2).

An episode walks the prunable layers in order. In state (layer l, accuracy-drop bucket, sparsity bucket, and
optionally the actions of the layers just before) the action is an index into a fixed, ordered set of fractions:
the share of layer l's remaining weights to prune.
Each step prunes a *copy* of the round's committed mask and scores it with a proxy: the accuracy of the
trained weights under that mask on a fixed validation subset, without retraining. The trained weights and the
committed mask are never modified, and repeated plans are answered from a cache.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from mdp_prune.config import state_sizes
from mdp_prune.engine import pruning
from qtable import Discretizer, StateSpace


class Evaluator(Protocol):
    """What the environment needs from the network: accuracy and weights remaining of a partial plan.

    A plan is a tuple of action indices for layers 0..len(plan)-1; later layers keep the committed mask.
    """

    n_layers: int

    def accuracy(self, plan: tuple[int, ...]) -> float: ...

    def remaining(self, plan: tuple[int, ...]) -> float: ...


class ProxyEvaluator:
    """Proxy accuracy of the trained, masked network under partial plans, cached by plan prefix."""

    def __init__(self, model: nn.Module, weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                 actions: Sequence[float], x: torch.Tensor, y: torch.Tensor) -> None:
        self.model = model
        self.names = list(weights)
        self.n_layers = len(self.names)
        self.weights = {n: weights[n].detach() for n in self.names}
        self.masks = {n: masks[n].detach() for n in self.names}
        self.actions = tuple(actions)
        self.x, self.y = x, y
        self.kept = [int(self.masks[n].sum().item()) for n in self.names]
        self.total = sum(m.numel() for m in self.masks.values())
        # Counts and fractions are looked up hundreds of thousands of times a round on a 5-layer net.
        self._pruned = [[pruning.prune_count(k, a) for a in self.actions] for k in self.kept]
        self.kept_total = sum(self.kept)
        self._removed: dict[tuple[int, ...], int] = {}
        self._order: dict[int, torch.Tensor] = {}
        self._layer_masks: dict[tuple[int, int], torch.Tensor] = {}
        self._accuracy: dict[tuple[int, ...], float] = {}
        self._counts_accuracy: dict[tuple[int, ...], float] = {}
        self.evaluations = 0
        self.lookups = 0

    def pruned_count(self, layer: int, action: int) -> int:
        return self._pruned[layer][action]

    def removed(self, plan: tuple[int, ...]) -> int:
        """Weights (a count) that `plan`'s prefix removes on top of the committed mask."""
        if plan not in self._removed:
            self._removed[plan] = sum(self._pruned[layer][a] for layer, a in enumerate(plan))
        return self._removed[plan]

    def remaining(self, plan: tuple[int, ...]) -> float:
        return (self.kept_total - self.removed(plan)) / self.total

    def layer_mask(self, layer: int, action: int) -> torch.Tensor:
        """The committed mask of `layer` with its `actions[action]` smallest-magnitude survivors removed."""
        return self.count_mask(layer, self.pruned_count(layer, action))

    def count_mask(self, layer: int, count: int) -> torch.Tensor:
        """The committed mask of `layer` with its `count` smallest-magnitude survivors removed."""
        key = (layer, count)
        if key not in self._layer_masks:
            name = self.names[layer]
            if layer not in self._order:
                # Sorted once per round: the same weights are pruned in every episode for the same action.
                self._order[layer] = pruning.magnitude_order(self.weights[name], self.masks[name])
            mask = self.masks[name].clone()
            mask.view(-1)[self._order[layer][:count]] = 0.0
            self._layer_masks[key] = mask
        return self._layer_masks[key]

    def plan_masks(self, plan: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {n: self.layer_mask(i, plan[i]) if i < len(plan) else self.masks[n] for i, n in enumerate(self.names)}

    def budget_counts(self, plan: tuple[int, ...], budget: int, max_fraction: float) -> tuple[int, ...]:
        """The per-layer counts `plan` removes once rescaled to remove exactly `budget` weights (budget mode
        commits these: `engine.pruning.budget_counts`)."""
        fractions = {n: self.actions[a] for n, a in zip(self.names, plan, strict=False)}
        counts = pruning.budget_counts(fractions, dict(zip(self.names, self.kept, strict=True)), budget, max_fraction)
        return tuple(counts[n] for n in self.names)

    def counts_accuracy(self, counts: tuple[int, ...]) -> float:
        """The proxy accuracy with `counts[l]` more of layer l's weights removed (cached by the counts: many plans
        rescale to the same counts)."""
        self.lookups += 1
        if counts not in self._counts_accuracy:
            self._counts_accuracy[counts] = self._forward(self.counts_masks(counts))
        return self._counts_accuracy[counts]

    def counts_masks(self, counts: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The masks with `counts[l]` more of layer l's weights removed, smallest magnitudes first."""
        return {n: self.count_mask(i, c) for i, (n, c) in enumerate(zip(self.names, counts, strict=True))}

    def accuracy(self, plan: tuple[int, ...]) -> float:
        self.lookups += 1
        if plan not in self._accuracy:  # a cached lookup skips no_grad's context switch
            self._evaluate(plan)
        return self._accuracy[plan]

    def _evaluate(self, plan: tuple[int, ...]) -> None:
        self._accuracy[plan] = self._forward(self.plan_masks(plan))

    def counts_correct(self, counts: tuple[int, ...]) -> torch.Tensor:
        """Which proxy examples the network classifies correctly with `counts[l]` more of layer l's weights
        removed (a bool per example): two plans are compared on the same examples (`paired_z`)."""
        return self._correct(self._logits(self.counts_masks(counts)))

    def _forward(self, masks: Mapping[str, torch.Tensor]) -> float:
        return self._score(self._logits(masks))

    @torch.no_grad()
    def _logits(self, masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.evaluations += 1
        params = {f"{n}.weight": self.weights[n] * masks[n] for n in self.names}
        was_training = self.model.training
        self.model.eval()
        logits = functional_call(self.model, params, (self.x,))
        self.model.train(was_training)
        return logits

    def _correct(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(1) == self.y

    def _score(self, logits: torch.Tensor) -> float:
        return self._correct(logits).float().mean().item()

    @torch.no_grad()
    def accuracies(self, plans: Sequence[tuple[int, ...]]) -> list[float]:
        """`accuracy` of many plans, equal to it bit for bit. Plans that share a prefix share the forward pass
        up to the first layer they differ in: each layer runs once per distinct prefix that reaches it (for a
        5-layer conv net's 9,331 prefixes its second convolution runs 37 times instead of 9,331). Only for an
        `nn.Sequential` whose prunable layers are its own children; any other model is evaluated plan by plan."""
        plans = [tuple(p) for p in plans]
        todo = set(plans) - self._accuracy.keys()
        stages = self._stages() if todo else None
        if stages is None:
            return [self.accuracy(p) for p in plans]
        head, layers = stages
        needed = {p[:k] for p in todo for k in range(len(p) + 1)}
        was_training = self.model.training
        self.model.eval()
        self._evaluate_tree((), head(self.x), layers, todo, needed)
        self.model.train(was_training)
        self.lookups += len(plans)
        return [self._accuracy[p] for p in plans]

    def _stages(self) -> tuple[nn.Module, list[tuple[nn.Module, list[nn.Module]]]] | None:
        """The model cut before each prunable layer: the modules ahead of the first one, then per prunable
        layer the layer and the modules that follow it up to the next one (None: not such a Sequential)."""
        if not isinstance(self.model, nn.Sequential):
            return None
        children = list(self.model.named_children())
        starts = [i for i, (name, _) in enumerate(children) if name in self.names]
        if [children[i][0] for i in starts] != self.names:
            return None
        ends = [*starts[1:], len(children)]
        layers = [(children[s][1], [m for _, m in children[s + 1:e]]) for s, e in zip(starts, ends, strict=True)]
        return nn.Sequential(*[m for _, m in children[: starts[0]]]), layers

    def _through(self, layers: list, layer: int, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        module, after = layers[layer]
        weight = self.weights[self.names[layer]] * mask
        # What Linear's and Conv2d's forward call, without functional_call's parameter swap, which costs more
        # than the output layer's product itself and runs once per full plan (7,776 on a 5-layer net).
        if type(module) is nn.Linear:
            x = nn.functional.linear(x, weight, module.bias)
        elif type(module) is nn.Conv2d:
            x = module._conv_forward(x, weight, module.bias)
        else:
            x = functional_call(module, {"weight": weight}, (x,))
        for m in after:
            x = m(x)
        return x

    def _evaluate_tree(self, prefix: tuple[int, ...], inputs: torch.Tensor, layers: list, todo: set,
                       needed: set) -> None:
        """Depth first through the plan tree, so that only one activation per layer is held: `inputs` enter
        layer len(prefix) with `prefix`'s masks applied before it."""
        depth = len(prefix)
        unchanged = None  # layer `depth` under the committed mask: the input of every child that prunes nothing
        if prefix in todo:
            x = inputs
            for layer in range(depth, self.n_layers):  # later layers keep the committed mask
                x = self._through(layers, layer, self.masks[self.names[layer]], x)
                unchanged = x if layer == depth else unchanged
            self.evaluations += 1
            self._accuracy[prefix] = self._score(x)
        for action in range(len(self.actions)):
            child = (*prefix, action)
            if child not in needed:
                continue
            if unchanged is None or self.pruned_count(depth, action) > 0:
                outputs = self._through(layers, depth, self.layer_mask(depth, action), inputs)
            else:
                outputs = unchanged
            self._evaluate_tree(child, outputs, layers, todo, needed)


def paired_z(correct: torch.Tensor, reference_correct: torch.Tensor) -> tuple[float, int, int]:
    """McNemar's statistic of one classifier against a reference on the same examples: (wins - losses) /
    sqrt(wins + losses), where wins are the examples only `correct` gets right and losses those only the
    reference gets right (0 when they disagree nowhere); returns it with the wins and the losses.

    Two allocations of one round's count differ on a few dozen of the proxy's examples, so their accuracies
    are compared on those, not as two independent estimates whose noise would swamp the difference."""
    wins = int((correct & ~reference_correct).sum().item())
    losses = int((~correct & reference_correct).sum().item())
    z = (wins - losses) / math.sqrt(wins + losses) if wins + losses else 0.0
    return z, wins, losses


def purl_reward(accuracy: float, sparsity: float, target_accuracy: float, target_sparsity: float,
                beta: float) -> float:
    """PuRL's dense reward: -beta * (shortfall from the accuracy target + shortfall from the sparsity target)."""
    return -beta * (max(0.0, 1.0 - accuracy / target_accuracy) + max(0.0, 1.0 - sparsity / target_sparsity))


class PruningEnv(gym.Env):
    """One round's pruning MDP. Observations are flat state indices of (layer, accuracy bucket, sparsity bucket,
    then the last `history` actions: `config.state_sizes`); layer index `n_layers` marks the terminal state.

    With history 0 plans whose prefixes fall into the same buckets share a state (aliasing), so Q cannot always
    represent the round's optimum; history n_layers - 1 makes every state a distinct plan prefix."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, evaluator: Evaluator, n_actions: int, accuracy_edges: Sequence[float],
                 sparsity_edges: Sequence[float], target_accuracy: float, target_sparsity: float,
                 beta: float = 1.0, reward_evaluator: Evaluator | None = None, history: int = 0) -> None:
        self.evaluator = evaluator
        # States describe a plan with the cheap proxy; the reward may judge it with a retraining-aware one.
        self.reward_evaluator = reward_evaluator or evaluator
        self.accuracy_bucket = Discretizer(accuracy_edges, "accuracy drop")
        self.sparsity_bucket = Discretizer(sparsity_edges, "weights remaining")
        self.n_actions = n_actions
        self.space = StateSpace(state_sizes(evaluator.n_layers, self.accuracy_bucket.n_buckets,
                                            self.sparsity_bucket.n_buckets, n_actions, history))
        self.history = len(self.space.sizes) - 3
        self.observation_space = gym.spaces.Discrete(self.space.n_states)
        self.action_space = gym.spaces.Discrete(n_actions)
        self.target_accuracy = target_accuracy
        self.target_sparsity = target_sparsity
        self.beta = beta
        self.reference_accuracy = evaluator.accuracy(())
        self.plan: tuple[int, ...] = ()

    def state_of(self, plan: tuple[int, ...]) -> int:
        drop = self.reference_accuracy - self.evaluator.accuracy(plan)
        previous = [plan[-1 - i] if i < len(plan) else self.n_actions for i in range(self.history)]
        return self.space.index((len(plan), self.accuracy_bucket(drop),
                                 self.sparsity_bucket(self.evaluator.remaining(plan)), *previous))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.plan = ()
        return self.state_of(self.plan), self._info()

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        if len(self.plan) >= self.evaluator.n_layers:
            raise RuntimeError("the episode has ended: call reset()")
        self.plan = (*self.plan, int(action))
        reward = self.reward(self.plan)
        terminated = len(self.plan) == self.evaluator.n_layers
        return self.state_of(self.plan), float(reward), terminated, False, self._info()

    def reward(self, plan: tuple[int, ...]) -> float:
        """The reward of the step that reaches `plan` (deterministic: the MDP of one round has no noise)."""
        accuracy = self.reward_evaluator.accuracy(plan)
        sparsity = 1.0 - self.evaluator.remaining(plan)
        return purl_reward(accuracy, sparsity, self.target_accuracy, self.target_sparsity, self.beta)

    def discounted_return(self, plan: tuple[int, ...], gamma: float) -> float:
        return sum(gamma**t * self.reward(plan[: t + 1]) for t in range(len(plan)))

    def _info(self) -> dict[str, Any]:
        return {"plan": self.plan, "accuracy": self.evaluator.accuracy(self.plan),
                "remaining": self.evaluator.remaining(self.plan)}


class CommittedBudgetEnv(PruningEnv):
    """Budget mode's MDP judged on the plan as it will be committed (`--budget-reward committed`).

    Budget mode rescales every plan to remove exactly `budget` weights (`ProxyEvaluator.budget_counts`), so the
    plan chooses only how those weights are shared between layers. The reward is 0 until the last layer, then
    minus beta times the proxy accuracy drop of the rescaled plan below the round's unpruned proxy accuracy. It
    has no sparsity term, which every rescaled plan would meet alike, and no hinge, which ranks all plans above
    T_A alike: with PuRL's reward on the plan before rescaling, most early-round plans tie at 0 and the tie-break
    puts the whole budget on the first layer (docs/results.md)."""

    def __init__(self, evaluator: ProxyEvaluator, n_actions: int, accuracy_edges: Sequence[float],
                 sparsity_edges: Sequence[float], budget: int, max_fraction: float, beta: float = 1.0,
                 history: int = 0) -> None:
        target_sparsity = 1.0 - (evaluator.kept_total - budget) / evaluator.total
        super().__init__(evaluator, n_actions, accuracy_edges, sparsity_edges, target_accuracy=1.0,
                         target_sparsity=target_sparsity, beta=beta, history=history)
        self.budget, self.max_fraction = budget, max_fraction

    def reward(self, plan: tuple[int, ...]) -> float:
        if len(plan) < self.evaluator.n_layers:
            return 0.0
        counts = self.evaluator.budget_counts(plan, self.budget, self.max_fraction)
        return -self.beta * (self.reference_accuracy - self.evaluator.counts_accuracy(counts))


def greedy_rollout(env: PruningEnv, values: np.ndarray) -> tuple[tuple[int, ...], list[tuple], float]:
    """Follow the lowest-index argmax of Q from the start: the plan a round commits, its transitions, return."""
    state, _ = env.reset()
    transitions, total, terminated = [], 0.0, False
    while not terminated:
        action = int(np.argmax(values[state]))
        next_state, reward, terminated, _, _ = env.step(action)
        transitions.append((state, action, reward, next_state, terminated))
        total += reward
        state = next_state
    return env.plan, transitions, total


def exact_optimum(env: PruningEnv, gamma: float, max_plans: int) -> tuple[tuple[int, ...], float] | None:
    """The plan of highest discounted return, by enumeration (lowest plan in product order on ties), or None when
    the plan space is larger than `max_plans`. Within one round the MDP is deterministic, so this is the exact
    optimum that Q-learning's greedy plan should reach."""
    n_layers, n_actions = env.evaluator.n_layers, int(env.action_space.n)
    if n_actions**n_layers > max_plans:
        return None
    best_plan, best = (), -math.inf
    for plan in itertools.product(range(n_actions), repeat=n_layers):
        value = env.discounted_return(plan, gamma)
        if value > best + 1e-12:
            best_plan, best = plan, value
    return best_plan, best


def hill_climb(env: PruningEnv, gamma: float, start: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Steepest ascent from `start` over plans that differ from it in one layer's action, while the discounted
    return rises; returns the plan it stops at and the number of moves it made.

    Within a round the MDP is deterministic and every reward is a cached proxy lookup, so a move costs at most
    n_layers x (n_actions - 1) cheap evaluations and no retraining. The episodes' best plan is usually one layer
    away from an optimum they did not play (docs/design.md, section 2). Ties keep the current plan, then the
    lowest neighbour in (layer, action) order, so the climb is deterministic."""
    plan, value, moves = tuple(start), env.discounted_return(tuple(start), gamma), 0
    n_actions = int(env.action_space.n)
    while True:
        best, best_value = plan, value
        for layer, action in itertools.product(range(len(plan)), range(n_actions)):
            if action == plan[layer]:
                continue
            neighbour = (*plan[:layer], action, *plan[layer + 1:])
            neighbour_value = env.discounted_return(neighbour, gamma)
            if neighbour_value > best_value + 1e-12:
                best, best_value = neighbour, neighbour_value
        if best == plan:
            return plan, moves
        plan, value, moves = best, best_value, moves + 1
