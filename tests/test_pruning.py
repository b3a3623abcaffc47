import math

import pandas as pd
import pytest
import torch
from torch import nn

from mdp_prune.engine import pruning
from mdp_prune.engine.models import build_model, layer_kinds, layer_shapes, multiply_adds, prunable_weights
from mdp_prune.experiments.imp import run_imp
from mdp_prune.store import io, paths


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(30, 20, generator=g), "b": torch.randn(10, 30, generator=g)}


def test_fractions_compound_per_layer():
    weights = _weights()
    masks = pruning.ones_like(weights)
    for _ in range(5):
        masks = pruning.magnitude_prune(weights, masks, {"a": 0.2, "b": 0.1})
    _, per_layer = pruning.remaining(masks)
    # Each round rounds the count of weights removed: allow one weight of slack per round.
    assert abs(per_layer["a"] - 0.8**5) <= 5 / 600
    assert abs(per_layer["b"] - 0.9**5) <= 5 / 300


def test_masks_only_shrink_and_inputs_untouched():
    masks = pruning.ones_like(_weights())
    for step in range(4):
        weights = _weights(step)  # weights change between rounds, as after retraining
        weights_before = {n: w.clone() for n, w in weights.items()}
        masks_before = {n: m.clone() for n, m in masks.items()}
        new = pruning.magnitude_prune(weights, masks, {"a": 0.3, "b": 0.3})
        for n in masks:  # the very tensors passed in are unchanged, and the new mask only removes weights
            assert torch.equal(weights[n], weights_before[n]) and torch.equal(masks[n], masks_before[n])
            assert torch.all(new[n] <= masks[n]) and new[n].data_ptr() != masks[n].data_ptr()
        masks = new


def test_magnitude_not_sign_decides():
    w = {"a": torch.tensor([[-10.0, 0.1, -0.2, 5.0, -0.01, 3.0]])}
    mask = pruning.magnitude_prune(w, pruning.ones_like(w), {"a": 0.5})["a"]
    assert mask.tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0, 1.0]]


def test_already_pruned_weights_are_not_counted_again():
    w = {"a": torch.arange(1.0, 11.0).view(1, 10)}
    mask = pruning.magnitude_prune(w, pruning.ones_like(w), {"a": 0.5})
    mask = pruning.magnitude_prune(w, mask, {"a": 0.4})  # 40 % of the 5 remaining = 2 more
    assert mask["a"].sum() == 3 and mask["a"][0, -3:].sum() == 3


def test_global_fractions_match_a_global_threshold():
    weights = _weights()
    masks = pruning.ones_like(weights)
    fractions = pruning.global_fractions({n: w.abs() for n, w in weights.items()}, masks, 0.25)
    new = pruning.magnitude_prune(weights, masks, fractions)
    all_w = torch.cat([w.abs().flatten() for w in weights.values()])
    threshold = torch.sort(all_w).values[int(round(0.25 * all_w.numel())) - 1]
    for n, w in weights.items():
        assert torch.equal(new[n], (w.abs() > threshold).float())


@pytest.mark.parametrize("model", ["mlp", "conv2"])
def test_lt_ladder_equals_what_an_lt_run_leaves(tmp_path, tiny, model):
    """Budget mode and the comparison's target use the ladder computed from shapes alone; it must be, per layer
    and round, what an lt run's masks keep."""
    config = tiny(**{"train.model": model, "prune.prune_conv": 0.15}, rounds=4)
    run = run_imp(config, tmp_path, progress=False)
    shapes = layer_shapes(config.train)
    ladder = pruning.lt_ladder(shapes, config.prune, config.rounds)
    rows = pd.read_csv(run / paths.ROUNDS)
    assert len(rows) == len(ladder) == 5
    for r, kept in enumerate(ladder):
        masks = io.load_torch(paths.masks_file(run, r)) if r else {n: torch.ones(s) for n, s in shapes.items()}
        assert {n: m.shape for n, m in masks.items()} == shapes
        assert {n: int(m.sum()) for n, m in masks.items()} == kept
        for n in shapes:
            assert rows.loc[r, f"remaining:{n}"] == pytest.approx(kept[n] / masks[n].numel(), rel=1e-9)
    kinds = pruning.layer_kinds(shapes)
    assert set(kinds.values()) == ({"conv", "fc", "output"} if model == "conv2" else {"fc", "output"})


def test_erk_hits_the_overall_density_and_keeps_layers_legal():
    shapes = {"a": torch.Size([300, 784]), "b": torch.Size([100, 300]), "c": torch.Size([10, 100])}
    dens = pruning.erk_densities(shapes, 0.1)
    total = sum(math.prod(s) for s in shapes.values())
    assert abs(sum(dens[n] * math.prod(s) for n, s in shapes.items()) / total - 0.1) < 1e-9
    assert all(0 < d <= 1 for d in dens.values()) and dens["c"] > dens["a"]


def test_lamp_scores_preserve_magnitude_order_within_a_layer():
    w = _weights()["a"]
    s = pruning.lamp_scores({"a": w})["a"]
    order_w = torch.argsort(w.abs().flatten(), stable=True)
    assert torch.all(s.flatten()[order_w][1:] >= s.flatten()[order_w][:-1])
    assert torch.isclose(s.flatten().max(), torch.tensor(1.0, dtype=s.dtype))


def test_random_masks_have_the_asked_densities():
    shapes = {"a": torch.Size([30, 20])}
    masks = pruning.random_masks(shapes, {"a": 0.25}, torch.Generator().manual_seed(0))
    assert masks["a"].sum() == 150


def test_only_linear_and_conv_weights_are_prunable():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    names = list(prunable_weights(model))
    assert names == ["0", "3"]
    params = {id(p) for p in prunable_weights(model).values()}
    assert id(model[1].weight) not in params and id(model[0].bias) not in params


@pytest.mark.parametrize("name,n_layers", [("lenet_300_100", 3), ("conv2", 5), ("conv4", 7), ("conv6", 9)])
def test_models_build_for_mnist_and_digits_shapes(name, n_layers):
    model = build_model(name, (1, 28, 28), 10, (), seed=0)
    kinds = layer_kinds(model)
    assert len(kinds) == n_layers and list(kinds.values())[-1] == "output"
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    macs = multiply_adds(model, (1, 28, 28))
    if name == "lenet_300_100":
        assert macs == {"fc1": 784 * 300, "fc2": 300 * 100, "fc3": 100 * 10}


def test_initialisation_is_seeded_glorot_normal():
    a = build_model("lenet_300_100", (1, 28, 28), 10, (), seed=3)
    b = build_model("lenet_300_100", (1, 28, 28), 10, (), seed=3)
    c = build_model("lenet_300_100", (1, 28, 28), 10, (), seed=4)
    wa, wb, wc = (prunable_weights(m)["fc1"] for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert abs(wa.std().item() - math.sqrt(2 / (784 + 300))) < 0.002
