"""The paper's models, built for any input shape, with Glorot-normal initialisation.

Layers carry stable names (fc1, conv1, ...) because masks, CSV columns and planners address layers by name.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from mdp_prune.config import TrainConfig
from mdp_prune.engine import pruning
from mdp_prune.engine.data import SHAPES
from mdp_prune.errors import lookup

PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)


def mlp(input_shape: Sequence[int], num_classes: int, hidden_sizes: Sequence[int]) -> nn.Module:
    widths = [math.prod(input_shape), *hidden_sizes, num_classes]
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
        layers[f"fc{i}"] = nn.Linear(n_in, n_out)
        if i < len(widths) - 1:
            layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


def lenet_300_100(input_shape: Sequence[int], num_classes: int, hidden_sizes: Sequence[int] = ()) -> nn.Module:
    return mlp(input_shape, num_classes, (300, 100))


def _conv_net(blocks: Sequence[int]) -> Callable[..., nn.Module]:
    """Conv-2/4/6: pairs of 3x3 convolutions each followed by 2x2 max-pooling, then FC 256-256-classes."""

    def build(input_shape: Sequence[int], num_classes: int, hidden_sizes: Sequence[int] = ()) -> nn.Module:
        channels, height, width = input_shape
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        n = 0
        for out_channels in blocks:
            for _ in range(2):
                n += 1
                layers[f"conv{n}"] = nn.Conv2d(channels, out_channels, kernel_size=3, padding=1)
                layers[f"crelu{n}"] = nn.ReLU()
                channels = out_channels
            layers[f"pool{n // 2}"] = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for {len(blocks)} pooling stages")
        layers["flatten"] = nn.Flatten()
        widths = [channels * height * width, 256, 256, num_classes]
        for i in range(3):
            layers[f"fc{i + 1}"] = nn.Linear(widths[i], widths[i + 1])
            if i < 2:
                layers[f"relu{i + 1}"] = nn.ReLU()
        return nn.Sequential(layers)

    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet_300_100": lenet_300_100,
    "mlp": mlp,
    "conv2": _conv_net((64,)),
    "conv4": _conv_net((64, 128)),
    "conv6": _conv_net((64, 128, 256)),
}


def build_model(name: str, input_shape: Sequence[int], num_classes: int, hidden_sizes: Sequence[int],
                seed: int) -> nn.Module:
    """Build and initialise a model; the initialisation depends only on `seed`."""
    model = lookup(MODELS, name, "model")(input_shape, num_classes, hidden_sizes)
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, PRUNABLE_TYPES):
            nn.init.xavier_normal_(module.weight, generator=generator)
            nn.init.zeros_(module.bias)
    return model


def prunable_weights(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """The weights IMP prunes, in layer order: Linear and Conv weights only, never biases or norm scales."""
    return OrderedDict(
        (name, module.weight) for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)
    )


def layer_kinds(model: nn.Module) -> dict[str, str]:
    """'conv', 'fc' or 'output' per prunable layer: the paper's rates depend on it."""
    return pruning.layer_kinds({name: w.shape for name, w in prunable_weights(model).items()})


def layer_shapes(train: TrainConfig) -> dict[str, torch.Size]:
    """Prunable weight shapes of the configured model, known without loading its data or allocating its weights
    (the meta device allocates nothing)."""
    input_shape, num_classes = SHAPES[train.dataset]
    with torch.device("meta"):
        model = lookup(MODELS, train.model, "model")(input_shape, num_classes, train.hidden_sizes)
    return {name: w.shape for name, w in prunable_weights(model).items()}


def multiply_adds(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Dense multiply-adds per prunable layer for one example (for the theoretical speed-up)."""
    counts: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            def hook(mod: nn.Module, _inp: tuple, out: torch.Tensor, name: str = name) -> None:
                per_output = mod.weight[0].numel()
                counts[name] = per_output * out[0].numel()
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    for h in hooks:
        h.remove()
    return counts
