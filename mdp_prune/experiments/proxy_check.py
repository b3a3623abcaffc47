"""`proxy-check`: how well does each proxy kind rank plans the way rewind-and-retrain does?

At round R of a run, the round's mask is retrained once from W_k (its trained weights W_T are kept, so a rerun
skips it); then plans drawn from the planner's own action set, applied to W_T as the planner would apply them,
are each retrained from W_k to the end (the truth). For every plan the table holds every proxy kind's accuracy
(`pruned`, `finetune`, `rewind`, and `planner`: the reward's accuracy as the planner computes it, from its few
retrained candidates) and the retrained validation and test accuracies. The summary gives each kind's
Spearman rank correlation with the retrained validation (and test) accuracy, with its 95 % bootstrap interval over
the plans, and its cost in training steps per plan.
Each plan's row is written when it finishes, so a killed check resumes where it stopped.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import DegenerateDataWarning, bootstrap, rankdata, spearmanr

from mdp_prune.config import RETRAINING_KINDS
from mdp_prune.engine.models import prunable_weights
from mdp_prune.engine.training import derive_seed
from mdp_prune.errors import UserError
from mdp_prune.experiments.imp import Setup, dense_round
from mdp_prune.planners.proxies import MAX_ENUMERATED_PLANS, RetrainedProxy, Retrainer, proxy_iterations
from mdp_prune.planners.qlearning.env import ProxyEvaluator
from mdp_prune.store import io, paths
from mdp_prune.store.lock import folder_lock

KINDS = ("pruned", *RETRAINING_KINDS, "planner")


def proxy_check(run: Path, round_: int, n_plans: int = 20, progress: bool = True,
                rewind_shares: tuple[float, ...] = (), pruned_examples: tuple[int, ...] = ()) -> pd.DataFrame:
    """Retrain `n_plans` plans of round `round_` and write every proxy kind's value beside the truth. Returns the
    summary (one row per kind: Spearman rho, p-value, steps per plan). `rewind_shares` adds the `rewind` proxy
    at other retraining lengths (shares of a round's steps): how long must a retrain be to rank these plans?
    `pruned_examples` adds the `pruned` proxy on other numbers of validation examples (the run's own is
    `qlearning.proxy_examples`): how much of its error is the evaluation noise of a small subset?"""
    with folder_lock(run, "run folder"):  # reads the run's rounds and writes into its folder
        return _proxy_check(run, round_, n_plans, progress, tuple(rewind_shares), tuple(pruned_examples))


def rewind_column(share: float) -> str:
    return f"rewind@{share:g}"


def planner_column(share: float) -> str:
    return f"planner@{share:g}"


def pruned_column(examples: int) -> str:
    return f"pruned@{examples}"


def _proxy_check(run: Path, round_: int, n_plans: int, progress: bool,
                 rewind_shares: tuple[float, ...], pruned_examples: tuple[int, ...]) -> pd.DataFrame:
    if n_plans < 3:
        raise UserError(f"--plans must be at least 3 for a rank correlation, got {n_plans}")
    bad = [s for s in rewind_shares if not 0 < s <= 1]
    if bad:
        raise UserError(f"--rewind-shares must be shares of a round's steps in (0, 1], got {bad[0]:g}")
    config = io.read_config(run)
    last = io.last_round(run)
    if not 0 <= round_ <= last:
        raise UserError(f"--round must be a trained round of {run} (0 to {last}), got {round_}")
    setup = Setup(config)
    n_val = setup.splits.n_proxy_examples
    bad = [n for n in pruned_examples if not 1 <= n <= n_val]
    if bad:
        where = "examples --proxy-holdout sets aside" if setup.splits.proxy_y is not None else "validation examples"
        raise UserError(f"--pruned-examples must be between 1 and the {n_val} {where}, got {bad[0]}")
    dense = dense_round(setup, run.parent, progress)
    masks = _round_masks(run, round_, setup)
    model = setup.model()
    trained = _trained_weights(run, round_, setup, dense, masks, progress)
    model.load_state_dict(trained)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}

    actions = config.prune.actions
    q = config.qlearning
    def evaluator(n_examples: int) -> ProxyEvaluator:  # on the first n of the proxy's images, as the planner's
        return ProxyEvaluator(model, weights, masks, actions, *setup.splits.proxy_images(n_examples))

    n_cheap = min(q.proxy_examples, n_val)
    cheap = evaluator(n_cheap)
    retrainer = Retrainer(model, trained, dense["rewind"], setup.splits, config.train, setup.order)
    steps = proxy_iterations(q.proxy_share, config.train)
    plans = _sample_plans(cheap.n_layers, len(actions), n_plans, derive_seed(config.train.seed, "proxy-check", round_))

    out = paths.proxy_check_file(run, round_)
    done = io.read_csv(out)
    finished = set(done["plan_index"]) if not done.empty else set()
    planner_proxy: RetrainedProxy | None = None
    extras = _ExtraColumns(cheap, retrainer, config.train, q.proxy_candidates, rewind_shares,
                           {n: cheap if n == n_cheap else evaluator(n) for n in pruned_examples})
    for i, plan in enumerate(plans):
        if i in finished:
            continue
        if planner_proxy is None:  # its candidates cost proxy_candidates short retrains: only when needed
            planner_proxy = RetrainedProxy(cheap, lambda m: retrainer.accuracy(q.proxy if q.proxy in RETRAINING_KINDS
                                                                               else "rewind", m, steps),
                                           q.proxy_candidates)
        plan_masks = cheap.plan_masks(plan)
        truth = setup.model()
        truth.load_state_dict(dense["rewind"])
        result = setup.train(truth, plan_masks, config.train.rewind_iteration, f"plan {i + 1}/{n_plans}", progress)
        io.append_csv(out, [{
            "plan_index": i, "plan": "/".join(f"{actions[a]:g}" for a in plan),
            "weights_remaining": cheap.remaining(plan),
            "pruned": cheap.accuracy(plan),
            **{kind: retrainer.accuracy(kind, plan_masks, steps) for kind in RETRAINING_KINDS},
            "planner": planner_proxy.accuracy(plan),
            **extras.values(plan),
            "retrained_val_accuracy": result.val_accuracy, "retrained_test_accuracy": result.test_accuracy,
        }])
    frame = extras.fill(io.read_csv(out), out, plans)
    extra = {pruned_column(n): (0, "per plan") for n in pruned_examples}
    for share in rewind_shares:
        extra[rewind_column(share)] = (proxy_iterations(share, config.train), "per plan")
        extra[planner_column(share)] = (proxy_iterations(share, config.train) * q.proxy_candidates,
                                        "per round (candidates)")
    summary = summarize(frame[frame["plan_index"] < n_plans], steps, q.proxy_candidates,
                        config.train.train_iterations - config.train.rewind_iteration, extra)
    io.write_csv(paths.proxy_check_summary_file(run, round_), summary)
    return summary


# Two reference rows beside the proxies: counting the weights a plan keeps (a proxy any planner has for free),
# and the retrained test accuracy, a second measurement of the same truth. When that row is low, the plans differ
# by less than the evaluation noise. It is not a bound on the proxies: a proxy free of the validation images'
# noise can agree with the validation truth better than the test images' measurement does (up to about the square
# root of that row, for two measurements of equal noise).
REFERENCES = {"weights_remaining": "reference: weights kept",
              "retrained_test_accuracy": "reference: the truth measured again"}


class _ExtraColumns:
    """Proxy columns asked for beside the default kinds: the `rewind` proxy at other lengths, per plan and as
    the planner would use it (its candidates retrained for that length, the rest corrected by the cheap proxy),
    and the `pruned` proxy on other numbers of validation examples."""

    def __init__(self, cheap: ProxyEvaluator, retrainer: Retrainer, train_config, candidates: int,  # noqa: ANN001
                 shares: tuple[float, ...], pruned: dict[int, ProxyEvaluator]) -> None:
        self.cheap, self.retrainer, self.train_config, self.candidates = cheap, retrainer, train_config, candidates
        self.shares, self.pruned = shares, pruned
        self.columns = [*(c for s in shares for c in (rewind_column(s), planner_column(s))),
                        *(pruned_column(n) for n in pruned)]
        self._planners: dict[float, RetrainedProxy] = {}

    def values(self, plan: tuple[int, ...]) -> dict[str, float]:
        out = {pruned_column(n): evaluator.accuracy(plan) for n, evaluator in self.pruned.items()}
        for share in self.shares:
            out.update(self._rewind(plan, share))
        return out

    def _rewind(self, plan: tuple[int, ...], share: float) -> dict[str, float]:
        steps = proxy_iterations(share, self.train_config)
        if share not in self._planners:  # its candidates cost short retrains: only when a plan needs them
            self._planners[share] = RetrainedProxy(
                self.cheap, lambda m: self.retrainer.accuracy("rewind", m, steps), self.candidates)
        return {rewind_column(share): self.retrainer.accuracy("rewind", self.cheap.plan_masks(plan), steps),
                planner_column(share): self._planners[share].accuracy(plan)}

    def fill(self, frame: pd.DataFrame, out: Path, plans: list) -> pd.DataFrame:
        """Plans retrained by an earlier check without some of the columns get them now: short retrains and
        evaluations only, never a plan's full retrain."""
        if frame.empty or all(c in frame.columns and frame[c].notna().all() for c in self.columns):
            return frame
        frame = frame.copy()
        for c in self.columns:
            if c not in frame.columns:
                frame[c] = float("nan")
        for row in frame.index:
            plan = plans[int(frame.at[row, "plan_index"])]
            for n, evaluator in self.pruned.items():
                if pd.isna(frame.at[row, pruned_column(n)]):
                    frame.at[row, pruned_column(n)] = evaluator.accuracy(plan)
            for share in self.shares:
                if frame.loc[row, [rewind_column(share), planner_column(share)]].isna().any():
                    for column, value in self._rewind(plan, share).items():
                        frame.at[row, column] = value
        io.write_csv(out, frame)
        return frame


def summarize(frame: pd.DataFrame, steps: int, candidates: int, round_steps: int,
              extra: dict[str, tuple[int, str]] | None = None) -> pd.DataFrame:
    """Spearman rho of each proxy kind (and of the references) against the retrained validation accuracy and
    against the retrained test accuracy, each with its 95 % bootstrap interval over the plans, and its cost.
    `extra` maps further proxy columns to (training steps, what they are counted per)."""
    extra = extra or {}
    cost = {"pruned": 0, **dict.fromkeys(RETRAINING_KINDS, steps), "planner": steps * candidates,
            **{k: v[0] for k, v in extra.items()}}
    note = {**dict.fromkeys(("pruned", *RETRAINING_KINDS), "per plan"), "planner": "per round (candidates)",
            **{k: v[1] for k, v in extra.items()}, **REFERENCES}
    out = []
    # The same truth on the test images, which neither the planner nor any proxy reads: a second measurement (on
    # Fashion-MNIST twice as many images as validation), reported beside the validation ranking and never used
    # to choose anything.
    y, test = frame["retrained_val_accuracy"], frame["retrained_test_accuracy"]
    for kind in (*KINDS, *extra, *REFERENCES):
        x = frame[kind]
        rho, p = _spearman(x, y)
        low, high = _spearman_interval(x, y)
        on_test = kind != "retrained_test_accuracy"
        rho_test, p_test = _spearman(x, test) if on_test else (math.nan, math.nan)
        low_test, high_test = _spearman_interval(x, test) if on_test else (math.nan, math.nan)
        steps_ = cost.get(kind, 0)
        out.append({"proxy": kind, "plans": len(frame), "spearman_rho": rho, "rho_low": low, "rho_high": high,
                    "p_value": p, "spearman_rho_test": rho_test, "rho_test_low": low_test,
                    "rho_test_high": high_test, "p_value_test": p_test,
                    "proxy_steps": steps_, "cost": note[kind],
                    "share_of_round": steps_ / round_steps if round_steps else float("nan"),
                    "mean_gap_to_truth": float((x - y).mean()) if kind not in REFERENCES else float("nan")})
    return pd.DataFrame(out)


def _spearman(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    if x.nunique() < 2 or y.nunique() < 2:
        return float("nan"), float("nan")
    rho, p = spearmanr(x, y)
    return float(rho), float(p)


def _rank_correlation(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along `axis` (Pearson's r of the average ranks, as `spearmanr`), for many resamples at
    once; NaN where a resample's values are all tied."""
    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx, ry = rx - rx.mean(axis=axis, keepdims=True), ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))


def _spearman_interval(x: pd.Series, y: pd.Series, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of Spearman's rho over the plans (resampled in pairs): with 20 plans it
    spans about ±0.3, so one check places a kind's rho no closer than that. No interval from fewer than 5 plans,
    or where some resample has all its values tied."""
    if len(x) < 5 or x.nunique() < 2 or y.nunique() < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():  # a resample with all its values tied has no rho: no interval, said above
        warnings.simplefilter("ignore", DegenerateDataWarning)
        ci = bootstrap((x.to_numpy(float), y.to_numpy(float)), _rank_correlation, paired=True, vectorized=True,
                       confidence_level=0.95, n_resamples=4000, method="percentile",
                       random_state=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def _round_masks(run: Path, round_: int, setup: Setup) -> dict[str, torch.Tensor]:
    if round_ == 0:
        return {n: torch.ones_like(w) for n, w in prunable_weights(setup.model()).items()}
    return io.load_masks(run, round_, setup.device)


def _trained_weights(run: Path, round_: int, setup: Setup, dense: dict, masks: dict[str, torch.Tensor],
                     progress: bool) -> dict[str, torch.Tensor]:
    """W_T of round `round_`: the dense round's, or the round's mask retrained from W_k once and kept."""
    if round_ == 0:
        return dense["trained"]
    path = paths.proxy_check_trained_file(run, round_)
    if path.is_file():
        return io.load_torch(path, setup.device)
    model = setup.model()
    model.load_state_dict(dense["rewind"])
    setup.train(model, masks, setup.config.train.rewind_iteration, f"round {round_} (W_T)", progress)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    io.save_torch(path, state)
    return {k: v.to(setup.device) for k, v in state.items()}


def _sample_plans(n_layers: int, n_actions: int, n_plans: int, seed: int) -> list[tuple[int, ...]]:
    """`n_plans` distinct full plans drawn uniformly from the planner's plan space (fixed for a seed and round)."""
    rng = np.random.default_rng(seed)
    if n_actions**n_layers <= MAX_ENUMERATED_PLANS:
        space = list(itertools.product(range(n_actions), repeat=n_layers))
        if n_plans > len(space):
            raise UserError(f"--plans must be at most the {len(space)} plans of this network, got {n_plans}")
        return [space[i] for i in rng.choice(len(space), size=n_plans, replace=False)]
    return [tuple(int(a) for a in rng.integers(n_actions, size=n_layers)) for _ in range(n_plans)]
