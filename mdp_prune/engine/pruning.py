"""Pure pruning functions: (weights, masks, fractions) -> new masks. Nothing here mutates its inputs.

A mask is a float tensor of 0s and 1s shaped like its weight. A fraction is always a share of the layer's
*remaining* weights, so that one action means the same thing in every round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

Masks = dict[str, torch.Tensor]


def ones_like(weights: Mapping[str, torch.Tensor]) -> Masks:
    return {name: torch.ones_like(w, dtype=torch.float32) for name, w in weights.items()}


def prune_count(remaining: int, fraction: float) -> int:
    return min(remaining, int(round(fraction * remaining)))


def magnitude_prune(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                    fractions: Mapping[str, float]) -> Masks:
    """Per layer, mask the `fraction` of remaining weights with the smallest |w| (magnitude, never sign)."""
    new = {}
    for name, mask in masks.items():
        fraction = fractions.get(name, 0.0)
        new_mask = mask.detach().clone()
        remaining = int(mask.sum().item())
        k = prune_count(remaining, fraction)
        if k > 0:
            scores = weights[name].detach().abs().flatten().clone()
            scores[mask.flatten() == 0] = math.inf  # already pruned: never chosen again
            # A stable sort makes ties (e.g. exact zeros) break by position: reproducible masks.
            order = torch.sort(scores, stable=True).indices[:k]
            new_mask.view(-1)[order] = 0.0
        new[name] = new_mask
    return new


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
