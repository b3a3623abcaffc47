"""Iterative magnitude pruning with rewinding, the pruning step handed to a planner (docs/design.md).

    round 0: train the dense network W0 -> W_T, keeping W_k (shared by every planner, cached in dense/)
    round r: planner proposes per-layer fractions from round r-1's W_T; prune by magnitude; rewind the
             survivors to W_k; train iterations k..T with the same data order.

Resumption: the mask and the planner state a round starts from are saved before the round's row is
appended to rounds.csv, which is the commit point; a rerun continues after the last committed row.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from mdp_prune.config import RunConfig, flag
from mdp_prune.engine import data, numerics, pruning
from mdp_prune.engine.models import MODELS, build_model, layer_kinds, layer_shapes, prunable_weights
from mdp_prune.engine.training import TrainingDiverged, TrainResult, batch_order, resolve_device, train
from mdp_prune.errors import UserError, lookup
from mdp_prune.planners.base import Planner, RoundContext
from mdp_prune.planners.proxies import Retrainer
from mdp_prune.planners.registry import PLANNERS, make_planner
from mdp_prune.store import io, paths
from mdp_prune.store.lock import folder_lock

RoundHook = Callable[[int, nn.Module, dict[str, torch.Tensor]], None]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class Setup:
    """The pieces every round, control and export of a run needs, built from its configuration."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.splits = data.load(config.train.dataset, config.data_dir).to(self.device)
        t = config.train
        if t.batch_size > len(self.splits.train_y):
            raise UserError(f"--batch-size {t.batch_size} is larger than {t.dataset}'s training split "
                            f"({len(self.splits.train_y)} examples)")
        if t.proxy_holdout:
            n_val = len(self.splits.val_y)
            if t.proxy_holdout >= n_val:
                raise UserError(f"--proxy-holdout {t.proxy_holdout} leaves no validation examples: the {t.dataset} "
                                f"validation split has {n_val}")
            self.splits = self.splits.hold_out(t.proxy_holdout)
        self.order = batch_order(len(self.splits.train_y), t.batch_size, t.train_iterations, t.seed)
        self.order = self.order.to(self.device)

    def model(self, seed: int | None = None) -> nn.Module:
        t = self.config.train
        model = build_model(t.model, self.splits.input_shape, self.splits.num_classes, t.hidden_sizes,
                            t.seed if seed is None else seed)
        return model.to(self.device)

    def train(self, model: nn.Module, masks: dict[str, torch.Tensor] | None, start: int, desc: str,
              progress: bool, **kwargs: Any) -> TrainResult:
        with tqdm(total=self.config.train.train_iterations - start, desc=desc, leave=False, unit="it",
                  disable=not progress, dynamic_ncols=True) as bar:
            try:
                return train(model, masks, self.splits, self.config.train, self.order, start,
                             progress=bar.update, **kwargs)
            except TrainingDiverged as e:
                raise e.at(desc) from None


def dense_round(setup: Setup, out: Path, progress: bool) -> dict[str, Any]:
    """Train (or load) round 0: the initial, rewind-point and trained weights and the dense result."""
    path = paths.dense_dir(out, setup.config.train) / paths.DENSE
    # Shared by every run with these training settings: deleting one run folder would not replace it.
    remedy = f"delete {path} (the shared dense round); the next run retrains it"
    if path.is_file():
        return io.load_torch(path, remedy=remedy)
    # Every run with these training settings shares the folder: a second process waits for the first, then loads it.
    with folder_lock(path.parent, "dense folder", wait=True, announce=progress):
        return io.load_torch(path, remedy=remedy) if path.is_file() else _train_dense(setup, path, progress)


def _train_dense(setup: Setup, path: Path, progress: bool) -> dict[str, Any]:
    model = setup.model()
    init = _state(model)
    snapshot: dict[str, dict[str, torch.Tensor]] = {}
    result = setup.train(model, None, 0, "round 0 (dense)", progress,
                         snapshot_at=setup.config.train.rewind_iteration,
                         on_snapshot=lambda m: snapshot.update(rewind=_state(m)))
    dense = {"init": init, "rewind": snapshot["rewind"], "trained": _state(model), "result": result.to_dict()}
    io.save_torch(path, dense)
    io.write_csv(path.parent / paths.ENVIRONMENT, [_environment_row(0, setup.device)])
    return dense


def round_row(round_: int, masks: dict[str, torch.Tensor], result: TrainResult, iterations: int,
              seconds: float, proxy_iterations: int = 0) -> dict[str, Any]:
    overall, per_layer = pruning.remaining(masks)
    row = {"round": round_, "weights_remaining": overall, "test_accuracy": result.test_accuracy,
           "val_accuracy": result.val_accuracy, "early_stop_iteration": result.early_stop_iteration,
           "train_iterations": iterations, "proxy_iterations": proxy_iterations, "seconds": seconds}
    row.update({f"remaining:{n}": v for n, v in per_layer.items()})
    return row


def check_names(config: RunConfig) -> RunConfig:
    """Look up the dataset, model and planner by name, so that a misspelt one stops a run (or a grid) before any
    work; each registry reports its own choices. Then check what needs the model's layers."""
    lookup(data.DATASETS, config.train.dataset, "dataset")
    lookup(MODELS, config.train.model, "model")
    lookup(PLANNERS, config.prune.planner, "planner")
    _check_anchor(config)
    return config


def _check_anchor(config: RunConfig) -> None:
    """`--anchor lt` commits lt's allocation as a plan of `--actions`: each lt fraction the model uses must be one.
    (ERK's fractions are continuous: its counts are committed as they are.)"""
    if config.prune.planner != "qlearning" or not config.qlearning.anchored() or config.qlearning.anchor != "lt":
        return
    shapes = layer_shapes(config.train)
    plan, kinds = pruning.lt_action_plan(shapes, config.prune), pruning.layer_kinds(shapes)
    fields = dict.fromkeys(pruning.LT_RATE_FIELDS[kinds[name]] for name, action in plan.items() if action is None)
    if fields:
        missing = ", ".join(f"{flag(name)} {getattr(config.prune, name):g}" for name in fields)
        raise UserError(f"--anchor-z {config.qlearning.anchor_z:g} commits lt's allocation as a plan of --actions, "
                        f"which lacks {missing} (--anchor-z 0 turns the anchor off; --anchor erk needs none)")


def run_imp(config: RunConfig, out: Path | str = "results", progress: bool = True,
            on_round_start: RoundHook | None = None) -> Path:
    """Run (or resume) IMP with the configured planner; returns the run folder."""
    check_names(config)
    out = io.writable_folder(out, "--out")
    run = paths.run_dir(out, config)
    with folder_lock(run, "run folder"):  # a second process would commit every round a second time
        return _run_locked(config, out, Setup(config), run, progress, on_round_start)


def _run_locked(config: RunConfig, out: Path, setup: Setup, run: Path, progress: bool,
                on_round_start: RoundHook | None) -> Path:
    rows = _committed_rows(run, config)
    done = len(rows)
    if done and _reached_target(config, rows.iloc[-1]):
        return run  # reached the target in an earlier invocation
    planner = make_planner(config)
    _check_not_stale(run, planner, done)
    model = setup.model()
    weights = prunable_weights(model)
    # Everything a resumption reads is loaded before anything is written: a damaged file stops the run
    # with the results intact.
    masks = _resumed_masks(run, done, weights, setup.device)
    if masks is None:
        return run  # stopped earlier on a plan that pruned nothing
    if done > 0 or paths.planner_state_file(run, 0).is_file():
        planner.load_state_dict(io.load_torch(paths.planner_state_file(run, done)))

    dense = dense_round(setup, out, progress)
    _start_run(run, config, dense, planner, first_round=done)
    if done <= config.rounds:
        _record_environment(run, paths.dense_dir(out, config.train), done, setup.device)
    loop = _Loop(setup, run, model, weights, planner, dense, on_round_start, progress)
    if done:
        loop.iterations, loop.seconds = int(rows["train_iterations"].iloc[-1]), float(rows["seconds"].iloc[-1])
        loop.proxy_iterations = int(rows["proxy_iterations"].iloc[-1])
    with tqdm(total=config.rounds + 1, initial=min(done, config.rounds + 1), desc=f"IMP {run.name}",
              unit="round", disable=not progress, dynamic_ncols=True) as bar:
        for r in range(done, config.rounds + 1):
            next_masks, row = loop.round(r, masks)
            bar.update(1)
            bar.set_postfix(remaining=f"{row['weights_remaining']:.3f}", test=f"{row['test_accuracy']:.4f}")
            if _reached_target(config, row) or _unchanged(next_masks, masks):
                break  # an unchanged mask: training is deterministic, every later round would repeat this one
            masks = next_masks
    return run


def _committed_rows(run: Path, config: RunConfig) -> pd.DataFrame:
    """rounds.csv of the run so far (empty for a new run), after checking the folder holds this configuration."""
    if (run / paths.CONFIG).is_file():
        stored = io.read_config(run)
        if stored.hash() != config.hash():
            raise UserError(f"{run} holds a run of another configuration")
    return io.read_rounds(run)


def _reached_target(config: RunConfig, row: Mapping[str, Any]) -> bool:
    target = config.prune.target_remaining
    return target > 0 and row["weights_remaining"] <= target


def _check_not_stale(run: Path, planner: Planner, done: int) -> None:
    """A run resumed after a fix to its planner's objective would mix plans of two objectives: stop, and say
    where to replan from."""
    stale = planner.stale_round(io.read_csv(run / paths.QLEARNING_ROUNDS)) if done else None
    if stale is None or stale >= done:
        return
    remedy = (f"`mdp-prune truncate {run} --round {stale}` replans from there; then rerun its command" if stale > 0
              else f"delete {run} and rerun its command")
    raise UserError(f"{run} was planned from round {stale} on by an earlier version of the planner's objective: "
                    f"{remedy}")


def _resumed_masks(run: Path, done: int, weights: Mapping[str, torch.Tensor],
                   device: torch.device) -> dict[str, torch.Tensor] | None:
    """The masks round `done` trains with (all ones for a new run), or None when the last plan pruned nothing."""
    if done == 0:
        return pruning.ones_like(weights)
    masks = io.load_masks(run, done, device)
    if set(masks) != set(weights):
        raise UserError(f"{paths.masks_file(run, done)} does not match the model's layers")
    previous = io.load_masks(run, done - 1) if done > 1 else pruning.ones_like(weights)
    return None if _unchanged(masks, previous) else masks


def _start_run(run: Path, config: RunConfig, dense: dict[str, Any], planner: Planner, first_round: int) -> None:
    """Write what every round of the run reads: its configuration, the rewind point, the planner's first state."""
    io.write_json(run / paths.CONFIG, config.to_dict())
    if not (run / paths.REWIND).is_file():
        io.save_torch(run / paths.REWIND, dense["rewind"])
    if first_round == 0:
        _save_planner_state(run, 0, planner)


def _save_planner_state(run: Path, round_: int, planner: Planner) -> None:
    # Gzipped: a Q-table that keeps earlier layers' actions in its state is mostly untouched initial values.
    io.save_torch(paths.planner_state_file(run, round_), planner.state_dict(), compress=True)


def _environment_row(first_round: int, device: torch.device) -> dict[str, Any]:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"first_round": first_round, "started": started, **numerics.environment(device)}


def _record_environment(run: Path, dense: Path, first_round: int, device: torch.device) -> None:
    """Append this command's numerical environment to the run's record. Rounds computed in another environment
    than the ones before them (the shared dense round's, for a new run) need not equal bitwise what one
    uninterrupted run would give: say so, once, on stderr."""
    row = _environment_row(first_round, device)
    before = io.read_csv(run / paths.ENVIRONMENT if first_round else dense / paths.ENVIRONMENT, as_text=True)
    changed = numerics.differences(before.iloc[-1].to_dict(), row) if not before.empty else []
    if changed:
        what = f"resumes at round {first_round}" if first_round else "starts from a dense round trained"
        print(f"note: {run.name} {what} in another numerical environment ({'; '.join(changed)}); its rounds may "
              "differ bitwise from a run made in one", file=sys.stderr)
    io.append_csv(run / paths.ENVIRONMENT, [row], as_text=True)


class _Loop:
    """One run's rounds: train (rewound to W_k under the round's mask), plan, prune, commit."""

    def __init__(self, setup: Setup, run: Path, model: nn.Module, weights: dict[str, torch.Tensor],
                 planner: Planner, dense: dict[str, Any], on_round_start: RoundHook | None, progress: bool) -> None:
        self.setup, self.run, self.model, self.weights, self.planner = setup, run, model, weights, planner
        self.dense, self.dense_result = dense, TrainResult(**dense["result"])
        self.kinds = layer_kinds(model)
        self.on_round_start, self.progress = on_round_start, progress
        self.iterations, self.seconds = 0, 0.0  # cumulative, as rounds.csv reports them
        self.proxy_iterations = 0  # cumulative steps of the planner's retraining proxies

    def round(self, r: int, masks: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Round r from start to commit; returns the next round's masks and round r's row of rounds.csv."""
        result, train_seconds = self._train(r, masks)
        began = time.perf_counter()
        setup = self.setup
        retrainer = Retrainer(self.model, _state(self.model), self.dense["rewind"], setup.splits, setup.config.train,
                              setup.order)
        ctx = RoundContext(r, self.model, {n: w.detach() for n, w in self.weights.items()}, masks, self.kinds,
                           setup.splits, result, self.dense_result, self.run, retrainer)
        self.planner.observe(ctx)
        try:
            fractions = self.planner.propose(ctx)
        except TrainingDiverged as e:
            raise e.at(f"round {r}'s proxy retraining") from None
        self.proxy_iterations += retrainer.iterations
        next_masks = pruning.magnitude_prune(ctx.weights, masks, fractions)
        plan_seconds = time.perf_counter() - began
        self.seconds += train_seconds + plan_seconds
        row = round_row(r, masks, result, self.iterations, self.seconds, self.proxy_iterations)
        self._commit(r, next_masks, result, row, {"round": r, "train_seconds": train_seconds,
                                                 "plan_seconds": plan_seconds,
                                                 **{f"fraction:{n}": f for n, f in fractions.items()}})
        return next_masks, row

    def _train(self, r: int, masks: dict[str, torch.Tensor]) -> tuple[TrainResult, float]:
        """Round 0 is the dense network, trained once for every planner; round r trains mask * W_k from k to T."""
        t = self.setup.config.train
        if r == 0:
            self.model.load_state_dict(self.dense["trained"])
            self.iterations += t.train_iterations
            return self.dense_result, self.dense_result.seconds
        began = time.perf_counter()
        self.model.load_state_dict(self.dense["rewind"])
        with torch.no_grad():
            for n, w in self.weights.items():
                w.mul_(masks[n])
        if self.on_round_start:
            self.on_round_start(r, self.model, masks)
        result = self.setup.train(self.model, masks, t.rewind_iteration, f"round {r}", self.progress)
        self.iterations += t.train_iterations - t.rewind_iteration
        return result, time.perf_counter() - began

    def _commit(self, r: int, next_masks: dict[str, torch.Tensor], result: TrainResult, row: dict[str, Any],
                plan: dict[str, Any]) -> None:
        """Save what round r + 1 starts from, then append round r's row: the commit point of round r."""
        run = self.run
        io.save_torch(paths.masks_file(run, r + 1), {n: m.cpu() for n, m in next_masks.items()})
        _save_planner_state(run, r + 1, self.planner)
        io.replace_round(run / paths.CURVES, r, [{"round": r, **c} for c in result.curve])
        io.replace_round(run / paths.PLANS, r, [plan])
        io.append_csv(run / paths.ROUNDS, [row])
        export_ticket(run, r)
        _write_summary(run, self.setup.config, row, self.dense_result.test_accuracy)


def truncate_run(run: Path, round_: int) -> int:
    """Forget round `round_` and every later one, so that rerunning the run's command redoes them (after a fixed
    planner bug, or to replan from there). Rounds before it, their masks and the planner's state before round
    `round_` are kept, so the redone rounds are exactly what a fresh run would compute. Returns the number of
    rounds removed."""
    last = len(io.read_csv(run / paths.ROUNDS)) - 1
    if not 1 <= round_ <= last:
        raise UserError(f"--round must be between 1 and the last finished round ({last}), got {round_}")
    # Everything the cut run and its rerun need is read before anything is deleted: a damaged file stops the
    # command with the run as it was.
    kept = io.read_rounds(run, keep=round_)
    config = io.read_config(run)
    io.load_torch(run / paths.REWIND)
    for r in range(1, round_ + 1):
        io.load_masks(run, r)
    io.load_torch(paths.planner_state_file(run, round_))
    tables = [run / paths.CURVES, run / paths.PLANS, run / paths.QLEARNING_LOG, run / paths.QLEARNING_ROUNDS,
              *(paths.control_file(run, kind) for kind in paths.CONTROL_KINDS)]
    cut = {table: _rows_before(table, io.read_csv(table), round_) for table in tables}
    # rounds.csv is the commit point: once it is cut, the run is consistent even if the cleanup below dies.
    io.write_csv(run / paths.ROUNDS, kept)
    for table, rows in cut.items():
        if rows is not None:
            io.write_csv(table, rows)
    # Round r's commit wrote the mask and planner state of round r + 1 and the Q-table of round r. Those
    # before round_ stay: they are where the rerun starts.
    for r in range(round_, last + 2):
        paths.qtable_file(run, r).unlink(missing_ok=True)
        if r > round_:
            paths.masks_file(run, r).unlink(missing_ok=True)
            paths.planner_state_file(run, r).unlink(missing_ok=True)
    export_ticket(run, round_ - 1)
    _write_summary(run, config, kept.iloc[-1].to_dict(), float(kept["test_accuracy"].iloc[0]))
    return last - round_ + 1


def _rows_before(table: Path, rows: pd.DataFrame, round_: int) -> pd.DataFrame | None:
    """A side table's rows of the rounds before `round_` (None: an empty table, left as it is)."""
    if rows.empty:
        return None
    rounds = pd.to_numeric(rows["round"], errors="coerce") if "round" in rows else None
    if rounds is None or rounds.isna().any():
        raise UserError(f"{table} is damaged (a row without a round number); delete it and rerun to rebuild it")
    return rows[rounds < round_]


def _unchanged(new: dict[str, torch.Tensor], old: dict[str, torch.Tensor] | None) -> bool:
    """True when a plan pruned nothing."""
    return old is not None and all(torch.equal(new[n].cpu(), old[n].cpu()) for n in new)


def _write_summary(run: Path, config: RunConfig, last: dict[str, Any], dense_test_accuracy: float) -> None:
    io.write_json(run / paths.SUMMARY, {
        "planner": config.prune.planner, "hash": config.hash(), "rounds_done": int(last["round"]),
        "weights_remaining": last["weights_remaining"], "test_accuracy": last["test_accuracy"],
        "val_accuracy": last["val_accuracy"], "dense_test_accuracy": dense_test_accuracy,
        "train_iterations": int(last["train_iterations"]),
        "proxy_iterations": int(last["proxy_iterations"]), "seconds": last["seconds"],
    })


def export_ticket(run: Path, round_: int, path: Path | None = None) -> Path:
    """Write round `round_`'s ticket: its mask and the rewound weights (mask * W_k) in one checkpoint."""
    rewind = io.load_torch(run / paths.REWIND)
    if round_ > 0:
        masks = io.load_masks(run, round_)
    else:  # round 0 is the dense network: masks of ones over the prunable (matrix-shaped) weights
        masks = {k.removesuffix(".weight"): torch.ones_like(v) for k, v in rewind.items()
                 if k.endswith(".weight") and v.dim() > 1}
    weights = dict(rewind)
    for name, mask in masks.items():
        weights[f"{name}.weight"] = rewind[f"{name}.weight"] * mask
    if path is not None and path.is_dir():
        raise UserError(f"--output {path} is a folder; name a file, such as {path / paths.TICKET}")
    path = path or run / paths.TICKET
    io.save_torch(path, {"round": round_, "masks": masks, "weights": weights})
    return path


def apply_ticket(model: nn.Module, ticket_path: Path | str) -> nn.Module:
    """Load a ticket into a fresh model through `torch.nn.utils.prune.custom_from_mask`, for users of that API.

    The model gets the rewound weights, and each prunable layer a `weight_mask` buffer and forward hook.
    """
    from torch.nn.utils import prune

    ticket = io.load_torch(Path(ticket_path))
    model.load_state_dict(ticket["weights"])
    modules = dict(model.named_modules())
    for name, mask in ticket["masks"].items():
        prune.custom_from_mask(modules[name], "weight", mask.to(modules[name].weight.device))
    return model
