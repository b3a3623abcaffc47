"""`make bench`: speed figures measured side by side in one process, reported as ratios.

Machines here are shared and noisy, so only ratios taken in the same run are meaningful: each figure
alternates the contenders several times and keeps the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from mdp_prune.config import PRESETS, RunConfig
from mdp_prune.engine import data, pruning
from mdp_prune.engine.models import layer_kinds, prunable_weights
from mdp_prune.engine.training import TrainResult, evaluate, train
from mdp_prune.experiments.imp import Setup
from mdp_prune.planners.base import RoundContext
from mdp_prune.planners.proxies import Retrainer
from mdp_prune.planners.registry import make_planner
from mdp_prune.store import paths

# Every timing reads this clock (a test replaces it with a fake one).
_clock = time.perf_counter


def _bare_loop(setup: Setup, model: torch.nn.Module, iterations: int) -> None:
    """The plainest PyTorch loop on the same model, batches and optimizer: no masks, no bookkeeping. It does
    the engine's three evaluations (validation before and after, test after), so that the ratio measures the
    cost of masking and bookkeeping, not of evaluating."""
    s = setup.splits
    x, y, order = s.train_x, s.train_y, setup.order
    optimizer = torch.optim.Adam(model.parameters(), lr=setup.config.train.lr)
    evaluate(model, s.val_x, s.val_y)
    model.train()
    for it in range(iterations):
        idx = order[it]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    evaluate(model, s.val_x, s.val_y)
    evaluate(model, s.test_x, s.test_y)


def _timed(fn: Callable[[], None]) -> float:
    began = _clock()
    fn()
    return _clock() - began


def bench_masked_loop(dataset: str, iterations: int, repeats: int) -> dict[str, float]:
    """Iterations/s of the engine's masked training loop (masks at 50 % density) against the bare loop."""
    # eval_every = iterations: the engine evaluates only at the start and the end; the bare loop does the same.
    config = RunConfig().replace(**{"train.dataset": dataset, "train.train_iterations": iterations,
                                    "train.eval_every": iterations, "device": "cpu"}).validate()
    setup = Setup(config)
    base = setup.model()
    masks = pruning.magnitude_prune(prunable_weights(base), pruning.ones_like(prunable_weights(base)),
                                    {n: 0.5 for n in prunable_weights(base)})
    bare, engine = [], []
    contenders = [(bare, lambda m: _bare_loop(setup, m, iterations)),
                  (engine, lambda m: train(m, masks, setup.splits, config.train, setup.order, 0))]
    for repeat in range(repeats):
        for figures, run in contenders[:: 1 if repeat % 2 == 0 else -1]:  # alternate who goes first
            model = setup.model()
            figures.append(iterations / _timed(lambda m=model, run=run: run(m)))
    b, e = statistics.median(bare), statistics.median(engine)
    return {"dataset": dataset, "iterations": iterations, "repeats": repeats, "bare_iterations_per_s": b,
            "engine_iterations_per_s": e, "ratio_engine_to_bare": e / b}


def bench_planner(dataset: str, engine_iterations_per_s: float | None, preset: str = "lenet",
                  rounds: int = 3) -> dict[str, float]:
    """Seconds the Q-learning planner spends on one round (its default episodes, proxy and logs) against the
    training time of one round of the preset (T - k iterations at the engine's speed: `engine_iterations_per_s`,
    or, when None, the speed of the warm-up steps below on the preset's own model, their two validation passes
    taken out; a round's own evaluations are left out too, so the ratio errs on the planner's side)."""
    config = RunConfig().replace(**{**PRESETS[preset], "train.dataset": dataset, "prune.planner": "qlearning",
                                    "device": "cpu"}).validate()
    setup = Setup(config)
    model = setup.model()
    rewind = {k: v.clone() for k, v in model.state_dict().items()}
    masks = pruning.ones_like(prunable_weights(model))
    # A few hundred steps give the planner trained-looking weights; its retraining proxy still trains each
    # candidate for its share of the preset's full round, as in a real run.
    warm_up_iterations = 300
    results: list[TrainResult] = []
    warm_up_seconds = _timed(lambda: results.append(
        train(model, masks, setup.splits, config.train, setup.order, 0, stop=warm_up_iterations, test=False)))
    result = results[0]
    if engine_iterations_per_s is None:
        # The validation passes at the warm-up's start and end are a large share of 300 conv-net steps.
        validation_seconds = _timed(lambda: evaluate(model, setup.splits.val_x, setup.splits.val_y))
        engine_iterations_per_s = warm_up_iterations / max(warm_up_seconds - 2 * validation_seconds, 1e-9)
    planner = make_planner(config)
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):  # the dense round, then pruned ones
            retrainer = Retrainer(model, model.state_dict(), rewind, setup.splits, config.train, setup.order)
            ctx = RoundContext(round_, model, {n: w.detach() for n, w in prunable_weights(model).items()}, masks,
                               layer_kinds(model), setup.splits, result, TrainResult(**result.to_dict()), Path(tmp),
                               retrainer)
            began = _clock()
            planner.observe(ctx)
            fractions = planner.propose(ctx)
            masks = pruning.magnitude_prune(ctx.weights, masks, fractions)
            seconds.append(_clock() - began)
    round_iterations = config.train.train_iterations - config.train.rewind_iteration
    round_seconds = round_iterations / engine_iterations_per_s
    return {"preset": preset, "dataset": dataset, "episodes": config.qlearning.episodes, "rounds": rounds,
            "layers": len(masks), "planner_seconds_per_round": statistics.median(seconds),
            "round_training_seconds": round_seconds,
            "ratio_planner_to_training": statistics.median(seconds) / round_seconds}


def _presets(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRESETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown preset {', '.join(unknown) or repr(text)}; "
                                         f"choose from {', '.join(PRESETS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdp_prune.experiments.bench", description=__doc__)
    default_data = "fashion-mnist" if data.DEBIAN_FASHION_MNIST.is_dir() else "digits"
    parser.add_argument("--dataset", default=default_data, help=f"data to train on (default: {default_data})")
    parser.add_argument("--iterations", type=int, default=3000, help="iterations per timing (default: 3000)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating repetitions (default: 5)")
    parser.add_argument("--out", type=Path, default=Path("bench"),
                        help=f"folder for {paths.BENCH_RESULTS} (default: bench)")
    parser.add_argument("--planner-presets", type=_presets, default=["lenet"], metavar="P1,P2",
                        help="presets whose planner round is timed against their training round (default: lenet; "
                             f"any of {', '.join(PRESETS)}; conv2 adds about 13 minutes on 2 cores)")
    parser.add_argument("--planner-rounds", type=int, default=3,
                        help="planner rounds timed per preset, the dense one first; the median is kept (default: 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own); 1 keeps the ratios meaningful when other jobs "
                             "share the cores, since idle OpenMP threads spin against them")
    args = parser.parse_args(argv)
    if args.planner_rounds < 1:
        parser.error(f"--planner-rounds must be at least 1, got {args.planner_rounds}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    results = {"threads": torch.get_num_threads(),
               "masked_loop": bench_masked_loop(args.dataset, args.iterations, args.repeats)}
    m = results["masked_loop"]
    print(f"masked training loop, LeNet-300-100, batch 60, {m['dataset']}: engine {m['engine_iterations_per_s']:.0f} "
          f"it/s, bare PyTorch {m['bare_iterations_per_s']:.0f} it/s, ratio {m['ratio_engine_to_bare']:.3f}")
    results["planner"] = {}
    for preset in args.planner_presets:
        # LeNet's round is timed at the masked loop's speed above; other models at their own warm-up speed.
        speed = m["engine_iterations_per_s"] if PRESETS[preset]["train.model"] == "lenet_300_100" else None
        results["planner"][preset] = p = bench_planner(args.dataset, speed, preset, args.planner_rounds)
        print(f"Q-learning planner, {p['preset']} ({p['layers']} layers, {p['episodes']} episodes): "
              f"{p['planner_seconds_per_round']:.2f} s per round against {p['round_training_seconds']:.1f} s of "
              f"training per round ({p['dataset']}), ratio {p['ratio_planner_to_training']:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / paths.BENCH_RESULTS).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out / paths.BENCH_RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
