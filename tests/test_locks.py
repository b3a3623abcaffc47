"""One process at a time in a run folder (a second stops with one line naming the first), a kill -9 that frees
the folder, the shared dense folder that a second process waits for and reuses, and --threads outside the
configuration."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading

import pandas as pd
import pytest

from mdp_prune.cli import build_parser, config_from_args, main
from mdp_prune.store import lock, paths
from mdp_prune.store.lock import FolderInUse, folder_lock

TINY = ["--model", "mlp", "--hidden-sizes", "16", "--train-iterations", "20", "--eval-every", "10",
        "--batch-size", "32", "--device", "cpu", "--rounds", "3"]
# Spawned, not forked: a fork copies whatever locks other threads of the test process held at that moment (joblib's
# executor threads from earlier tests, for one), and the child can hang on them.
SPAWN = multiprocessing.get_context("spawn")
WAIT = 180  # seconds: a bound on every wait, never reached when things work (a child's torch import on a
#   saturated 2-core machine took over 60)


@pytest.fixture(autouse=True, scope="module")
def _warm():
    """Import what training imports lazily (the optimizer's torch._dynamo, seconds) once, before the tests."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _config(*extra: str):
    return config_from_args(build_parser().parse_args(["run", *TINY, *extra]))


def _run_cmd(out) -> list[str]:
    return ["run", *TINY, "--quiet", "--out", str(out)]


def _hold(folder, started, release) -> None:
    """A child that holds `folder` until told to let go."""
    with folder_lock(folder):
        started.set()
        release.wait(WAIT)


def _run_paused_in_round_1(config, out, started, release) -> None:
    """A child running IMP that stops in round 1, holding its run folder, until released."""
    from mdp_prune.experiments.imp import run_imp

    def pause(round_, model, masks):
        if round_ == 1:
            started.set()
            release.wait(WAIT)

    run_imp(config, out, progress=False, on_round_start=pause)


def _slow_dense(setup, out, started, release) -> None:
    """A child that trains the dense round, pausing before it trains until released."""
    from mdp_prune.experiments.imp import dense_round

    train = setup.train

    def paused(*args, **kwargs):
        started.set()
        release.wait(WAIT)
        return train(*args, **kwargs)

    setup.train = paused
    dense_round(setup, out, progress=False)


def _start(target, *args):
    started, release = SPAWN.Event(), SPAWN.Event()
    child = SPAWN.Process(target=target, args=(*args, started, release))
    child.start()
    assert started.wait(WAIT), "the child never took the lock"
    return child, release


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_second_run_of_the_same_folder_exits_2_naming_the_first(tmp_path):
    out = tmp_path / "out"
    run = paths.run_dir(out, _config())
    child, release = _start(_run_paused_in_round_1, _config(), out)
    try:
        second = subprocess.run([sys.executable, "-m", "mdp_prune", *_run_cmd(out)], capture_output=True, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=WAIT)
    finally:
        release.set()
        child.join(WAIT)
    assert second.returncode == 2 and _one_line(second.stderr), second.stderr
    assert f"run folder {run} is in use by pid {child.pid} (" in second.stderr
    assert "wait for it to finish or stop it" in second.stderr
    assert child.exitcode == 0
    assert list(pd.read_csv(run / paths.ROUNDS)["round"]) == [0, 1, 2, 3]  # each round once
    assert not (run / paths.LOCK).exists()  # released: nothing beside the results
    alone = paths.run_dir(tmp_path / "alone", _config())
    assert subprocess.run([sys.executable, "-m", "mdp_prune", *_run_cmd(tmp_path / "alone")],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=WAIT).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(run / paths.ROUNDS).drop(columns="seconds"),
                                  pd.read_csv(alone / paths.ROUNDS).drop(columns="seconds"))


def test_a_lock_of_a_killed_run_is_recovered(tmp_path, capsys):
    out = tmp_path / "out"
    run = paths.run_dir(out, _config())
    child, _ = _start(_run_paused_in_round_1, _config(), out)
    os.kill(child.pid, signal.SIGKILL)
    child.join(WAIT)
    assert (run / paths.LOCK).is_file()  # stale: its holder is dead, and the kernel dropped its flock
    assert main(_run_cmd(out)) == 0, capsys.readouterr().err
    assert list(pd.read_csv(run / paths.ROUNDS)["round"]) == [0, 1, 2, 3]
    assert not (run / paths.LOCK).exists()


@pytest.fixture
def finished(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_run_cmd(out)) == 0
    capsys.readouterr()
    return paths.run_dir(out, _config())


@pytest.mark.parametrize("argv", [["truncate", "--round", "2"], ["export", "--round", "1"],
                                  ["control", "--rounds", "1", "--quiet"], ["proxy-check", "--plans", "3", "--quiet"]])
def test_commands_on_a_held_run_folder_stop_and_change_nothing(finished, capsys, argv):
    run = finished
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    child, release = _start(_hold, run)
    try:
        code = main([argv[0], str(run), *argv[1:]])
    finally:
        release.set()
        child.join(WAIT)
    err = capsys.readouterr().err
    assert code == 2 and _one_line(err) and f"is in use by pid {child.pid}" in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files
    assert main([argv[0], str(run), *argv[1:]]) == 0  # free again


def test_a_second_process_waits_for_the_dense_round_and_reuses_it(tmp_path, monkeypatch):
    from mdp_prune.experiments.imp import Setup, dense_round

    out = tmp_path / "out"
    setup = Setup(_config())
    dense = paths.dense_dir(out, setup.config.train) / paths.DENSE

    child, release = _start(_slow_dense, setup, out)
    trained = []
    monkeypatch.setattr(setup, "train", lambda *a, **k: trained.append(a) or pytest.fail("retrained the dense round"))
    got = {}
    waiter = threading.Thread(target=lambda: got.update(dense_round(setup, out, progress=False)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not dense.exists()  # waiting for the child, not training beside it
    release.set()
    child.join(WAIT)
    waiter.join(WAIT)
    assert child.exitcode == 0 and not waiter.is_alive() and not trained
    assert set(got) == {"init", "rewind", "trained", "result"}
    assert not (dense.parent / paths.LOCK).exists()


def test_a_grid_cell_of_a_held_run_folder_fails_with_the_holder_named(tmp_path, monkeypatch):
    from gridsearch.runner import run_configs

    monkeypatch.setattr(lock, "_command", None)  # the runner names its workers' command
    held, free = _config(), _config("--seed", "1")
    runs = tmp_path / "runs"
    child, release = _start(_hold, paths.run_dir(runs, held))
    try:
        results = run_configs([held, free, free], runs, n_jobs=1, progress=False, threads=1)
    finally:
        release.set()
        child.join(WAIT)
    assert [r["status"] for r in results] == ["failed", "done", "done"]
    assert f"is in use by pid {child.pid}" in results[0]["error"] and "\n" not in results[0]["error"]
    assert not paths.run_dir(runs, held).exists()  # nothing written into another process's folder
    assert results[1] == results[2]  # one run folder, run once
    assert list(pd.read_csv(paths.run_dir(runs, free) / paths.ROUNDS)["round"]) == [0, 1, 2, 3]


def test_the_lock_is_reentrant_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "a" / "b"
    with folder_lock(folder) as held:
        with folder_lock(folder, wait=True):
            assert (folder / paths.LOCK).is_file()
        assert held == folder and (folder / paths.LOCK).is_file()  # still held by the outer block
        ours = (folder / paths.LOCK).read_text()
        assert f'"pid": {os.getpid()}' in ours
    assert not folder.exists() and (tmp_path / "a").is_dir()  # the folder only the lock made is gone
    with folder_lock(tmp_path):
        (tmp_path / "result.txt").write_text("kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "result.txt"]


def test_another_thread_is_refused_like_another_process(tmp_path):
    errors = []
    with folder_lock(tmp_path):
        thread = threading.Thread(target=lambda: errors.append(_try_lock(tmp_path)))
        thread.start()
        thread.join(WAIT)
    assert len(errors) == 1 and f"in use by pid {os.getpid()}" in errors[0]


def _try_lock(folder) -> str:
    try:
        with folder_lock(folder):
            return "locked"
    except FolderInUse as e:
        return str(e)


def test_threads_is_not_part_of_the_configuration():
    assert _config("--threads", "1").hash() == _config().hash() == _config("--threads", "7").hash()
    assert build_parser().parse_args(["control", "x", "--threads", "2"]).threads == 2
    assert main(["run", *TINY, "--threads", "0"]) == 2


def test_the_commands_load_torch_only_after_quieting_openmp(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    probe = ("import sys, mdp_prune.cli, gridsearch.cli; print(sorted(m for m in ('torch', 'sklearn', 'scipy') "
             "if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}).stdout.strip() == "[]"
    assert main(["export", str(tmp_path / "none")]) == 2
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's own choice stays
    main(["export", str(tmp_path / "none")])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
