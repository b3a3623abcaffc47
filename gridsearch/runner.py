"""Run many configurations with joblib: loky processes locally, or a Dask cluster (`--backend dask`).

Each cell is an ordinary run in the results store, so rerunning an interrupted grid skips finished cells
(a finished run returns at once) and resumes unfinished ones. A failing cell is recorded with its error and
the others go on. The dense round of each seed, which every cell with the same training settings shares, is
computed once, before the cells.
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
from mdp_prune.store import io, paths


def _threads(n_jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, n_jobs))


def _dense(config: dict[str, Any], runs: str, threads: int) -> None:
    import torch

    from mdp_prune.experiments.imp import Setup, dense_round

    torch.set_num_threads(threads)
    try:
        dense_round(Setup(RunConfig.from_dict(config)), Path(runs), progress=False)
    except Exception:  # noqa: BLE001 - the cells retry it and record the error
        pass


def _cell(config: dict[str, Any], runs: str, threads: int) -> dict[str, Any]:
    """One cell, in a worker. Returns its status instead of raising, so one failure stops nothing."""
    import torch

    from mdp_prune.experiments.imp import run_imp

    torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(config)
    run = paths.run_dir(runs, cfg)
    began = time.perf_counter()
    try:
        run_imp(cfg, runs, progress=False)
        (run / paths.ERROR).unlink(missing_ok=True)
        return {"run_dir": str(run), "status": "done", "error": "", "seconds": time.perf_counter() - began}
    except Exception as e:  # noqa: BLE001 - recorded per cell, reported in grid.csv
        message = f"{type(e).__name__}: {e}"
        io.write_bytes(run / paths.ERROR, traceback.format_exc().encode())
        return {"run_dir": str(run), "status": "failed", "error": message, "seconds": time.perf_counter() - began}


def _backend(backend: str, scheduler: str | None) -> Any:
    if backend == "loky":
        return nullcontext()
    if backend != "dask":
        raise UserError(f"unknown backend {backend!r}; choose from loky, dask")
    if not scheduler:
        raise UserError("--backend dask needs --scheduler tcp://HOST:PORT")
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s")
    except OSError as e:
        raise UserError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    return _DaskContext(client)


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
                scheduler: str | None = None, progress: bool = True, desc: str = "cells") -> list[dict[str, Any]]:
    """Run every configuration (in order of the returned list); dense rounds first, each computed once."""
    runs = Path(runs)
    threads = _threads(n_jobs) if backend == "loky" else 1
    dense: dict[Path, dict[str, Any]] = {}
    for c in configs:
        dense.setdefault(paths.dense_dir(runs, c.train), c.to_dict())
    todo = [cfg for d, cfg in dense.items() if not (d / paths.DENSE).is_file()]
    with _backend(backend, scheduler):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator", backend=None if backend == "dask" else "loky")
        if todo:
            list(tqdm(parallel(delayed(_dense)(cfg, str(runs), threads) for cfg in todo), total=len(todo),
                      desc="dense rounds", disable=not progress, dynamic_ncols=True))
        results = []
        for result in tqdm(parallel(delayed(_cell)(c.to_dict(), str(runs), threads) for c in configs),
                           total=len(configs), desc=desc, disable=not progress, dynamic_ncols=True):
            results.append(result)
    return results
