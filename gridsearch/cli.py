"""The `mdp-grid` command (also `python -m gridsearch`): the grid search, the comparison report, summaries.

    mdp-grid search  --grid small                       # make gridsearch
    mdp-grid compare --grid small                       # make compare-baseline
    mdp-grid compare --grid paper --dataset fashion-mnist --preset lenet --n-jobs 2
    mdp-grid summarize RUN_DIR... [--convergence | --against lt | --reach lt]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridsearch.grids import builtin_grids
from mdp_prune.cli import _Parser, _tuple_of, add_threads_argument, check_threads, guarded, quiet_openmp
from mdp_prune.config import PRESETS
from mdp_prune.errors import UserError
from mdp_prune.store import paths

if TYPE_CHECKING:
    import pandas as pd


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mdp-grid", description="Grid search and comparison against the baselines.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in (("search", "run the grid and write grid.csv (validation figures only)"),
                       ("compare", "grid search, selection on validation, every baseline, report.md")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--grid", default="small", help=f"a built-in grid ({', '.join(builtin_grids())}) or a "
                                                       "YAML/JSON file (default: small)")
        p.add_argument("--dataset", default=None, help="override the grid's dataset")
        p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="the paper's recipe for a model")
        p.add_argument("--seeds", type=_tuple_of(int), default=None, help="override the grid's seeds, e.g. 0,1,2")
        p.add_argument("--rounds", type=int, default=None, help="override the grid's rounds")
        p.add_argument("--search-rounds", type=int, default=None,
                       help="run and score grid cells on their first N rounds only; compare extends the chosen "
                            "configuration to --rounds (default: the grid's search_rounds, else all rounds)")
        p.add_argument("--data-dir", default=None, help="folder with the dataset files")
        p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="device (default: auto)")
        p.add_argument("--n-jobs", type=int, default=os.cpu_count() or 1,
                       help=f"parallel workers; torch threads per worker = cores / workers (default: {os.cpu_count()})")
        p.add_argument("--backend", choices=["loky", "dask"], default="loky",
                       help="loky: local processes; dask: a Dask distributed cluster (default: loky)")
        p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://HOST:8786")
        add_threads_argument(p, "torch threads per worker (default: cores / --n-jobs locally, 1 on Dask)")
        p.add_argument("--out", type=Path, default=Path("results/compare"), help="folder (default: results/compare)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    summary = sub.add_parser("summarize", help="markdown table of run folders by method (mean ± std over seeds)")
    summary.add_argument("run_dirs", type=Path, nargs="+", help="run folders")
    summary.add_argument("--rounds", type=_tuple_of(int), default=None, help="rounds to show (default: all)")
    summary.add_argument("--convergence", action="store_true",
                         help="instead, one row per Q-learning run: rounds with a stable greedy plan, max |ΔQ|")
    summary.add_argument("--reach", metavar="TARGET", default=None,
                         help="instead, per method the first round with at most TARGET of the weights remaining "
                              "(a fraction such as 0.0358, or a method such as lt: where its runs end): rounds, "
                              "training and proxy iterations, seconds and test accuracy there")
    summary.add_argument("--against", metavar="METHOD", default=None,
                         help="instead, every other method paired by seed with METHOD (e.g. lt) over the rounds "
                              "they share: mean difference, by seed, rounds more than one sd of METHOD below it "
                              "and how many METHOD itself would show by chance; runs of one method and seed "
                              "in different folders are named 'METHOD @ FOLDER'")
    summary.add_argument("--on", choices=("test", "validation"), default=None,
                         help="with --against: pair test accuracy (default) or validation accuracy, the figure "
                              "selection, feedback and stopping read (held out of the proxy's images only with "
                              "--proxy-holdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp()  # before torch is imported; loky workers inherit the environment, Dask workers do not
    args = build_parser().parse_args(argv)
    return guarded(lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    from gridsearch.compare import compare
    from gridsearch.grid import load_grid

    if args.command == "summarize":
        from gridsearch.markdown import table
        from gridsearch.summarize import against, collect, convergence, environments_note, reaching, summarize

        if sum((args.convergence, args.against is not None, args.reach is not None)) > 1:
            raise UserError("--convergence, --against and --reach are different tables: give one")
        if args.on is not None and args.against is None:
            raise UserError("--on chooses the accuracy --against pairs: give --against too")
        if args.against is not None:
            print(table(against(collect(args.run_dirs), args.against, args.on or "test")))
        elif args.reach is not None:
            frame = collect(args.run_dirs)
            target = _fraction_or_method(args.reach, frame)
            print(f"target: {target * 100:.2f} % of the weights remaining")
            print(table(reaching(frame, target)))
        else:
            print(table(convergence(args.run_dirs)) if args.convergence else summarize(args.run_dirs, args.rounds))
        note = environments_note(args.run_dirs)
        if note:
            print(f"note: {note}", file=sys.stderr)
        return 0
    from gridsearch.selection import search

    grid = load_grid(args.grid)
    if args.seeds is not None:
        grid = dataclasses.replace(grid, seeds=list(args.seeds))
    if args.search_rounds is not None:
        if args.search_rounds < 1:
            raise UserError(f"--search-rounds must be at least 1, got {args.search_rounds}")
        grid = dataclasses.replace(grid, search_rounds=args.search_rounds)
    if args.n_jobs < 1:
        raise UserError(f"--n-jobs must be at least 1, got {args.n_jobs}")
    from gridsearch import runner

    check_threads(args.threads)
    if args.threads is not None:
        runner.THREADS = args.threads
    overrides: dict[str, Any] = {}
    for key, value in (("train.dataset", args.dataset), ("rounds", args.rounds), ("data_dir", args.data_dir),
                       ("device", args.device)):
        if value is not None:
            overrides[key] = value
    grid.cells(overrides, args.preset)  # every cell validated before any work starts
    from mdp_prune.store import io  # here, not at the top: it loads torch, which must come after quiet_openmp

    runner.check_backend(args.backend, args.scheduler)
    io.writable_folder(args.out, "--out")
    common = dict(overrides=overrides, preset=args.preset, n_jobs=args.n_jobs, backend=args.backend,
                  scheduler=args.scheduler, progress=not args.quiet)
    if args.command == "search":
        table = search(grid, args.out, **common)
        done = int((table["status"] == "done").sum())
        print(f"{done}/{len(table)} cells done; {args.out / paths.GRID_CSV}")
        return 0 if done == len(table) else 1
    print(compare(grid, args.out, **common))
    return 0


def _fraction_or_method(value: str, frame: pd.DataFrame) -> float:
    """`--reach 0.0358` or `--reach lt` (where that method's runs end)."""
    from gridsearch.summarize import final_weights_remaining

    try:
        target = float(value)
    except ValueError:
        target = final_weights_remaining(frame, value)
    if not 0 < target <= 1:
        raise UserError(f"--reach must be a fraction of the weights in (0, 1] or a method, got {value}")
    return target
