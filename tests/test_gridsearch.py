import gzip
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from gridsearch.cli import main as grid_main
from gridsearch.grid import load_grid
from gridsearch.grids import GRIDS_DIR
from gridsearch.markdown import mean_std, seed_cell
from gridsearch.selection import search, select
from mdp_prune.store import paths


def test_expansion_is_sorted_and_crossed_with_seeds(tmp_path, tiny_grid):
    grid = load_grid(str(tiny_grid({"qlearning.gamma": [0.5, 0.9], "qlearning.alpha": [0.1, 0.2, 0.3]}, seeds=(0, 1))))
    cells = grid.cells()
    assert len(cells) == 2 * 3 * 2
    # sorted keys (alpha before gamma), the last key varying fastest, seeds innermost
    assert [(c.params["qlearning.alpha"], c.params["qlearning.gamma"], c.seed) for c in cells[:5]] == [
        (0.1, 0.5, 0), (0.1, 0.5, 1), (0.1, 0.9, 0), (0.1, 0.9, 1), (0.2, 0.5, 0)]
    assert cells[3].config.qlearning.gamma == 0.9 and cells[3].config.train.seed == 1


def test_builtin_grids_load_and_bad_grids_are_clear_errors(tmp_path, capsys):
    small = load_grid("small").cells()
    assert len(small) == 4 * 3 and {c.config.qlearning.budget_reward for c in small} == {"committed"}
    assert len(load_grid("plan").cells()) == 8 * 3  # the former default's grid, which searches the proxy too
    assert {c.config.qlearning.budget_reward for c in load_grid("plan").cells()} == {"plan"}
    assert load_grid("paper").cells()[0].config.train.train_iterations == 50_000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"params": {"qlearning.alfa": [0.1]}}))
    assert grid_main(["search", "--grid", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown configuration field" in capsys.readouterr().err
    assert grid_main(["search", "--grid", "nonexistent", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_a_grid_extends_another_and_changes_only_what_it_names(tmp_path):
    """`extends`: base and params entries replace the parent's by key, a key fixed in base leaves the search,
    seeds replace; a relative parent is found beside the file. The built-in `retrained` grid is the small grid
    written out with its two settings: the same cells, so the same run folders."""
    (tmp_path / "sub").mkdir()
    parent = tmp_path / "sub" / "parent.yaml"
    parent.write_text(yaml.safe_dump({"base": {"train.dataset": "digits", "prune.planner": "qlearning", "rounds": 2},
                                      "params": {"qlearning.alpha": [0.5, 1.0], "qlearning.gamma": [0.5, 0.9]},
                                      "seeds": [0, 1], "search_rounds": 1}))
    child = tmp_path / "sub" / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": "parent.yaml", "base": {"qlearning.gamma": 0.7, "rounds": 3},
                                     "params": {"qlearning.beta": [1.0, 2.0]}, "seeds": [4]}))
    grid = load_grid(str(child))
    assert grid.name == "child" and grid.seeds == [4] and grid.search_rounds == 1
    assert grid.base == {"train.dataset": "digits", "prune.planner": "qlearning", "rounds": 3, "qlearning.gamma": 0.7}
    assert grid.params == {"qlearning.alpha": [0.5, 1.0], "qlearning.beta": [1.0, 2.0]}
    assert {c.config.qlearning.gamma for c in grid.cells()} == {0.7} and len(grid.cells()) == 4
    small = yaml.safe_load((GRIDS_DIR / "small.yaml").read_text())
    small["base"].update({"qlearning.budget_reward": "retrained", "qlearning.proxy": "finetune"})
    written = tmp_path / "written.yaml"
    written.write_text(yaml.safe_dump(small))
    assert [c.config.hash() for c in load_grid("retrained").cells()] == [
        c.config.hash() for c in load_grid(str(written)).cells()]


def test_the_anchored_grid_adds_anchor_z_to_the_small_grid_and_keeps_its_cells():
    small = {c.config.hash() for c in load_grid("small").cells()}
    anchored = load_grid("anchored").cells()
    assert len(anchored) == 2 * len(small)
    assert {c.config.hash() for c in anchored if c.config.qlearning.anchor_z == 2} == small  # the default's cells
    assert {c.config.qlearning.anchor_z for c in anchored} == {0.0, 2.0}
    assert {c.config.qlearning.anchor_z for c in load_grid("plan").cells()} == {0.0}  # the former default's grid


def test_parallel_equals_serial_and_a_rerun_skips_finished_cells(tmp_path, tiny_grid):
    grid = load_grid(str(tiny_grid({"qlearning.alpha": [0.1, 0.5]})))
    serial = search(grid, tmp_path / "serial", n_jobs=1, progress=False)
    parallel = search(grid, tmp_path / "parallel", n_jobs=2, progress=False)
    for a, b in zip(serial["run_dir"], parallel["run_dir"], strict=True):
        ra = pd.read_csv(tmp_path / "serial" / a / paths.ROUNDS).drop(columns="seconds")
        rb = pd.read_csv(tmp_path / "parallel" / b / paths.ROUNDS).drop(columns="seconds")
        pd.testing.assert_frame_equal(ra, rb, check_exact=True)
    stamps = {r: (tmp_path / "serial" / r / paths.ROUNDS).stat().st_mtime_ns for r in serial["run_dir"]}
    again = search(grid, tmp_path / "serial", n_jobs=1, progress=False)
    assert all((tmp_path / "serial" / r / paths.ROUNDS).stat().st_mtime_ns == t for r, t in stamps.items())
    pd.testing.assert_frame_equal(serial, again)


def test_interrupted_grid_resumes(tmp_path, tiny_grid):
    grid = load_grid(str(tiny_grid({"qlearning.alpha": [0.1, 0.5]}, seeds=(0,))))
    from mdp_prune.experiments.imp import run_imp

    first = grid.cells()[0].config
    run_imp(first.replace(rounds=1), tmp_path / "out" / "runs", progress=False)  # a cell killed after round 1
    table = search(grid, tmp_path / "out", n_jobs=1, progress=False)
    assert (table["status"] == "done").all() and (table["rounds_done"] == 2).all()


def test_search_rounds_score_cells_early_and_an_extended_cell_scores_as_before(tmp_path, tiny_grid, capsys):
    from mdp_prune.experiments.imp import run_imp

    path = tiny_grid({"qlearning.alpha": [0.1, 0.5]}, seeds=(0,), search_rounds=1)
    grid = load_grid(str(path))
    table = search(grid, tmp_path / "out", n_jobs=1, progress=False)
    assert (table["rounds_done"] == 1).all()
    runs = [tmp_path / "out" / r for r in table["run_dir"]]
    assert [len(pd.read_csv(r / paths.ROUNDS)) for r in runs] == [2, 2]
    # compare extends the chosen cell to the full rounds in the same folder; its score must not move
    cell = grid.cells()[0].config
    assert run_imp(cell, tmp_path / "out" / "runs", progress=False) == runs[0]
    assert len(pd.read_csv(runs[0] / paths.ROUNDS)) == cell.rounds + 1
    again = search(grid, tmp_path / "out", n_jobs=1, progress=False)
    pd.testing.assert_frame_equal(table, again)
    # the command line overrides it, and rejects nonsense in one line
    assert grid_main(["search", "--grid", str(path), "--search-rounds", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--search-rounds must be at least 1" in capsys.readouterr().err
    path = tiny_grid({}, search_rounds="two")
    assert grid_main(["search", "--grid", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "search_rounds must be a positive integer" in capsys.readouterr().err


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path, tiny_grid):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        with gzip.open(broken / f"{name}.gz", "wb") as f:
            f.write(b"not an idx file")
    grid = load_grid(str(tiny_grid({"train.dataset": ["digits", "fashion-mnist"]}, seeds=(0,),
                                     base={"data_dir": str(broken)})))
    table = search(grid, tmp_path / "out", n_jobs=2, progress=False)
    assert table.set_index("train.dataset")["status"].to_dict() == {"digits": "done", "fashion-mnist": "failed"}
    assert "cannot read IDX file" in table.set_index("train.dataset").loc["fashion-mnist", "error"]
    assert (tmp_path / "out" / table["run_dir"].iloc[1] / paths.ERROR).is_file()


def test_selection_uses_validation_only():
    table = pd.DataFrame({"qlearning.alpha": [0.1, 0.1, 0.5, 0.5], "seed": [0, 1, 0, 1], "status": "done",
                          "val_accuracy": [0.90, 0.92, 0.95, 0.93], "test_accuracy": [0.99, 0.99, 0.80, 0.80]})
    assert select(table, ["qlearning.alpha"]) == {"qlearning.alpha": 0.5}
    # a combination with a failed seed cannot be chosen
    table.loc[2, "status"] = "failed"
    assert select(table, ["qlearning.alpha"]) == {"qlearning.alpha": 0.1}


def test_dask_local_cluster_runs_a_tiny_grid(tmp_path, tiny_grid):
    distributed = pytest.importorskip("distributed")
    grid = load_grid(str(tiny_grid({"qlearning.alpha": [0.1, 0.5]}, seeds=(0,))))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cluster:
        table = search(grid, tmp_path / "out", n_jobs=2, backend="dask", scheduler=cluster.scheduler_address,
                       progress=False)
    assert (table["status"] == "done").all() and len(table) == 2


def test_report_numbers_equal_the_runs_tables(tiny_comparison):
    out = tiny_comparison
    report = out / paths.REPORT
    frame = pd.read_csv(out / paths.COMPARISON_CSV)
    assert set(frame["method"]) == {"qlearning", "qlearning-free", "lt", "global", "reinit"}
    assert (out / paths.GRID_CSV).is_file() and "test_accuracy" not in pd.read_csv(out / paths.GRID_CSV).columns
    for (method, _), g in frame.groupby(["method", "seed"]):
        if method == "reinit":
            continue
        rounds = pd.read_csv(out / g["run_dir"].iloc[0] / paths.ROUNDS)
        assert np.allclose(g.sort_values("round")["test_accuracy"].to_numpy(), rounds["test_accuracy"].to_numpy())
    text = report.read_text()
    lt2 = frame[(frame["method"] == "lt") & (frame["round"] == 2)]["test_accuracy"] * 100
    expected = f"{lt2.mean():.2f} ± {lt2.std(ddof=1):.2f}"
    row = next(line for line in text.splitlines() if re.match(r"\| 2 \|", line))
    assert expected in row
    # reaching the target counts the proxy's retraining steps on top of training (round 0 included)
    section = text[text.index("## Reaching the target"):].split("\n## ")[0]
    target = frame[frame["method"] == "lt"]["weights_remaining"].min()
    checked = 0
    for method in ("lt", "qlearning", "qlearning-free"):
        g = frame[frame["method"] == method].sort_values("round")
        hits = g[g["weights_remaining"] <= target + 1e-9].groupby("seed").head(1)
        if len(hits) == 0:
            continue
        line = next(line for line in section.splitlines() if line.startswith(f"| {method} |"))
        total = (hits["train_iterations"] + hits["proxy_iterations"]).astype(float)
        assert mean_std(total, 1, 0) in line
        # budget mode's committed reward retrains nothing; free mode's rewind proxy does
        assert (hits["proxy_iterations"] > 0).all() == (method == "qlearning-free")
        checked += 1
    assert checked >= 2
    assert all((out / paths.FIGURES / f"{n}.png").is_file() for n in ("accuracy_vs_remaining", "grid_heatmaps"))
    # every method against lt: the budget-mode planner's mean paired difference, free mode without numbers
    section = text[text.index("## Every method against lt"):].split("\n## ")[0]
    q, lt = (frame[(frame["method"] == m) & (frame["round"] > 0)].set_index(["round", "seed"])["test_accuracy"]
             for m in ("qlearning", "lt"))
    line = next(line for line in section.splitlines() if line.startswith("| qlearning |"))
    assert f"{(q - lt).groupby('round').mean().mean() * 100:+.2f}" in line
    assert "other sparsities" in next(line for line in section.splitlines() if line.startswith("| qlearning-free |"))
    # the convergence table counts what each Q-learning run logged
    section = text[text.index("## Q-learning convergence"):]
    for run_dir in frame[frame["method"].isin(["qlearning", "qlearning-free"])]["run_dir"].unique():
        log = pd.read_csv(out / run_dir / paths.QLEARNING_ROUNDS)
        seed = int(frame[frame["run_dir"] == run_dir]["seed"].iloc[0])
        stable = f"{int(log['plan_stable_last_10pct'].sum())}/{len(log)}"
        greedy = f"{int(log['greedy_is_optimal'].sum())}/{len(log)}"
        committed = f"{int(log['committed_is_optimal'].sum())}/{len(log)}"
        moved = f"{int((log['climb_moves'] > 0).sum())}/{len(log)}"
        # the climb never leaves an optimal greedy plan, but the anchor may commit lt's allocation instead
        kept_lt = log["anchor_committed"].astype(bool) if "anchor_committed" in log else False
        assert (log["committed_is_optimal"] | ~log["greedy_is_optimal"] | kept_lt).all()
        assert any(line.startswith("| qlearning (")
                   and f"| {seed} | {stable} | {greedy} | {committed} | {moved} |" in line
                   for line in section.splitlines())


def test_report_cells_name_the_seeds_when_runs_ended_early():
    assert seed_cell(pd.Series([0.9, 0.8, 0.85]), 3) == "85.00 ± 5.00"
    assert seed_cell(pd.Series([0.9, 0.8]), 3) == "85.00 ± 7.07 (n=2)"
    assert seed_cell(pd.Series([], dtype=float), 3) == "–"


def test_the_free_mode_target_is_where_an_lt_run_ends(tmp_path, tiny):
    from gridsearch.compare import lt_target
    from mdp_prune.experiments.imp import run_imp

    config = tiny(rounds=3, **{"prune.planner": "qlearning"})
    lt = run_imp(config.replace(**{"prune.planner": "lt"}), tmp_path, progress=False)
    assert lt_target(config) == pytest.approx(pd.read_csv(lt / paths.ROUNDS)["weights_remaining"].iloc[-1], rel=1e-9)


def _frame(rows):
    return pd.DataFrame(rows, columns=["method", "seed", "round", "test_accuracy", "weights_remaining"])


def test_chance_below_one_sd_is_what_a_method_drawn_like_the_reference_shows():
    from gridsearch.stats import chance_below_one_sd

    rng = np.random.default_rng(0)
    for method_seeds, reference_seeds in [(3, 3), (5, 3), (3, 10)]:
        method = rng.normal(size=(200_000, method_seeds)).mean(axis=1)
        reference = rng.normal(size=(200_000, reference_seeds))
        simulated = np.mean(method - reference.mean(axis=1) < -reference.std(axis=1, ddof=1))
        assert chance_below_one_sd(method_seeds, reference_seeds) == pytest.approx(simulated, abs=0.003)
    assert chance_below_one_sd(3, 3) == pytest.approx(0.173, abs=0.001)
    assert np.isnan(chance_below_one_sd(3, 1))  # one reference seed has no sd


def test_against_reference_pairs_by_seed_and_names_the_rounds_below_one_sd():
    from gridsearch.stats import against_reference, chance_below_one_sd

    rows = []
    for seed, (lt1, lt2) in enumerate([(0.90, 0.80), (0.92, 0.81), (0.94, 0.82)]):
        rows += [("lt", seed, 0, 0.95, 1.0), ("lt", seed, 1, lt1, 0.8), ("lt", seed, 2, lt2, 0.64)]
        # "a" is 0.01 above lt at round 1 on every seed and 0.02 below at round 2 (lt's sd there: 0.01)
        rows += [("a", seed, 1, lt1 + 0.01, 0.8), ("a", seed, 2, lt2 - 0.02, 0.64)]
        rows += [("free", seed, 1, lt1, 0.5), ("free", seed, 2, lt2, 0.25)]
        rows += [("global", seed, 1, lt1, 0.8), ("global", seed, 2, lt2, 0.6)]  # 6 % off lt's ladder: matched
        rows += [("b", seed, 1, lt1 + 0.01 * (seed + 1), 0.8), ("b", seed, 2, lt2 + 0.01 * (seed + 1), 0.64)]
    table = against_reference(_frame(rows), "lt").set_index("method")
    # "b" is +0.01, +0.02, +0.03 above lt by seed: the interval over seeds spans those, all above 0
    assert table.loc["b", "mean_difference"] == pytest.approx(0.02)
    assert 0.01 - 1e-12 <= table.loc["b", "mean_difference_low"] < 0.02 < table.loc["b", "mean_difference_high"]
    assert table.loc["b", "mean_difference_high"] <= 0.03 + 1e-12 and table.loc["b", "p_mean_difference_above_0"] == 1
    assert np.isnan(table.loc["a", "mean_difference_low"])  # the same difference on every seed: no interval
    assert table.loc["a", "rounds"] == 2 and table.loc["a", "seeds"] == 3
    assert table.loc["a", "mean_difference"] == pytest.approx(-0.005)
    assert table.loc["a", "by_seed"] == pytest.approx({0: -0.005, 1: -0.005, 2: -0.005})
    [(r, d, sd)] = table.loc["a", "rounds_below"]
    assert (r, d, sd) == (2, pytest.approx(-0.02), pytest.approx(0.01))
    assert table.loc["a", "worst_round"] == 2
    # two rounds, 3 seeds on each side: 17 % each by chance alone
    assert table.loc["a", "rounds_below_by_chance"] == pytest.approx(2 * chance_below_one_sd(3, 3))
    assert table.loc["a", "p_none_below_by_chance"] == pytest.approx((1 - chance_below_one_sd(3, 3)) ** 2)
    assert not table.loc["free", "matched sparsity"]  # free mode's round r is not lt's round r
    assert table.loc["free", "sparsity_gap"] == pytest.approx(1 - 0.25 / 0.64)
    assert table.loc["global", "matched sparsity"] and table.loc["global", "mean_difference"] == pytest.approx(0)
    with pytest.raises(ValueError, match="reference"):
        against_reference(_frame(rows), "lamp")
    with pytest.raises(ValueError, match="more than one run for a seed"):  # two configurations of one method
        against_reference(_frame(rows + [("a", 0, 1, 0.5, 0.8)]), "lt")


def test_summarize_against_prints_every_method_paired_with_lt(tmp_path, tiny, capsys):
    from gridsearch.cli import main
    from mdp_prune.experiments.imp import run_imp

    runs = [run_imp(tiny(rounds=2, **{"prune.planner": p, "train.seed": s}), tmp_path, progress=False)
            for p in ("lt", "global") for s in (0, 1)]
    assert main(["summarize", *map(str, runs), "--against", "lt"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("| global |"))
    lt = [pd.read_csv(r / paths.ROUNDS).set_index("round")["test_accuracy"] for r in runs[:2]]
    gl = [pd.read_csv(r / paths.ROUNDS).set_index("round")["test_accuracy"] for r in runs[2:]]
    mean = np.mean([(g - t).loc[[1, 2]].mean() for g, t in zip(gl, lt, strict=True)]) * 100
    assert line.startswith("| global | 2 | 2 | ") and f" | {mean:+.2f} | " in line
    # --on validation pairs the validation accuracies instead, and says so in its header
    assert main(["summarize", *map(str, runs), "--against", "lt", "--on", "validation"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("| global |"))
    lt, gl = ([pd.read_csv(r / paths.ROUNDS).set_index("round")["val_accuracy"] for r in part]
              for part in (runs[:2], runs[2:]))
    mean = np.mean([(g - t).loc[[1, 2]].mean() for g, t in zip(gl, lt, strict=True)]) * 100
    assert f" | {mean:+.2f} | " in line and "(method − lt), validation pp" in out
    assert main(["summarize", *map(str, runs), "--on", "validation"]) == 2
    assert "give --against too" in capsys.readouterr().err
    assert main(["summarize", *map(str, runs[2:]), "--against", "lt"]) == 2
    assert "no run of that method" in capsys.readouterr().err
    again = run_imp(tiny(rounds=2, **{"prune.planner": "global", "train.seed": 0, "prune.prune_global": 0.3}),
                    tmp_path, progress=False)
    assert main(["summarize", *map(str, runs), str(again), "--against", "lt"]) == 2
    assert "global has more than one run for a seed" in capsys.readouterr().err


def test_two_batches_of_one_method_in_two_folders_are_two_rows_not_twice_the_seeds(tmp_path, tiny, capsys):
    from gridsearch.cli import main
    from mdp_prune.experiments.imp import run_imp

    first = [run_imp(tiny(rounds=2, **{"train.seed": s}), tmp_path / "a", progress=False) for s in (0, 1)]
    second = [run_imp(tiny(rounds=2, **{"train.seed": s, "train.lr": 0.05}), tmp_path / "b", progress=False)
              for s in (0, 1)]
    assert main(["summarize", *map(str, first + second), "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert f"| lt @ {tmp_path / 'a'} | 2 | 2 |" in out and f"| lt @ {tmp_path / 'b'} | 2 | 2 |" in out
    assert main(["summarize", *map(str, first + second), "--against", f"lt @ {tmp_path / 'a'}"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(f"| lt @ {tmp_path / 'b'}"))
    a, b = ([pd.read_csv(r / paths.ROUNDS).set_index("round")["test_accuracy"] for r in batch]
            for batch in (first, second))
    mean = np.mean([(y - x).loc[[1, 2]].mean() for x, y in zip(a, b, strict=True)]) * 100
    assert f" | {mean:+.2f} | " in line
    assert main(["summarize", *map(str, first + second), "--against", "lt"]) == 2  # which of the two?
    assert f"lt @ {tmp_path / 'a'}" in capsys.readouterr().err
    # another folder with other seeds of lt adds seeds, not a method
    other = run_imp(tiny(rounds=2, **{"train.seed": 2}), tmp_path / "c", progress=False)
    assert main(["summarize", *map(str, first), str(other), "--rounds", "2"]) == 0
    assert "| lt | 2 | 3 |" in capsys.readouterr().out
    # in one folder, two configurations of one method stay one method, and the table says it holds more runs
    extra = run_imp(tiny(rounds=2, **{"train.seed": 0, "train.lr": 0.05}), tmp_path / "a", progress=False)
    assert main(["summarize", *map(str, first), str(extra), "--rounds", "2"]) == 0
    assert "| lt | 2 | 2 | 3 |" in capsys.readouterr().out


def test_method_names_tell_budget_free_and_warm_started_planners_apart(tiny):
    from gridsearch.summarize import method_name

    names = [method_name(tiny(**{"prune.planner": "qlearning", "qlearning.budget": budget}).replace(**extra))
             for budget in ("lt", "free") for extra in ({}, {"qlearning.init_qtable": "results/qlearning_0"})]
    assert names == ["qlearning (lt)", "qlearning (lt, warm start)", "qlearning (free)", "qlearning (free, warm start)"]
    rewards = [method_name(tiny(**{"prune.planner": "qlearning", "qlearning.budget": budget,
                                    "qlearning.budget_reward": reward, "qlearning.proxy": "finetune"}))
               for budget in ("lt", "free") for reward in ("committed", "retrained")]
    assert rewards == ["qlearning (lt)", "qlearning (lt, retrained)", "qlearning (free)", "qlearning (free)"]
    unanchored = tiny(**{"prune.planner": "qlearning", "qlearning.budget": "lt", "qlearning.anchor_z": 0.0})
    assert method_name(unanchored) == "qlearning (lt, anchor z 0)"
    free = tiny(**{"prune.planner": "qlearning", "qlearning.anchor_z": 0.0})
    assert method_name(free) == "qlearning (free)"  # free mode never reads the anchor
    erk = {"prune.planner": "qlearning", "qlearning.anchor": "erk"}
    assert method_name(tiny(**erk, **{"qlearning.budget": "lt"})) == "qlearning (lt, anchor erk)"
    assert method_name(tiny(**erk, **{"qlearning.budget": "lt", "qlearning.anchor_z": 0.0})) == (
        "qlearning (lt, anchor z 0)")  # no anchor at all
    assert method_name(tiny()) == "lt"
    # a held-out proxy split changes every planner's validation figures: never pooled with the shared split
    held = {"train.proxy_holdout": 40, "qlearning.proxy_examples": 40}
    assert method_name(tiny(**held)) == "lt (holdout 40)"
    assert method_name(tiny(**held, **erk, **{"qlearning.budget": "lt"})) == "qlearning (lt, anchor erk, holdout 40)"


def test_summarize_reach_counts_rounds_and_iterations_to_where_lt_ends(tmp_path, tiny, capsys):
    from gridsearch.cli import main
    from mdp_prune.experiments.controls import run_control
    from mdp_prune.experiments.imp import run_imp

    lt = [run_imp(tiny(rounds=3, **{"train.seed": s}), tmp_path, progress=False) for s in (0, 1)]
    fast = [run_imp(tiny(rounds=2, **{"train.seed": s, "prune.planner": "global", "prune.prune_global": 0.6}),
                    tmp_path, progress=False) for s in (0, 1)]
    run_control(lt[0], "reinit", [1, 2], progress=False)  # retrains single tickets: no row of its own here
    assert main(["summarize", *map(str, lt + fast), "--reach", "lt"]) == 0
    out = capsys.readouterr().out
    assert "reinit" not in out
    target = max(pd.read_csv(r / paths.ROUNDS)["weights_remaining"].iloc[-1] for r in lt)
    assert f"target: {target * 100:.2f} %" in out
    hits = pd.concat([pd.read_csv(r / paths.ROUNDS).query(f"weights_remaining <= {target + 1e-9}").head(1)
                      for r in fast])
    line = next(line for line in out.splitlines() if line.startswith("| global |"))
    assert line.startswith(f"| global | {hits['round'].mean():.1f} ± ") and line.endswith("| 0 |")
    assert mean_std(hits["train_iterations"] + hits["proxy_iterations"], 1, 0) in line
    assert mean_std(hits["test_accuracy"]) in line
    assert main(["summarize", *map(str, lt + fast), "--reach", "0.0001"]) == 0  # nobody gets there
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("| global |")).endswith("| 2 |")
    assert lines[1].startswith("| method | rounds | weights remaining % |")  # columns as always
    for bad, message in (("1.5", "--reach must be a fraction"), ("lamp", "no run of that method")):
        assert main(["summarize", *map(str, lt), "--reach", bad]) == 2
        assert message in capsys.readouterr().err
    assert main(["summarize", *map(str, lt), "--reach", "lt", "--convergence"]) == 2


def test_summarize_says_when_its_runs_come_from_several_numerical_environments(tmp_path, tiny, capsys):
    from gridsearch.cli import main
    from mdp_prune.experiments.imp import run_imp

    runs = [run_imp(tiny(rounds=1, **{"train.seed": s}), tmp_path, progress=False) for s in (0, 1)]
    assert main(["summarize", *map(str, runs)]) == 0
    assert "numerical environments" not in capsys.readouterr().err
    env = pd.read_csv(runs[1] / paths.ENVIRONMENT)
    env.assign(threads=env["threads"] + 7).to_csv(runs[1] / paths.ENVIRONMENT, index=False)
    assert main(["summarize", *map(str, runs)]) == 0
    captured = capsys.readouterr()
    assert "| lt |" in captured.out and "numerical environments" not in captured.out
    assert "note: the runs were computed in 2 numerical environments" in captured.err
    assert f"threads {env['threads'].iloc[0] + 7}" in captured.err
