"""Markdown tables and mean ± std cells: how the report and `summarize` print numbers."""

from __future__ import annotations

import math

import pandas as pd


def table(frame: pd.DataFrame) -> str:
    """A markdown table of `frame`'s rows."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")  # a bare pipe (as in |ΔQ|) would split the column

    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def mean_std(values: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std' over seeds (sample std; 0 for one seed), scaled (fractions to percent by default)."""
    if values.empty:
        return "–"
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean() * scale:.{digits}f} ± {std * scale:.{digits}f}"


def interval(low: float, high: float, scale: float = 100.0) -> str:
    """'[low, high]' of a confidence interval, signed and scaled (fractions to points); '–' when there is none."""
    return "–" if math.isnan(low) else f"[{low * scale:+.2f}, {high * scale:+.2f}]"


def seed_cell(values: pd.Series, n_seeds: int) -> str:
    """mean ± std, marked with the number of seeds when some runs ended before this round."""
    return mean_std(values) + (f" (n={len(values)})" if 0 < len(values) < n_seeds else "")
