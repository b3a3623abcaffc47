"""Every file and folder name of the results, in one place (OpenLTH's `paths` idea).

A results store (`python -m mdp_prune run --out OUT`):

    OUT/
      dense/dense_<train hash>/dense.pt      round 0 and the rewind point, shared by all planners
                              environment.csv  the numerical environment that trained it
      <planner>_<run hash>/                  one run; the hash covers the configuration's non-default fields
        config.json  rounds.csv  curves.csv  plans.csv  summary.json  rewind.pt  ticket.pt
        environment.csv                      the numerical environment of each command that trained rounds
        masks/round_<r>.pt                   the mask round r trains with
        planner/state_<r>.pt                 the planner's state before round r (for exact resumption; gzipped)
        qlearning.csv  qlearning_rounds.csv  qtable/round_<r>.npz
                                             the Q-learning planner's per-episode and per-round logs,
                                             and the Q-table after each round
        controls/<kind>.csv                  random reinitialisation / random pruning controls
        proxy_check/round_<r>.csv            proxy-check: every proxy kind and the retrained truth per plan,
        proxy_check/round_<r>_summary.csv    Spearman rho and cost per kind, and the round's W_T
        error.txt                            a grid cell's traceback when it failed

A comparison (`python -m gridsearch compare --out OUT`):

    OUT/
      grid.csv  comparison.csv  report.md  figures/<name>.png
      runs/                                  a results store as above: every grid cell and method

The speed benchmark (`make bench`) writes BENCH_OUT/results.json.
"""

from __future__ import annotations

from pathlib import Path

from mdp_prune.config import RunConfig, TrainConfig, train_hash

CONFIG = "config.json"
ROUNDS = "rounds.csv"
CURVES = "curves.csv"
PLANS = "plans.csv"
SUMMARY = "summary.json"
REWIND = "rewind.pt"
TICKET = "ticket.pt"
QLEARNING_LOG = "qlearning.csv"
QLEARNING_ROUNDS = "qlearning_rounds.csv"
DENSE = "dense.pt"
ERROR = "error.txt"
ENVIRONMENT = "environment.csv"
# Held while a process works in a run or dense folder, deleted when it is done (`store.lock`); not a result.
LOCK = ".lock"
# The controls of a run's tickets, each in its own table (`control_file`).
CONTROL_KINDS = ("reinit", "random-prune")


def run_dir(out: Path | str, config: RunConfig) -> Path:
    return Path(out) / f"{config.prune.planner}_{config.hash()}"


def dense_dir(out: Path | str, train: TrainConfig) -> Path:
    return Path(out) / "dense" / f"dense_{train_hash(train)}"


def masks_file(run: Path, round_: int) -> Path:
    return run / "masks" / f"round_{round_}.pt"


def planner_state_file(run: Path, round_: int) -> Path:
    return run / "planner" / f"state_{round_}.pt"


def qtable_file(run: Path, round_: int) -> Path:
    return run / "qtable" / f"round_{round_}.npz"


def qtable_rounds(run: Path) -> list[int]:
    """The rounds whose Q-table snapshot the run holds, in order."""
    return sorted(int(p.stem.removeprefix("round_")) for p in (run / "qtable").glob("round_*.npz"))


def proxy_check_file(run: Path, round_: int) -> Path:
    return run / "proxy_check" / f"round_{round_}.csv"


def proxy_check_summary_file(run: Path, round_: int) -> Path:
    return run / "proxy_check" / f"round_{round_}_summary.csv"


def proxy_check_trained_file(run: Path, round_: int) -> Path:
    return run / "proxy_check" / f"round_{round_}_trained.pt"


def control_file(run: Path, kind: str) -> Path:
    return run / "controls" / f"{kind}.csv"


def runs_dir(comparison: Path) -> Path:
    """The results store inside a comparison folder."""
    return comparison / "runs"


GRID_CSV = "grid.csv"
COMPARISON_CSV = "comparison.csv"
REPORT = "report.md"
FIGURES = "figures"
BENCH_RESULTS = "results.json"


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG).is_file() and (path / ROUNDS).is_file()
