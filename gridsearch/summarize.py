"""`python -m gridsearch summarize RUN_DIR...`: markdown tables of runs.

By default, grouped by method with mean ± std over seeds: for each requested round, weights remaining, test
accuracy and early-stopping iteration of every method, and of the random-reinitialisation / random-pruning
controls when the runs have them (`controls/<kind>.csv`). With `--convergence`, one row per Q-learning run
read from its `qlearning_rounds.csv`. With `--against METHOD`, every other method paired by seed with that one
over the rounds they share. With `--reach TARGET`, per method the rounds, iterations and accuracy at which its
seeds first have at most TARGET of the weights remaining (the comparison report's "Reaching the target"). Runs
of one method and seed in different folders (two batches of lt, say) are
two methods here, named `lt @ FOLDER`; pass that name to `--against` to pair with one of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gridsearch import markdown
from gridsearch.markdown import mean_std
from gridsearch.stats import against_reference
from mdp_prune.config import RunConfig, non_default_fields
from mdp_prune.engine.numerics import NUMERIC_FIELDS
from mdp_prune.errors import UserError
from mdp_prune.store import io, paths


def method_name(config: RunConfig) -> str:
    # a held-out proxy split reads other validation images (for every planner), a warm start, an anchor, or a
    # budget reward other than the default, is another method: a summary of both kinds of run compares them
    # instead of pooling them as more runs of one seed
    holdout = [f"holdout {config.train.proxy_holdout}"] if config.train.proxy_holdout else []
    if config.prune.planner != "qlearning":
        return f"{config.prune.planner} ({holdout[0]})" if holdout else config.prune.planner
    q = config.qlearning
    qualifiers = [q.budget]
    changed = non_default_fields(q) if q.budget == "lt" else {}
    if "budget_reward" in changed:
        qualifiers.append(q.budget_reward)
    if "anchor_z" in changed:
        qualifiers.append(f"anchor z {q.anchor_z:g}")
    if "anchor" in changed and q.anchored():
        qualifiers.append(f"anchor {q.anchor}")
    if q.init_qtable:
        qualifiers.append("warm start")
    return f"qlearning ({', '.join(qualifiers + holdout)})"


def collect(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """Every run's rounds (and controls), one row per round, with the columns method, seed and control (the
    control's kind; empty for the run's own rounds) added."""
    runs = []
    for run in run_dirs:
        if not paths.is_run_dir(run):
            raise UserError(f"{run} is not a run folder")
        config = io.read_config(run)
        runs.append((run, config.train.seed, method_name(config)))
    parts = []
    for (run, seed, _), method in zip(runs, _labels(runs), strict=True):
        parts.append(io.read_rounds(run).assign(method=method, seed=seed, control=""))
        for kind in paths.CONTROL_KINDS:
            control = io.read_csv(paths.control_file(run, kind))
            if not control.empty:
                parts.append(control.assign(method=f"{method} {kind}", seed=seed, control=kind))
    return pd.concat(parts, ignore_index=True)


def _labels(runs: Sequence[tuple[Path, int, str]]) -> list[str]:
    """Each run's method, qualified by its folder (`lt @ results/fashion_avx2`) when the runs hold that method
    twice for one seed in different folders: two batches of one method (another machine, other CPU kernels) are
    two rows to compare, not one row with twice the seeds."""
    folders: dict[tuple[str, int], set[Path]] = defaultdict(set)
    for run, seed, method in runs:
        folders[(method, seed)].add(run.resolve().parent)
    twice = {method for (method, _), found in folders.items() if len(found) > 1}
    return [f"{method} @ {run.parent}" if method in twice else method for run, _, method in runs]


def summarize(run_dirs: Sequence[Path], rounds: Sequence[int] | None = None) -> str:
    frame = collect(run_dirs)
    rounds = sorted(frame["round"].unique()) if not rounds else rounds
    rows = []
    for method, g in frame.groupby("method", sort=False):
        for r in rounds:
            sub = g[g["round"] == r]
            if sub.empty:
                continue
            rows.append({"method": method, "round": r, "seeds": sub["seed"].nunique(), "runs": len(sub),
                         "weights remaining %": f"{sub['weights_remaining'].mean() * 100:.1f}",
                         "test accuracy %": mean_std(sub["test_accuracy"]),
                         "early-stop iteration": mean_std(sub["early_stop_iteration"], 1, 0)})
    table = pd.DataFrame(rows)
    if not table.empty and (table["runs"] == table["seeds"]).all():
        table = table.drop(columns="runs")  # the usual case: one run per method and seed
    return markdown.table(table)


SPLITS = {"test": "test_accuracy", "validation": "val_accuracy"}  # --on: the accuracy `against` pairs


def against(frame: pd.DataFrame, reference: str = "lt", on: str = "test") -> pd.DataFrame:
    """`against_reference` as a table to print: differences in percentage points, of test accuracy or (`on`
    validation) of the validation accuracy that selection reads."""
    try:
        paired = against_reference(frame, reference, SPLITS[on])
    except ValueError as e:
        raise UserError(f"--against {reference}: {e}") from None
    mean = f"mean over rounds of (method − {reference}){'' if on == 'test' else f', {on}'} pp"
    rows = []
    for r in paired.to_dict("records"):
        row = {"method": r["method"], "rounds": r["rounds"], "seeds": r["seeds"],
               f"largest gap in weights remaining vs {reference} %": f"{r['sparsity_gap'] * 100:.1f}"
               if pd.notna(r.get("sparsity_gap")) else "–"}  # no shared round
        if not r.get("matched sparsity", False):
            rows.append({**row, mean: "– (other sparsities)"})
            continue
        below = ", ".join(f"{rnd} ({d * 100:+.2f}, sd {sd * 100:.2f})" for rnd, d, sd in r["rounds_below"])
        rows.append({**row, mean: f"{r['mean_difference'] * 100:+.2f}",
                     "by seed pp": ", ".join(f"{d * 100:+.2f}" for _, d in sorted(r["by_seed"].items())),
                     "95 % CI over seeds pp": markdown.interval(r["mean_difference_low"], r["mean_difference_high"]),
                     "P(mean > 0)": f"{r['p_mean_difference_above_0']:.2f}",
                     "worst round pp": f"{int(r['worst_round'])}: {r['worst_difference'] * 100:+.2f}",
                     f"rounds > 1 sd of {reference} below it (pp, sd)": below or "none",
                     f"such rounds expected of {reference} itself": f"{r['rounds_below_by_chance']:.1f} "
                     f"(none: {r['p_none_below_by_chance']:.0%})"})
    return pd.DataFrame(rows).fillna("–")


REACHING_COLUMNS = ["method", "rounds", "weights remaining %", "training iterations", "proxy iterations",
                    "training + proxy", "seconds", "test accuracy %", "seeds not reaching"]


def reaching(frame: pd.DataFrame, target: float, n_seeds: int | None = None) -> pd.DataFrame:
    """Per method, the first round at which each seed has at most `target` of its weights remaining: rounds,
    cumulative training and proxy iterations (round 0 included), seconds and test accuracy there, mean ± std over
    the seeds that reach it, and how many of the method's seeds (or of `n_seeds`, when a run that failed counts
    as not reaching) do not. Controls have no pruning trajectory of their own and are left out."""
    if "control" in frame:  # a control retrains single rounds' tickets: its iterations are not cumulative
        frame = frame[frame["control"] == ""]
    rows = []
    for method, g in frame.groupby("method", sort=False):
        # rounds.csv keeps 10 digits, so a run stopped exactly at the target may read a hair above it
        sub = g[g["weights_remaining"] <= target + 1e-9].sort_values("round").groupby("seed").head(1)
        row: dict = {"method": method}
        if len(sub):
            total = sub["train_iterations"] + sub["proxy_iterations"]
            row.update({"rounds": mean_std(sub["round"], 1, 1),
                        "weights remaining %": mean_std(sub["weights_remaining"], 100, 2),
                        "training iterations": mean_std(sub["train_iterations"], 1, 0),
                        "proxy iterations": mean_std(sub["proxy_iterations"], 1, 0),
                        "training + proxy": mean_std(total, 1, 0),
                        "seconds": mean_std(sub["seconds"], 1, 1),
                        "test accuracy %": mean_std(sub["test_accuracy"])})
        rows.append({**row, "seeds not reaching": (n_seeds or g["seed"].nunique()) - len(sub)})
    return pd.DataFrame(rows, columns=REACHING_COLUMNS).astype(object).fillna("–")


def final_weights_remaining(frame: pd.DataFrame, method: str) -> float:
    """Where every run of `method` has arrived: the largest weights remaining at the last round of its seeds."""
    runs = frame[frame["method"] == method]
    if runs.empty:
        raise UserError(f"--reach {method}: no run of that method among these; methods: "
                        f"{', '.join(dict.fromkeys(frame['method']))}")
    return float(runs.sort_values("round").groupby("seed")["weights_remaining"].last().max())


def environments_note(run_dirs: Sequence[Path]) -> str | None:
    """A line when the runs were computed in more than one numerical environment (their `environment.csv`):
    the same configuration gives other figures there, so a difference between such runs mixes that in."""
    seen: dict[tuple[str, ...], int] = {}
    for run in run_dirs:
        rows = io.read_csv(run / paths.ENVIRONMENT, as_text=True)
        if rows.empty or not set(NUMERIC_FIELDS) <= set(rows.columns):
            continue  # made before runs recorded their environment
        for env in rows[list(NUMERIC_FIELDS)].itertuples(index=False):
            seen[tuple(env)] = seen.get(tuple(env), 0) + 1
    if len(seen) < 2:
        return None
    described = "; ".join(", ".join(f"{f} {v}" for f, v in zip(NUMERIC_FIELDS, env, strict=True))
                          + f" ({n} command{'s' if n > 1 else ''})" for env, n in seen.items())
    return (f"the runs were computed in {len(seen)} numerical environments ({described}): the same "
            "configuration gives other figures in each, so differences between them include that")


def _median_seconds(log: pd.DataFrame, column: str) -> str:
    """The median of a logged duration; '–' when the run did not log it (older runs, or nothing enumerated)."""
    if column not in log.columns or log[column].isna().all():
        return "–"
    return f"{log[column].median():.2f}"


def _rounds_where(log: pd.DataFrame, column: str) -> str:
    """'k/n' rounds where a logged flag holds; '–' when the run did not log it (older runs, or a plan space too
    large to enumerate)."""
    if column not in log.columns or log[column].isna().all():
        return "–"
    flags = log[column].dropna().astype(str).str.lower() == "true"
    return f"{int(flags.sum())}/{len(flags)}"


def _rounds_moved(log: pd.DataFrame) -> str:
    """In how many rounds `--commit climb` changed the best played plan ('-' for runs of other rules)."""
    if "climb_moves" not in log.columns:
        return "-"
    moves = pd.to_numeric(log["climb_moves"], errors="coerce").dropna()
    return f"{int((moves > 0).sum())}/{len(moves)}" if (log["commit"] == "climb").any() else "-"


def convergence(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """One row per Q-learning run: in how many rounds the greedy plan stayed the same over the last 10 % of
    episodes, in how many the greedy and the committed plan were the round's exact optimum (where the plan space
    was enumerated), in how many `--commit climb` moved the plan, and how max |ΔQ| fell from a round's first
    episode to its last (medians over rounds)."""
    rows = []
    for run in run_dirs:
        if not paths.is_run_dir(run):
            raise UserError(f"{run} is not a run folder")
        log = io.read_csv(run / paths.QLEARNING_ROUNDS)
        if log.empty:
            continue
        config = io.read_config(run)
        rows.append({"run": run.name, "method": method_name(config), "seed": config.train.seed,
                     "rounds with a stable greedy plan": f"{int(log['plan_stable_last_10pct'].sum())}/{len(log)}",
                     "greedy plan optimal": _rounds_where(log, "greedy_is_optimal"),
                     "committed plan optimal": _rounds_where(log, "committed_is_optimal"),
                     "rounds the climb moved the plan": _rounds_moved(log),
                     "max |ΔQ|, first episode (median)": f"{log['first_max_abs_dq'].median():.1e}",
                     "max |ΔQ|, last episode (median)": f"{log['final_max_abs_dq'].median():.1e}",
                     "max |ΔQ|, last episode (worst round)": f"{log['final_max_abs_dq'].max():.1e}",
                     "planner seconds per round (median)": f"{log['seconds'].median():.2f}",
                     "of which the exact optimum (median)": _median_seconds(log, "optimum_seconds")})
    if not rows:
        raise UserError("none of these folders holds a Q-learning run (no qlearning_rounds.csv)")
    return pd.DataFrame(rows)
