"""Statistics of the comparison: paired differences between methods over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from scipy.stats import t as student_t


def paired_difference(frame: pd.DataFrame, a: str, b: str, round_: int, seed: int = 0) -> dict[str, float]:
    """Test accuracy of method a minus b at one round, paired by seed: mean, 95 % bootstrap CI, P(a > b)."""
    x = frame[(frame["method"] == a) & (frame["round"] == round_)].set_index("seed")["test_accuracy"]
    y = frame[(frame["method"] == b) & (frame["round"] == round_)].set_index("seed")["test_accuracy"]
    return bootstrap_mean((x - y).dropna().to_numpy(), seed)


def bootstrap_mean(diff: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean of paired differences (one per seed), its 95 % percentile-bootstrap interval over seeds, and the
    bootstrap probability that the mean is above 0 (no interval from fewer than two distinct values)."""
    if len(diff) < 2 or np.all(diff == diff[0]):
        return {"mean": float(diff.mean()) if len(diff) else math.nan, "low": math.nan, "high": math.nan,
                "p_improvement": float(np.mean(diff > 0)) if len(diff) else math.nan, "n": len(diff)}
    rng = np.random.default_rng(seed)
    ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=4000, method="percentile", random_state=rng)
    means = rng.choice(diff, size=(4000, len(diff))).mean(axis=1)
    return {"mean": float(diff.mean()), "low": float(ci.confidence_interval.low),
            "high": float(ci.confidence_interval.high), "p_improvement": float(np.mean(means > 0)), "n": len(diff)}


# Two methods are compared round by round only where they prune to about the same sparsity: a free-mode run's
# round r is not lt's round r (50 % against 80 % remaining after one round). Budget-mode runs match lt exactly;
# global/LAMP/ERK prune 20 % of all weights, so their weights remaining drift from lt's ladder by up to 2 % (relative)
# on LeNet-300-100 and 9 % on the digits-sized LeNet after 15 rounds.
MATCHED_SPARSITY = 0.15


def chance_below_one_sd(method_seeds: int, reference_seeds: int) -> float:
    """P(a method's mean over `method_seeds` seeds is more than one sample sd of the reference's
    `reference_seeds` seeds below the reference's mean) when the method *is* the reference, seeds independent and
    accuracies normal: with d the difference of the means and s the reference's sd, d / s is Student-t distributed
    (reference_seeds − 1 degrees of freedom) scaled by sqrt(1/method_seeds + 1/reference_seeds). With 3 seeds
    each it is 17 %, so a 15-round comparison is expected to show 2.6 such rounds by chance alone."""
    if reference_seeds < 2 or method_seeds < 1:
        return math.nan
    return float(student_t.cdf(-1 / math.sqrt(1 / method_seeds + 1 / reference_seeds), df=reference_seeds - 1))


def against_reference(frame: pd.DataFrame, reference: str = "lt", metric: str = "test_accuracy") -> pd.DataFrame:
    """Every method against `reference` over the pruned rounds they share, paired by seed.

    One row per method: the mean over rounds of (method − reference) test accuracy (a fraction), the same per
    seed, and its 95 % bootstrap interval over seeds (`bootstrap_mean` of the per-seed means: a paired test of
    the whole ladder that does not hinge on one round's sd of a few seeds); the rounds where the method's mean
    over seeds is more than one standard deviation of the reference's seeds below the reference's mean (the bar
    a method must clear to be "no worse in any round"), with the number of such rounds a method no different
    from the reference would show by chance (`chance_below_one_sd`) and the probability that it would show none.
    `frame` has the columns method, seed, round, weights_remaining and `metric` (test_accuracy, or val_accuracy
    to pair the figures selection reads).
    """
    if reference not in set(frame["method"]):
        raise ValueError(f"no run of that method (the reference {reference!r}) among these; methods: "
                         f"{', '.join(dict.fromkeys(frame['method']))}")
    pruned = frame[frame["round"] > 0]
    cols = ["round", "seed", metric, "weights_remaining"]
    ref = pruned.loc[pruned["method"] == reference, cols]
    rows = []
    for method, g in pruned.groupby("method", sort=False):
        if g.duplicated(["round", "seed"]).any():
            raise ValueError(f"{method} has more than one run for a seed: pair one configuration per method")
        if method == reference:
            continue
        joined = g[cols].merge(ref, on=["round", "seed"], suffixes=("", "_ref"))
        row: dict = {"method": method, "rounds": joined["round"].nunique(), "seeds": joined["seed"].nunique()}
        if joined.empty:
            rows.append(row)
            continue
        gap = (joined["weights_remaining"] / joined["weights_remaining_ref"] - 1).abs().max()
        row["sparsity_gap"] = float(gap)
        row["matched sparsity"] = bool(gap <= MATCHED_SPARSITY)
        if row["matched sparsity"]:
            joined["diff"] = joined[metric] - joined[f"{metric}_ref"]
            by_round = joined.groupby("round")["diff"].mean()
            ref_sd = ref.groupby("round")[metric].std(ddof=1).reindex(by_round.index)
            below = by_round[by_round < -ref_sd]
            method_seeds = joined.groupby("round")["seed"].nunique().reindex(by_round.index)
            ref_seeds = ref.groupby("round")["seed"].nunique().reindex(by_round.index)
            chance = np.array([chance_below_one_sd(n, m) for n, m in zip(method_seeds, ref_seeds, strict=True)])
            by_seed = joined.groupby("seed")["diff"].mean()
            interval = bootstrap_mean(by_seed.to_numpy())
            row.update(mean_difference=float(by_round.mean()), by_seed=by_seed.to_dict(),
                       mean_difference_low=interval["low"], mean_difference_high=interval["high"],
                       p_mean_difference_above_0=interval["p_improvement"],
                       rounds_below=[(int(r), float(by_round[r]), float(ref_sd[r])) for r in below.index],
                       rounds_below_by_chance=float(np.nansum(chance)),
                       p_none_below_by_chance=float(np.prod(1 - np.nan_to_num(chance))),
                       worst_round=int(by_round.idxmin()), worst_difference=float(by_round.min()))
        rows.append(row)
    return pd.DataFrame(rows)
