"""The paper's controls for a found ticket, trained with the run's own code, data order and budget.

- reinit: the ticket's mask, weights drawn afresh from the initial distribution (Frankle & Carbin's control).
- random-prune: random masks at the ticket's per-layer densities, with the rewound weights W_k.
Both train the same iterations k..T as the ticket, and write `controls/<kind>.csv` (one row per round,
resumable).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mdp_prune.engine import pruning
from mdp_prune.engine.models import prunable_weights
from mdp_prune.engine.training import derive_seed
from mdp_prune.errors import UserError, unknown
from mdp_prune.experiments.imp import Setup, round_row
from mdp_prune.store import io, paths
from mdp_prune.store.lock import folder_lock


def run_control(run: Path, kind: str, rounds: list[int] | None = None, progress: bool = True) -> Path:
    with folder_lock(run, "run folder"):  # reads the run's rounds and writes into its folder
        return _run_control(run, kind, rounds, progress)


def _run_control(run: Path, kind: str, rounds: list[int] | None, progress: bool) -> Path:
    if kind not in paths.CONTROL_KINDS:
        raise unknown("control", kind, paths.CONTROL_KINDS)
    config = io.read_config(run)
    ticket_rows = io.read_rounds(run)
    available = [int(r) for r in ticket_rows["round"] if r > 0]
    rounds = available if rounds is None else rounds
    missing = sorted(set(rounds) - set(available))
    if missing:
        raise UserError(f"{run} has no trained round(s) {missing}; it has {available or 'only round 0'}")
    setup = Setup(config)
    rewind = io.load_torch(run / paths.REWIND, setup.device)
    out = paths.control_file(run, kind)
    done = set(io.read_csv(out).get("round", []))
    k = config.train.rewind_iteration
    for r in rounds:
        if r in done:
            continue
        masks = io.load_masks(run, r, setup.device)
        if kind == "reinit":
            model = setup.model(seed=derive_seed(config.train.seed, "reinit", r) % 2**31)
        else:
            model = setup.model()
            try:
                model.load_state_dict(rewind)
            except RuntimeError:  # other layer names or shapes
                raise UserError(f"{run / paths.REWIND} does not fit the model in {run / paths.CONFIG} "
                                f"({config.train.model}); the run folder is inconsistent") from None
            _, densities = pruning.remaining(masks)
            generator = torch.Generator().manual_seed(derive_seed(config.train.seed, "random-prune", r))
            shapes = {n: m.shape for n, m in masks.items()}
            masks = {n: m.to(setup.device) for n, m in pruning.random_masks(shapes, densities, generator).items()}
        if set(masks) != set(prunable_weights(model)):
            raise UserError(f"{paths.masks_file(run, r)} does not match the layers of the model in "
                            f"{run / paths.CONFIG} ({config.train.model}); the run folder is inconsistent")
        began = time.perf_counter()
        result = setup.train(model, masks, k, f"{kind} round {r}", progress)
        row = round_row(r, masks, result, config.train.train_iterations - k, time.perf_counter() - began)
        io.append_csv(out, [row])
    return out
