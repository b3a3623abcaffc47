"""The pruning arithmetic, in one place: pure functions of weights, masks, fractions and layer shapes. Nothing
here mutates its inputs.

A mask is a float tensor of 0s and 1s shaped like its weight. A fraction is always a share of the layer's
*remaining* weights, so that one action means the same thing in every round. Every planner, the Q-planner's
proxy and budget, and the comparison's target count pruned weights with `prune_count` and order them with
`magnitude_order`: "matched sparsity" between methods rests on these being the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from mdp_prune.errors import UserError

if TYPE_CHECKING:
    from mdp_prune.config import PruneConfig

Masks = dict[str, torch.Tensor]
Shapes = Mapping[str, Sequence[int]]  # prunable weight shapes by layer name, in layer order


def ones_like(weights: Mapping[str, torch.Tensor]) -> Masks:
    return {name: torch.ones_like(w, dtype=torch.float32) for name, w in weights.items()}


def prune_count(remaining: int, fraction: float) -> int:
    """Weights removed by pruning `fraction` of a layer's `remaining` ones: rounded to the nearest, at most all."""
    return min(remaining, int(round(fraction * remaining)))


def magnitude_order(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of a layer's weights, smallest |w| first (magnitude, never sign); pruned weights come last, so
    that they are never chosen again. A stable sort breaks ties (e.g. exact zeros) by position: reproducible."""
    scores = weight.detach().abs().flatten().clone()
    scores[mask.flatten() == 0] = math.inf
    return torch.sort(scores, stable=True).indices


def magnitude_prune(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                    fractions: Mapping[str, float]) -> Masks:
    """Per layer, mask the `fraction` of remaining weights with the smallest |w| (magnitude, never sign)."""
    new = {}
    for name, mask in masks.items():
        if not torch.isfinite(weights[name]).all():
            # NaN compares false with everything: the order, and so the count kept, would be wrong.
            raise UserError(f"layer {name} has non-finite weights; refusing to prune them by magnitude")
        new_mask = mask.detach().clone()
        k = prune_count(int(mask.sum().item()), fractions.get(name, 0.0))
        if k > 0:
            new_mask.view(-1)[magnitude_order(weights[name], mask)[:k]] = 0.0
        new[name] = new_mask
    return new


def layer_kinds(shapes: Shapes) -> dict[str, str]:
    """'conv' (4-d weights), 'fc' or 'output' (the last prunable layer) per layer: the lt rates depend on it."""
    names = list(shapes)
    return {n: "output" if n == names[-1] else ("conv" if len(shapes[n]) == 4 else "fc") for n in names}


# The PruneConfig field that holds lt's per-round fraction of each kind of layer.
LT_RATE_FIELDS = {"conv": "prune_conv", "fc": "prune_fc", "output": "prune_output"}


def lt_fractions(shapes: Shapes, prune: PruneConfig) -> dict[str, float]:
    """The lottery ticket's fixed per-round fraction of each layer (Frankle & Carbin 2019): by kind of layer."""
    return {name: getattr(prune, LT_RATE_FIELDS[kind]) for name, kind in layer_kinds(shapes).items()}


def lt_action_plan(shapes: Shapes, prune: PruneConfig) -> dict[str, int | None]:
    """Each layer's lt fraction as an index into `prune.actions` (None where the action set lacks it): lt's
    allocation as a plan of the Q-planner's MDP. Compared with a tolerance, since both come from decimal flags."""
    return {name: next((i for i, a in enumerate(prune.actions) if math.isclose(a, fraction)), None)
            for name, fraction in lt_fractions(shapes, prune).items()}


def lt_ladder(shapes: Shapes, prune: PruneConfig, rounds: int) -> list[dict[str, int]]:
    """Weights each layer keeps after 0, 1, ..., `rounds` prunings by the lt planner: counts, from shapes alone.

    Entry r is what an lt run's round r trains with, so budget mode and the comparison's target can match it
    without running lt.
    """
    fractions = lt_fractions(shapes, prune)
    kept = {name: math.prod(shape) for name, shape in shapes.items()}
    ladder = [kept]
    for _ in range(rounds):
        kept = {name: k - prune_count(k, fractions[name]) for name, k in kept.items()}
        ladder.append(kept)
    return ladder


def global_fractions(scores: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                     fraction: float) -> dict[str, float]:
    """Per-layer fractions equivalent to pruning `fraction` of all remaining weights by one global score.

    Expressing a global method as per-layer fractions lets every planner share `magnitude_prune`; the
    scores must order weights within a layer the same way magnitude does (true of |w| and of LAMP).
    """
    names = list(masks)
    flat = torch.cat([torch.where(masks[n].flatten() > 0, scores[n].detach().flatten().double(),
                                  torch.full_like(scores[n].flatten(), math.inf, dtype=torch.float64))
                      for n in names])
    layer_of = torch.cat([torch.full((masks[n].numel(),), i) for i, n in enumerate(names)])
    total = int(sum(m.sum().item() for m in masks.values()))
    k = prune_count(total, fraction)
    chosen = layer_of[torch.sort(flat, stable=True).indices[:k]]
    counts = torch.bincount(chosen, minlength=len(names))
    return {n: _fraction_for(int(counts[i]), int(masks[n].sum().item())) for i, n in enumerate(names)}


def _fraction_for(count: int, remaining: int) -> float:
    return 0.0 if remaining == 0 else count / remaining


def budget_counts(fractions: Mapping[str, float], kept: Mapping[str, int], budget: int,
                  max_fraction: float = 0.99) -> dict[str, int]:
    """Per-layer counts that remove exactly `budget` weights with `fractions`' allocation across layers.

    Shares above `max_fraction` of a layer are capped and the excess goes to the other layers; what cannot be
    scaled (an all-zero plan) is spread in proportion to the weights remaining.
    """
    names = list(kept)
    budget = min(budget, int(sum(math.floor(max_fraction * kept[n]) for n in names)))
    weight = {n: fractions.get(n, 0.0) * kept[n] for n in names}
    alloc: dict[str, float] = {}
    free, left = set(names), float(budget)
    while free:
        if sum(weight[n] for n in free) == 0:  # nothing to scale: spread over what the free layers keep
            weight.update({n: float(kept[n]) for n in free})
        total = sum(weight[n] for n in free)
        scale = left / total if total > 0 else 0.0
        over = {n for n in free if weight[n] * scale > max_fraction * kept[n]}
        if not over:
            alloc.update({n: weight[n] * scale for n in free})
            break
        for n in over:
            alloc[n] = math.floor(max_fraction * kept[n])
            left -= alloc[n]
        free -= over
    counts = {n: math.floor(alloc[n]) for n in names}
    # Hand the rounding remainder to the largest fractional parts (ties: layer order).
    for n in sorted(names, key=lambda n: alloc[n] - counts[n], reverse=True)[: budget - sum(counts.values())]:
        counts[n] += 1
    return counts


def match_budget(fractions: Mapping[str, float], kept: Mapping[str, int], budget: int,
                 max_fraction: float = 0.99) -> dict[str, float]:
    """`budget_counts` as fractions of each layer's remaining weights (`prune_count` gives the counts back)."""
    return count_fractions(budget_counts(fractions, kept, budget, max_fraction), kept)


def count_fractions(counts: Mapping[str, int], kept: Mapping[str, int]) -> dict[str, float]:
    """Per-layer fractions of the weights remaining that `prune_count` turns back into `counts` exactly."""
    return {n: _fraction_for(counts[n], kept[n]) for n in kept}


def lamp_scores(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LAMP (Lee et al. 2021): w_u^2 / sum_{v >= u} w_v^2 within the layer, sorted ascending by magnitude."""
    out = {}
    for name, w in weights.items():
        sq = w.detach().flatten().double() ** 2
        order = torch.argsort(sq, stable=True)
        tail = torch.flip(torch.cumsum(torch.flip(sq[order], [0]), 0), [0])
        score = torch.empty_like(sq)
        score[order] = sq[order] / tail.clamp_min(1e-300)
        out[name] = score.view_as(w)
    return out


def erk_densities(shapes: Mapping[str, torch.Size], density: float) -> dict[str, float]:
    """Erdős–Rényi-Kernel densities (Evci et al. 2020) at an overall `density`: layer density proportional to
    sum(shape) / prod(shape), scaled to hit the target, layers that would exceed 1 kept dense."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / math.prod(s) for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(numel.values()) - sum(numel[n] for n in dense)
        scale = budget / sum(raw[n] * numel[n] for n in numel if n not in dense)
        over = {n for n in numel if n not in dense and raw[n] * scale > 1}
        if not over:
            return {n: 1.0 if n in dense else raw[n] * scale for n in numel}
        dense |= over


def erk_fractions(masks: Mapping[str, torch.Tensor], density: float) -> dict[str, float]:
    """Per-layer fractions of the weights remaining that move `masks` to ERK's densities at overall `density`.
    Pruning cannot regrow weights: a layer already sparser than its ERK share is left as it is (fraction 0)."""
    _, per_layer = remaining(masks)
    target = erk_densities({n: m.shape for n, m in masks.items()}, density)
    return {n: float(np.clip(1 - target[n] / per_layer[n], 0.0, 0.999)) if per_layer[n] > 0 else 0.0
            for n in masks}


def random_masks(shapes: Mapping[str, torch.Size], densities: Mapping[str, float],
                 generator: torch.Generator) -> Masks:
    """Masks keeping round(density * size) uniformly random weights per layer (the random-pruning control)."""
    out = {}
    for name, shape in shapes.items():
        n = math.prod(shape)
        keep = int(round(densities[name] * n))
        mask = torch.zeros(n)
        mask[torch.randperm(n, generator=generator)[:keep]] = 1.0
        out[name] = mask.view(shape)
    return out


def remaining(masks: Mapping[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
    """Fraction of prunable weights remaining overall, and per layer."""
    kept = {n: float(m.sum().item()) for n, m in masks.items()}
    total = sum(m.numel() for m in masks.values())
    return sum(kept.values()) / total, {n: kept[n] / masks[n].numel() for n in masks}
