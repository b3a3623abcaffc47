"""What a run does with divergence, damaged tables, a bad --out and a truncate that cannot finish: one line,
exit code 2, and the results already written kept."""

from __future__ import annotations

import os
import re

import pandas as pd
import pytest
import torch

from mdp_prune.cli import main
from mdp_prune.engine.pruning import magnitude_prune
from mdp_prune.errors import UserError
from mdp_prune.store import io, paths

TINY = ["--model", "mlp", "--hidden-sizes", "16", "--train-iterations", "20", "--eval-every", "10",
        "--quiet", "--device", "cpu"]


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _one_line(err: str) -> bool:
    return len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def finished(tmp_path, capsys):
    """A tiny lt run with rounds 0-3 committed; returns (out, run folder)."""
    out = tmp_path / "out"
    assert main(["run", *TINY, "--rounds", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    return out, next(p for p in out.iterdir() if p.name.startswith("lt_"))


@pytest.mark.parametrize("lr", ["1e6", "1e3"])
def test_divergence_stops_the_run_naming_round_and_iteration(capsys, tmp_path, lr):
    code, err = _run(capsys, ["run", *TINY, "--lr", lr, "--optimizer", "sgd", "--rounds", "2", "--out",
                              str(tmp_path)])
    assert code == 2 and _one_line(err)
    diverged = re.search(r"round (\d+)( \(dense\))? diverged at iteration \d+ \(\w+ loss (nan|inf)\)", err)
    assert diverged and f"--lr (now {float(lr):g}" in err
    committed = [list(io.read_rounds(p.parent)["round"]) for p in tmp_path.glob("*/" + paths.ROUNDS)]
    assert committed in ([], [list(range(int(diverged[1])))])  # nothing of the diverged round


def test_divergence_in_a_later_round_commits_nothing_of_it(tiny, tmp_path):
    from mdp_prune.experiments.imp import run_imp

    def explode(r, model, masks):
        if r == 2:  # the weights a round starts from become garbage
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    config = tiny(rounds=3)
    with pytest.raises(UserError, match=r"round 2 diverged at iteration \d+"):
        run_imp(config, tmp_path, progress=False, on_round_start=explode)
    run = paths.run_dir(tmp_path, config)
    assert list(io.read_rounds(run)["round"]) == [0, 1]
    assert not paths.masks_file(run, 3).exists()


def test_pruning_refuses_non_finite_weights():
    weights = {"fc": torch.tensor([[1.0, float("nan")], [0.5, 2.0]])}
    with pytest.raises(UserError, match="non-finite"):
        magnitude_prune(weights, {"fc": torch.ones(2, 2)}, {"fc": 0.5})


def _cut_mid_row(text: str) -> str:
    return text[: len(text) - len(text.splitlines()[-1]) // 2 - 1]


def _drop_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="test_accuracy")


def _repeat_round(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[-1]]])


def _blank_cell(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[2, "val_accuracy"] = None
    return frame


def _out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[1, "remaining:fc1"] = 7
    return frame


@pytest.mark.parametrize("damage,needle", [
    (_drop_column, "lacks the columns test_accuracy"),
    (_repeat_round, "row 5 (round 3 where round 4 belongs): `mdp-prune truncate"),
    (_blank_cell, "row 3 (no number in val_accuracy)"),
    (_out_of_range, "row 2 (remaining:fc1 outside [0, 1])"),
])
def test_a_damaged_rounds_table_is_not_trusted(capsys, finished, damage, needle):
    out, run = finished
    io.write_csv(run / paths.ROUNDS, damage(pd.read_csv(run / paths.ROUNDS)))
    before = (run / paths.ROUNDS).read_bytes()
    code, err = _run(capsys, ["run", *TINY, "--rounds", "5", "--out", str(out)])
    assert code == 2 and _one_line(err) and needle in err
    assert (run / paths.ROUNDS).read_bytes() == before


def test_a_row_cut_in_half_is_recovered_by_the_truncate_the_error_names(capsys, finished):
    out, run = finished
    whole = (run / paths.ROUNDS).read_text()
    (run / paths.ROUNDS).write_text(_cut_mid_row(whole))
    code, err = _run(capsys, ["run", *TINY, "--rounds", "3", "--out", str(out)])
    assert code == 2 and _one_line(err) and f"truncate {run} --round 3" in err
    assert main(["truncate", str(run), "--round", "3"]) == 0
    assert main(["run", *TINY, "--rounds", "3", "--out", str(out)]) == 0
    assert (run / paths.ROUNDS).read_text() .splitlines()[:-1] == whole.splitlines()[:-1]
    redone = pd.read_csv(run / paths.ROUNDS).drop(columns="seconds")
    original = pd.read_csv(pd.io.common.StringIO(whole)).drop(columns="seconds")
    pd.testing.assert_frame_equal(redone, original)


@pytest.mark.parametrize("victim", [paths.REWIND, "masks/round_2.pt", "planner/state_2.pt"])
def test_truncate_checks_everything_before_deleting_anything(capsys, finished, victim):
    _, run = finished
    target = run / victim
    assert target.is_file(), sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    target.write_bytes(b"damaged")
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, err = _run(capsys, ["truncate", str(run), "--round", "2"])
    assert code == 2 and _one_line(err) and str(target) in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files


def test_planner_state_is_compressed_and_a_cut_one_is_one_line(capsys, tmp_path):
    """The planner's state is gzipped (its Q-table is mostly initial values), io reads it and a plain torch file
    alike, and a file cut in the middle of its gzip stream is a one-line error, not a traceback."""
    assert main(["run", *TINY, "--planner", "qlearning", "--episodes", "10", "--rounds", "3",
                 "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    run = next(p for p in tmp_path.iterdir() if p.name.startswith("qlearning_"))
    target = run / "planner" / "state_2.pt"
    data = target.read_bytes()
    assert data[:2] == io.GZIP_MAGIC
    state = io.load_torch(target)
    plain = target.parent / "plain.pt"
    io.save_torch(plain, state)
    assert plain.read_bytes()[:2] != io.GZIP_MAGIC
    again = io.load_torch(plain)
    assert torch.equal(again["agent"]["values"], state["agent"]["values"]) and again["committed"] == state["committed"]
    plain.unlink()
    target.write_bytes(data[: len(data) // 2])
    code, err = _run(capsys, ["truncate", str(run), "--round", "2"])
    assert code == 2 and _one_line(err) and str(target) in err


def test_out_that_is_a_file_or_read_only(capsys, tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    code, err = _run(capsys, ["run", *TINY, "--rounds", "0", "--out", str(a_file)])
    assert code == 2 and _one_line(err) and "is a file, not a folder" in err
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = _run(capsys, ["run", *TINY, "--rounds", "0", "--out", str(locked)])
    assert code == 2 and _one_line(err) and "not writable" in err


def test_export_to_a_folder_and_batch_larger_than_the_data(capsys, finished, tmp_path):
    _, run = finished
    code, err = _run(capsys, ["export", str(run), "--output", str(tmp_path)])
    assert code == 2 and _one_line(err) and "is a folder" in err
    code, err = _run(capsys, ["run", *TINY, "--batch-size", "100000", "--out", str(tmp_path / "b")])
    assert code == 2 and _one_line(err) and "larger than digits's training split" in err


def test_control_on_a_folder_whose_config_names_another_model(capsys, finished):
    _, run = finished
    config = io.read_json(run / paths.CONFIG)
    config["train"]["hidden_sizes"] = [8]
    io.write_json(run / paths.CONFIG, config)
    code, err = _run(capsys, ["control", str(run), "--kind", "random-prune", "--rounds", "1", "--quiet"])
    assert code == 2 and _one_line(err) and "does not fit the model" in err


@pytest.mark.parametrize("argv,needle", [
    (["--scheduler", "foo://bar"], "--scheduler is used only with --backend dask"),
    (["--backend", "dask", "--scheduler", "foo://bar"], "cannot reach the Dask scheduler at foo://bar"),
])
def test_a_scheduler_that_cannot_be_used_stops_the_grid(capsys, tmp_path, argv, needle):
    from gridsearch.cli import main as grid_main

    pytest.importorskip("distributed")
    code = grid_main(["search", "--grid", "small", *argv, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and _one_line(err) and needle in err
    assert not (tmp_path / "out").exists()


def test_a_corrupt_shared_dense_round_names_the_file_that_fixes_it(capsys, finished):
    out, run = finished
    dense = next((out / "dense").glob("*/" + paths.DENSE))
    dense.write_bytes(b"damaged")
    code, err = _run(capsys, ["run", *TINY, "--seed", "0", "--rounds", "4", "--out", str(out)])
    assert code == 2 and _one_line(err) and f"delete {dense} (the shared dense round)" in err
    assert "delete the run folder" not in err


def test_a_run_resumed_across_the_proxy_iterations_column_is_trusted(capsys, finished):
    out, run = finished
    rows = pd.read_csv(run / paths.ROUNDS)
    rows.loc[:1, "proxy_iterations"] = None  # rounds written before the column existed, then resumed
    io.write_csv(run / paths.ROUNDS, rows)
    assert main(["run", *TINY, "--rounds", "4", "--out", str(out)]) == 0
    assert list(io.read_rounds(run)["round"]) == [0, 1, 2, 3, 4]


def test_a_grid_out_that_is_a_file(capsys, tmp_path):
    from gridsearch.cli import main as grid_main

    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    code = grid_main(["search", "--grid", "small", "--out", str(a_file), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and _one_line(err) and "--out" in err and "is a file, not a folder" in err


def test_truncate_refuses_a_side_table_with_a_round_that_is_not_a_number(capsys, finished):
    _, run = finished
    curves = pd.read_csv(run / paths.CURVES)
    curves["round"] = curves["round"].astype(object)
    curves.loc[len(curves) - 1, "round"] = "three"
    io.write_csv(run / paths.CURVES, curves)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, err = _run(capsys, ["truncate", str(run), "--round", "2"])
    assert code == 2 and _one_line(err) and f"{run / paths.CURVES} is damaged" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files  # rounds.csv not cut


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400"])
def test_an_infinite_count_is_damage_not_a_crash(finished, value):
    _, run = finished
    text = (run / paths.ROUNDS).read_text().splitlines()
    header = text[0].split(",")
    cells = text[2].split(",")
    cells[header.index("train_iterations")] = value
    (run / paths.ROUNDS).write_text("\n".join([*text[:2], ",".join(cells), *text[3:]]) + "\n")
    with pytest.raises(UserError, match=r"row 2 \(train_iterations not a whole number"):
        io.read_rounds(run)


def test_only_leading_empty_proxy_iterations_are_a_legacy_column(finished):
    _, run = finished
    rows = pd.read_csv(run / paths.ROUNDS)
    legacy = rows.drop(columns="proxy_iterations")
    io.write_csv(run / paths.ROUNDS, legacy)
    assert list(io.read_rounds(run)["proxy_iterations"]) == [0] * len(rows)  # an older run spent none
    resumed = rows.astype({"proxy_iterations": float})
    resumed.loc[:1, "proxy_iterations"] = None  # rounds 0-1 written before the column, 2-3 after
    io.write_csv(run / paths.ROUNDS, resumed)
    assert list(io.read_rounds(run)["proxy_iterations"]) == [0, 0, *rows["proxy_iterations"][2:]]
    holed = rows.astype({"proxy_iterations": float})
    holed.loc[2, "proxy_iterations"] = None  # below a number: damage, not an older version
    io.write_csv(run / paths.ROUNDS, holed)
    with pytest.raises(UserError, match=r"row 3 \(no number in proxy_iterations\)"):
        io.read_rounds(run)


def test_a_free_mode_run_planned_under_an_older_objective_is_not_resumed(capsys, tmp_path):
    argv = ["run", *TINY, "--planner", "qlearning", "--budget", "free", "--episodes", "10",
            "--target-remaining", "0.01", "--out", str(tmp_path)]
    assert main([*argv, "--rounds", "2"]) == 0
    run = next(tmp_path.glob("qlearning_*"))
    log = pd.read_csv(run / paths.QLEARNING_ROUNDS)
    log.loc[log["round"] == 1, "target_sparsity"] = 0.964  # what the reward asked for before the fix
    io.write_csv(run / paths.QLEARNING_ROUNDS, log)
    capsys.readouterr()
    code, err = _run(capsys, [*argv, "--rounds", "4"])
    assert code == 2 and _one_line(err) and f"`mdp-prune truncate {run} --round 1` replans from there" in err
    assert main(["truncate", str(run), "--round", "1"]) == 0
    assert main([*argv, "--rounds", "4"]) == 0


def test_a_file_system_without_locks_is_one_line(capsys, tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    code, err = _run(capsys, ["run", *TINY, "--rounds", "0", "--out", str(tmp_path)])
    assert code == 2 and _one_line(err) and "does not support locks" in err


def test_out_below_a_folder_that_cannot_be_entered(capsys, tmp_path, monkeypatch):
    from pathlib import Path

    closed = tmp_path / "closed"
    real_exists = Path.exists

    def exists(self, *args, **kwargs):  # what a folder without the x bit does for a user other than root
        if closed in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    code, err = _run(capsys, ["run", *TINY, "--rounds", "0", "--out", str(closed / "out")])
    assert code == 2 and _one_line(err) and "Permission denied" in err


def test_a_run_that_committed_greedy_plans_is_not_resumed_under_the_best_plan_rule(capsys, tmp_path):
    argv = ["run", *TINY, "--planner", "qlearning", "--budget", "lt", "--episodes", "10", "--out", str(tmp_path)]
    assert main([*argv, "--rounds", "2"]) == 0
    run = next(tmp_path.glob("qlearning_*"))
    log = pd.read_csv(run / paths.QLEARNING_ROUNDS)
    io.write_csv(run / paths.QLEARNING_ROUNDS, log.drop(columns="commit"))  # logged before the commit rule
    capsys.readouterr()
    code, err = _run(capsys, [*argv, "--rounds", "3"])
    assert code == 2 and _one_line(err) and f"delete {run} and rerun its command" in err
    log.loc[log["round"] == 1, "commit"] = "greedy"
    io.write_csv(run / paths.QLEARNING_ROUNDS, log)
    code, err = _run(capsys, [*argv, "--rounds", "3"])
    assert code == 2 and _one_line(err) and f"`mdp-prune truncate {run} --round 1` replans from there" in err
    assert main(["truncate", str(run), "--round", "1"]) == 0
    assert main([*argv, "--rounds", "3"]) == 0
