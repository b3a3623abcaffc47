"""Statistics of the comparison: paired differences between methods over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import bootstrap


def paired_difference(frame: pd.DataFrame, a: str, b: str, round_: int, seed: int = 0) -> dict[str, float]:
    """Test accuracy of method a minus b at one round, paired by seed: mean, 95 % bootstrap CI, P(a > b)."""
    x = frame[(frame["method"] == a) & (frame["round"] == round_)].set_index("seed")["test_accuracy"]
    y = frame[(frame["method"] == b) & (frame["round"] == round_)].set_index("seed")["test_accuracy"]
    diff = (x - y).dropna().to_numpy()
    if len(diff) < 2 or np.all(diff == diff[0]):
        return {"mean": float(diff.mean()) if len(diff) else math.nan, "low": math.nan, "high": math.nan,
                "p_improvement": float(np.mean(diff > 0)) if len(diff) else math.nan, "n": len(diff)}
    rng = np.random.default_rng(seed)
    ci = bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=4000, method="percentile", random_state=rng)
    means = rng.choice(diff, size=(4000, len(diff))).mean(axis=1)
    return {"mean": float(diff.mean()), "low": float(ci.confidence_interval.low),
            "high": float(ci.confidence_interval.high), "p_improvement": float(np.mean(means > 0)), "n": len(diff)}
