"""`proxy-check`: does the planner's proxy (accuracy of pruned trained weights, no retraining) rank plans the way
rewind-and-retrain does? Samples plans on the dense round's trained weights, retrains each from W_k, and
reports the Spearman rank correlation between proxy and retrained validation accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mdp_prune.config import RunConfig
from mdp_prune.engine import pruning
from mdp_prune.engine.models import prunable_weights
from mdp_prune.engine.training import derive_seed
from mdp_prune.errors import UserError
from mdp_prune.experiments.imp import Setup, dense_round
from mdp_prune.planners.qlearning.env import ProxyEvaluator
from mdp_prune.store import io, paths

# Per-layer prune fractions the sampled plans draw from: wider than one round's action set, so that the plans
# span 100 % to 2 % of a layer's weights and the ranking has something to rank.
CHECK_FRACTIONS = (0.0, 0.5, 0.75, 0.9, 0.95, 0.98)


def proxy_check(run: Path, n_plans: int = 10, progress: bool = True) -> tuple[float, float, pd.DataFrame]:
    if n_plans < 3:
        raise UserError(f"--plans must be at least 3 for a rank correlation, got {n_plans}")
    config = RunConfig.from_dict(io.read_json(run / paths.CONFIG))
    setup = Setup(config)
    dense = dense_round(setup, run.parent, progress)
    model = setup.model()
    model.load_state_dict(dense["trained"])
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    actions = CHECK_FRACTIONS
    n_proxy = min(config.qlearning.proxy_examples, len(setup.splits.val_y))
    evaluator = ProxyEvaluator(model, weights, pruning.ones_like(weights), actions,
                               setup.splits.val_x[:n_proxy], setup.splits.val_y[:n_proxy])
    rng = np.random.default_rng(derive_seed(config.train.seed, "proxy-check"))
    plans = [tuple(int(a) for a in rng.integers(len(actions), size=evaluator.n_layers)) for _ in range(n_plans)]
    out = run / paths.PROXY_CHECK
    done = io.read_csv(out)
    for i, plan in enumerate(plans):
        if not done.empty and i in set(done["plan_index"]):
            continue
        masks = evaluator.plan_masks(plan)
        retrained = setup.model()
        retrained.load_state_dict(dense["rewind"])
        result = setup.train(retrained, masks, config.train.rewind_iteration, f"plan {i + 1}/{n_plans}", progress)
        io.append_csv(out, [{"plan_index": i, "plan": "/".join(f"{actions[a]:g}" for a in plan),
                             "weights_remaining": evaluator.remaining(plan),
                             "proxy_accuracy": evaluator.accuracy(plan),
                             "retrained_val_accuracy": result.val_accuracy,
                             "retrained_test_accuracy": result.test_accuracy}])
    frame = io.read_csv(out)
    frame = frame[frame["plan_index"] < n_plans]
    if frame["proxy_accuracy"].nunique() < 2 or frame["retrained_val_accuracy"].nunique() < 2:
        return float("nan"), float("nan"), frame  # constant input: no ranking to compare
    rho, p = spearmanr(frame["proxy_accuracy"], frame["retrained_val_accuracy"])
    return float(rho), float(p), frame
