"""Training and evaluation of a masked network on in-memory tensors.

The mask is applied in place after every optimizer step (one fused multiply), so a pruned weight is exactly
zero whenever anyone can look, at a fraction of the cost of `torch.nn.utils.prune`'s forward hook.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mdp_prune.config import TrainConfig
from mdp_prune.engine.data import Splits
from mdp_prune.engine.models import prunable_weights
from mdp_prune.errors import UserError

EVAL_BATCH = 4096


class TrainingDiverged(UserError):
    """The loss became inf or NaN: the weights are garbage from here on, so nothing of the round may be kept."""

    def __init__(self, iteration: int, what: str, cfg: TrainConfig, where: str = "training") -> None:
        self.iteration, self.what, self.cfg = iteration, what, cfg
        super().__init__(f"{where} diverged at iteration {iteration} ({what}); nothing of it was kept: rerun with "
                         f"a smaller --lr (now {cfg.lr:g}, optimizer {cfg.optimizer})")

    def at(self, where: str) -> TrainingDiverged:
        """The same error, naming the round (or control, or proxy) it happened in."""
        return TrainingDiverged(self.iteration, self.what, self.cfg, where)


def derive_seed(seed: int, *tags: object) -> int:
    """An independent 63-bit seed for one purpose of a run (init, data order, a round's random draw ...)."""
    text = ":".join(str(t) for t in (seed, *tags))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


def batch_order(n_examples: int, batch_size: int, iterations: int, seed: int) -> torch.Tensor:
    """Example indices for every iteration [iterations, batch_size]: consecutive shuffled epochs.

    Every round replays the same order from the rewind iteration on, as OpenLTH does, so that rounds differ
    only in their masks.
    """
    generator = torch.Generator().manual_seed(derive_seed(seed, "order"))
    per_epoch = max(1, n_examples // batch_size)
    epochs = -(-iterations // per_epoch)
    order = torch.cat([torch.randperm(n_examples, generator=generator)[: per_epoch * batch_size]
                       for _ in range(epochs)])
    return order.view(-1, batch_size)[:iterations]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), EVAL_BATCH):
        logits = model(x[i : i + EVAL_BATCH])
        loss_sum += F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + EVAL_BATCH]).sum().item()
    model.train(was_training)
    return loss_sum / len(x), correct / len(x)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    weights = prunable_weights(model)
    names = [n for n in weights if n in masks]
    if names:
        torch._foreach_mul_([weights[n] for n in names], [masks[n] for n in names])


@dataclass
class TrainResult:
    test_accuracy: float
    val_accuracy: float
    early_stop_iteration: int
    iterations: int
    seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)  # iteration, val_loss, val_accuracy

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def train(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    splits: Splits,
    cfg: TrainConfig,
    order: torch.Tensor,
    start: int,
    snapshot_at: int | None = None,
    on_snapshot: Callable[[nn.Module], None] | None = None,
    progress: Callable[[int], None] | None = None,
    stop: int | None = None,
    test: bool = True,
) -> TrainResult:
    """Train from iteration `start` to `stop` (default `cfg.train_iterations`), replaying `order[start:stop]`.

    Validation runs at `start`, every `eval_every` iterations and at the end; the early-stopping iteration is
    the one with the lowest validation loss. `on_snapshot` sees the model after `snapshot_at` iterations (the
    rewind point) when that falls inside this run. A planner's short trial retraining passes `stop` and
    `test=False`: it must never see the test split.
    """
    began = time.perf_counter()
    masked: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
    if masks is not None:
        device = next(model.parameters()).device
        masks = {n: m.to(device) for n, m in masks.items()}
        apply_masks(model, masks)
        weights = prunable_weights(model)
        # Resolved once: the hot loop pays one fused multiply per step and no Python walk over the modules.
        masked = ([weights[n] for n in masks], [masks[n] for n in masks])
    optimizer = make_optimizer(cfg, model)
    x, y = splits.train_x, splits.train_y
    curve: list[dict[str, float]] = []

    last_loss: torch.Tensor | None = None

    def record(iteration: int) -> None:
        # Checked where the model is evaluated anyway: a per-step check would cost a device sync every step,
        # and NaN weights stay NaN, so a divergence between two evaluations is still caught at the next.
        if last_loss is not None and not torch.isfinite(last_loss).item():
            raise TrainingDiverged(iteration, f"training loss {last_loss.item()}", cfg)
        loss, acc = evaluate(model, splits.val_x, splits.val_y)
        if not math.isfinite(loss):
            raise TrainingDiverged(iteration, f"validation loss {loss}", cfg)
        curve.append({"iteration": iteration, "val_loss": loss, "val_accuracy": acc})

    model.train()
    if snapshot_at == start and on_snapshot:
        on_snapshot(model)
    record(start)
    stop = cfg.train_iterations if stop is None else stop
    chunk_start = start
    for it in range(start, stop):
        idx = order[it]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        last_loss = loss.detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if masked is not None:
            with torch.no_grad():
                torch._foreach_mul_(*masked)
        done = it + 1
        if done == snapshot_at and on_snapshot:
            on_snapshot(model)
        if done % cfg.eval_every == 0 or done == stop:
            record(done)
            if progress:
                progress(done - chunk_start)
                chunk_start = done
    best = min(curve, key=lambda row: row["val_loss"])
    test_acc = evaluate(model, splits.test_x, splits.test_y)[1] if test else float("nan")
    return TrainResult(
        test_accuracy=test_acc,
        val_accuracy=curve[-1]["val_accuracy"],
        early_stop_iteration=int(best["iteration"]),
        iterations=stop - start,
        seconds=time.perf_counter() - began,
        curve=curve,
    )
