"""Run many configurations with joblib: loky processes locally, or a Dask cluster (`--backend dask`).

Each cell is an ordinary run in the results store, so rerunning an interrupted grid skips finished cells
(a finished run returns at once) and resumes unfinished ones. A failing cell is recorded with its error and
the others go on. The dense round of each seed, which every cell with the same training settings shares, is
computed once, before the cells. A cell whose run folder another process holds (a `mdp-prune run` of the same
configuration) fails with that process named, and writes nothing there; cells naming the same run folder run once.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from mdp_prune.config import RunConfig
from mdp_prune.errors import UserError
from mdp_prune.store import io, lock, paths

# Torch threads per worker when run_configs is given none; `mdp-grid --threads` sets it for the whole command.
THREADS: int | None = None


def _threads(n_jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, n_jobs))


def _worker(threads: int, command: str) -> None:
    import torch

    torch.set_num_threads(threads)
    lock.set_command(command)  # a lock message names the grid, not the worker process


def _dense(config: dict[str, Any], runs: str, threads: int, command: str) -> None:
    from mdp_prune.experiments.imp import Setup, dense_round

    _worker(threads, command)
    try:
        dense_round(Setup(RunConfig.from_dict(config)), Path(runs), progress=False)
    except Exception:  # noqa: BLE001 - the cells retry it and record the error
        pass


def _cell(config: dict[str, Any], runs: str, threads: int, command: str) -> dict[str, Any]:
    """One cell, in a worker. Returns its status instead of raising, so one failure stops nothing."""
    from mdp_prune.experiments.imp import run_imp

    _worker(threads, command)
    cfg = RunConfig.from_dict(config)
    run = paths.run_dir(runs, cfg)
    began = time.perf_counter()
    try:
        run_imp(cfg, runs, progress=False)
        (run / paths.ERROR).unlink(missing_ok=True)
        return {"run_dir": str(run), "status": "done", "error": "", "seconds": time.perf_counter() - began}
    except Exception as e:  # noqa: BLE001 - recorded per cell, reported in grid.csv
        message = f"{type(e).__name__}: {e}"
        if not isinstance(e, lock.FolderInUse):  # the folder is another process's: leave it alone
            io.write_bytes(run / paths.ERROR, traceback.format_exc().encode())
        return {"run_dir": str(run), "status": "failed", "error": message, "seconds": time.perf_counter() - began}


def _backend(backend: str, scheduler: str | None) -> Any:
    if backend not in ("loky", "dask"):
        raise UserError(f"unknown backend {backend!r}; choose from loky, dask")
    if backend == "loky":
        if scheduler:  # silently running locally would hide a cluster the user thinks is working
            raise UserError("--scheduler is used only with --backend dask")
        return nullcontext()
    if not scheduler:
        raise UserError("--backend dask needs --scheduler tcp://HOST:PORT")
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, ValueError, TypeError) as e:  # unreachable, or an address distributed cannot parse
        raise UserError(f"cannot reach the Dask scheduler at {scheduler}: {' '.join(str(e).split())}") from None
    return _DaskContext(client)


def check_backend(backend: str, scheduler: str | None) -> None:
    """Fail on a backend that cannot be used (unknown, misused --scheduler, unreachable scheduler) before the
    command creates its output folder."""
    context = _backend(backend, scheduler)
    if isinstance(context, _DaskContext):
        context.client.close()


class _DaskContext:
    def __init__(self, client: Any) -> None:
        self.client = client

    def __enter__(self) -> None:
        self._config = parallel_config(backend="dask")
        self._config.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._config.__exit__(*exc)
        self.client.close()


def run_configs(configs: Sequence[RunConfig], runs: Path, n_jobs: int = 2, backend: str = "loky",
                scheduler: str | None = None, progress: bool = True, desc: str = "cells",
                threads: int | None = None) -> list[dict[str, Any]]:
    """Run every configuration (in order of the returned list); dense rounds first, each computed once.
    `threads`: torch threads per worker (default: `THREADS`, else cores / n_jobs locally and 1 on Dask)."""
    runs = Path(runs)
    threads = threads or THREADS or (_threads(n_jobs) if backend == "loky" else 1)
    command = f"a grid worker of pid {os.getpid()}: {lock.command_line()}"
    # Two cells of one run folder would be two processes in it: each folder runs once, its result shared.
    unique: dict[Path, RunConfig] = {}
    for c in configs:
        unique.setdefault(paths.run_dir(runs, c), c)
    dense: dict[Path, dict[str, Any]] = {}
    for c in configs:
        dense.setdefault(paths.dense_dir(runs, c.train), c.to_dict())
    todo = [cfg for d, cfg in dense.items() if not (d / paths.DENSE).is_file()]
    with _backend(backend, scheduler):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator", backend=None if backend == "dask" else "loky")
        if todo:
            list(tqdm(parallel(delayed(_dense)(cfg, str(runs), threads, command) for cfg in todo), total=len(todo),
                      desc="dense rounds", disable=not progress, dynamic_ncols=True))
        cells = parallel(delayed(_cell)(c.to_dict(), str(runs), threads, command) for c in unique.values())
        results = dict(zip(unique, tqdm(cells, total=len(unique), desc=desc, disable=not progress,
                                        dynamic_ncols=True), strict=True))
    return [dict(results[paths.run_dir(runs, c)]) for c in configs]
