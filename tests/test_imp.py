import pandas as pd
import pytest
import torch

from mdp_prune.engine.models import prunable_weights
from mdp_prune.engine.training import train
from mdp_prune.experiments.controls import run_control
from mdp_prune.experiments.imp import Setup, apply_ticket, run_imp
from mdp_prune.store import io, paths


def _rounds(run):
    # `seconds` is wall-clock time: the one column that cannot repeat between runs.
    return pd.read_csv(run / paths.ROUNDS).drop(columns="seconds")


def test_lt_remaining_follows_the_layerwise_rates(tmp_path, tiny):
    run = run_imp(tiny(rounds=4), tmp_path, progress=False)
    rows = pd.read_csv(run / paths.ROUNDS)
    assert list(rows.columns[:8]) == ["round", "weights_remaining", "test_accuracy", "val_accuracy",
                                      "early_stop_iteration", "train_iterations", "proxy_iterations", "seconds"]
    sizes = {"fc1": 64 * 32, "fc2": 32 * 16, "fc3": 16 * 10}
    for _, row in rows.iterrows():
        r = int(row["round"])
        for layer, rate in (("fc1", 0.2), ("fc2", 0.2), ("fc3", 0.1)):
            assert abs(row[f"remaining:{layer}"] - (1 - rate) ** r) <= r / sizes[layer]
        kept = sum(row[f"remaining:{n}"] * s for n, s in sizes.items())
        assert row["weights_remaining"] == pytest.approx(kept / sum(sizes.values()))
    assert rows["train_iterations"].tolist() == [40 * (r + 1) for r in range(5)]
    assert rows["weights_remaining"].is_monotonic_decreasing


@pytest.mark.parametrize("rewind", [0, 10])
def test_each_round_starts_from_mask_times_rewind_weights(tmp_path, tiny, rewind):
    seen = []

    def check(round_, model, masks):
        rewind_state = io.load_torch(run_dir / paths.REWIND)
        for name, w in prunable_weights(model).items():
            assert torch.equal(w, rewind_state[f"{name}.weight"] * masks[name])
        for name, p in model.state_dict().items():
            if name.endswith("bias"):
                assert torch.equal(p, rewind_state[name])
        seen.append(round_)

    config = tiny(**{"train.rewind_iteration": rewind})
    run_dir = paths.run_dir(tmp_path, config)
    run_imp(config, tmp_path, progress=False, on_round_start=check)
    assert seen == [1, 2, 3]
    dense = io.load_torch(paths.dense_dir(tmp_path, config.train) / paths.DENSE)
    assert torch.equal(dense["init"]["fc1.weight"], dense["rewind"]["fc1.weight"]) == (rewind == 0)


def test_pruned_weights_stay_exactly_zero_through_training(tiny):
    config = tiny(**{"train.train_iterations": 30})
    setup = Setup(config)
    model = setup.model()
    masks = {n: (torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) > 0.5).float()
             for n, w in prunable_weights(model).items()}
    checked = []

    def snapshot(m):
        for n, w in prunable_weights(m).items():
            assert torch.all(w[masks[n] == 0] == 0)
        checked.append(True)

    for stop in (1, 17, 30):
        train(model, masks, setup.splits, config.train, setup.order, 0, snapshot_at=stop, on_snapshot=snapshot)
    assert len(checked) == 3
    for n, w in prunable_weights(model).items():
        assert torch.all(w[masks[n] == 0] == 0) and torch.count_nonzero(w[masks[n] == 1]) > 0


def test_same_seed_same_results_and_other_seed_differs(tmp_path, tiny):
    a = run_imp(tiny(), tmp_path / "a", progress=False)
    b = run_imp(tiny(), tmp_path / "b", progress=False)
    c = run_imp(tiny(**{"train.seed": 1}), tmp_path / "c", progress=False)
    pd.testing.assert_frame_equal(_rounds(a), _rounds(b), check_exact=True)
    assert (a / paths.CURVES).read_bytes() == (b / paths.CURVES).read_bytes()
    assert not _rounds(a).equals(_rounds(c))


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, tiny):
    full = run_imp(tiny(rounds=4), tmp_path / "full", progress=False)

    def kill_in_round_3(round_, model, masks):
        if round_ == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_imp(tiny(rounds=4), tmp_path / "resumed", progress=False, on_round_start=kill_in_round_3)
    partial = paths.run_dir(tmp_path / "resumed", tiny(rounds=4))
    assert len(pd.read_csv(partial / paths.ROUNDS)) == 3  # rounds 0-2 committed
    run_imp(tiny(rounds=4), tmp_path / "resumed", progress=False)
    pd.testing.assert_frame_equal(_rounds(full), _rounds(partial), check_exact=True)
    assert (full / paths.CURVES).read_bytes() == (partial / paths.CURVES).read_bytes()


def test_each_command_records_its_numerical_environment_and_a_changed_one_is_said(tmp_path, tiny, capsys):
    from mdp_prune.engine import numerics

    def kill_in_round_3(round_, model, masks):
        if round_ == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_imp(tiny(rounds=4), tmp_path, progress=False, on_round_start=kill_in_round_3)
    run = paths.run_dir(tmp_path, tiny(rounds=4))
    dense = pd.read_csv(paths.dense_dir(tmp_path, tiny().train) / paths.ENVIRONMENT)
    first = pd.read_csv(run / paths.ENVIRONMENT)
    assert first["first_round"].tolist() == [0] and dense["first_round"].tolist() == [0]
    here = numerics.environment(torch.device("cpu"))
    assert first.iloc[0][list(numerics.NUMERIC_FIELDS)].astype(str).tolist() == [str(here[f]) for f in
                                                                                  numerics.NUMERIC_FIELDS]
    assert "numerical environment" not in capsys.readouterr().err  # same process, same environment

    # As if the first command had run on a machine whose torch and CPU kernels differ: the resumption says so, and
    # resumes; the record keeps the old version as written ("2.10", which pandas alone would read as 2.1).
    io.write_csv(run / paths.ENVIRONMENT, first.assign(torch="2.10", cpu_capability="OTHER"))
    run_imp(tiny(rounds=4), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert (f"resumes at round 3 in another numerical environment (torch: 2.10 -> {here['torch']}; "
            f"cpu_capability: OTHER -> {here['cpu_capability']})") in err
    assert pd.read_csv(run / paths.ENVIRONMENT)["first_round"].tolist() == [0, 3]
    assert io.read_csv(run / paths.ENVIRONMENT, as_text=True)["torch"].tolist() == ["2.10", here["torch"]]
    assert len(pd.read_csv(run / paths.ROUNDS)) == 5
    run_imp(tiny(rounds=4), tmp_path, progress=False)  # nothing left to train: nothing recorded
    assert len(pd.read_csv(run / paths.ENVIRONMENT)) == 2


def test_a_truncated_run_redoes_its_rounds_exactly(tmp_path, tiny, capsys):
    import shutil

    from mdp_prune.cli import main

    config = tiny(rounds=4, **{"prune.planner": "qlearning", "qlearning.episodes": 20})
    full = run_imp(config, tmp_path / "full", progress=False)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    cut = tmp_path / "cut" / full.name
    assert main(["truncate", str(cut), "--round", "9"]) == 2
    assert "--round must be between 1 and the last finished round (4)" in capsys.readouterr().err
    assert main(["truncate", str(cut), "--round", "2"]) == 0
    assert list(pd.read_csv(cut / paths.ROUNDS)["round"]) == [0, 1]
    assert pd.read_csv(cut / paths.QLEARNING_ROUNDS)["round"].max() == 1
    assert not paths.masks_file(cut, 3).exists() and paths.masks_file(cut, 2).exists()
    assert io.load_torch(cut / paths.TICKET)["round"] == 1
    run_imp(config, tmp_path / "cut", progress=False)
    pd.testing.assert_frame_equal(_rounds(full), _rounds(cut), check_exact=True)
    for table in (paths.CURVES, paths.QLEARNING_LOG):
        assert (full / table).read_bytes() == (cut / table).read_bytes()
    for r in range(1, 6):
        assert torch.equal(torch.load(paths.masks_file(full, r))["fc1"], torch.load(paths.masks_file(cut, r))["fc1"])


def test_a_longer_run_extends_a_shorter_one(tmp_path, tiny):
    short = run_imp(tiny(rounds=2), tmp_path, progress=False)
    long = run_imp(tiny(rounds=3), tmp_path, progress=False)
    assert short == long and len(pd.read_csv(long / paths.ROUNDS)) == 4


def test_only_qlearning_runs_are_named_by_their_qlearning_settings(tiny):
    lt = tiny(**{"prune.planner": "lt"})
    q = tiny(**{"prune.planner": "qlearning"})
    assert lt.replace(**{"qlearning.alpha": 0.7}).hash() == lt.hash()
    assert q.replace(**{"qlearning.alpha": 0.7}).hash() != q.hash()
    assert lt.replace(**{"train.lr": 0.5}).hash() != lt.hash()


@pytest.mark.parametrize("planner", ["global", "random", "lamp", "erk"])
def test_other_planners_prune_and_train(tmp_path, tiny, planner):
    run = run_imp(tiny(**{"prune.planner": planner}, rounds=2), tmp_path, progress=False)
    rows = pd.read_csv(run / paths.ROUNDS)
    assert rows["weights_remaining"].iloc[-1] < 1.0
    if planner in ("global", "lamp", "erk"):  # 20 % of the remaining weights overall per round
        assert rows["weights_remaining"].iloc[-1] == pytest.approx(0.8**2, abs=0.01)


def test_ticket_export_loads_through_torch_prune(tmp_path, tiny):
    run = run_imp(tiny(), tmp_path, progress=False)
    ticket = io.load_torch(run / paths.TICKET)
    assert ticket["round"] == 3
    model = apply_ticket(Setup(tiny()).model(seed=123), run / paths.TICKET)
    masks = io.load_torch(paths.masks_file(run, 3))
    rewind = io.load_torch(run / paths.REWIND)
    for name, module in model.named_modules():
        if name in masks:
            assert torch.equal(module.weight_mask, masks[name])
            assert torch.equal(module.weight, rewind[f"{name}.weight"] * masks[name])


def test_controls_train_at_the_tickets_densities(tmp_path, tiny):
    run = run_imp(tiny(), tmp_path, progress=False)
    ticket = pd.read_csv(run / paths.ROUNDS).set_index("round")
    for kind in ("reinit", "random-prune"):
        out = run_control(run, kind, [1, 3], progress=False)
        rows = pd.read_csv(out).set_index("round")
        assert list(rows.index) == [1, 3]
        for r in (1, 3):
            assert rows.loc[r, "remaining:fc1"] == pytest.approx(ticket.loc[r, "remaining:fc1"], abs=1e-3)
        again = run_control(run, kind, [1, 3], progress=False)  # finished rounds are skipped
        assert len(pd.read_csv(again)) == 2


def test_a_plan_that_prunes_nothing_ends_the_run(tmp_path, tiny):
    config = tiny(**{"prune.prune_fc": 0.2, "prune.prune_output": 0.0}, rounds=2)
    run = run_imp(config, tmp_path, progress=False)
    assert len(pd.read_csv(run / paths.ROUNDS)) == 3
    frozen = tiny(**{"prune.prune_fc": 0.0, "prune.prune_output": 0.0}, rounds=4)
    run = run_imp(frozen, tmp_path, progress=False)
    assert len(pd.read_csv(run / paths.ROUNDS)) == 1  # round 0's plan pruned nothing
    run_imp(frozen.replace(rounds=6), tmp_path, progress=False)
    assert len(pd.read_csv(run / paths.ROUNDS)) == 1


def test_a_kill_just_before_the_commit_leaves_no_duplicate_rows(tmp_path, tiny, monkeypatch):
    full = run_imp(tiny(), tmp_path / "full", progress=False)
    real_append = io.append_csv

    def crash_on_round_2(path, rows, **kwargs):
        if path.name == paths.ROUNDS and rows[0]["round"] == 2:
            raise KeyboardInterrupt
        real_append(path, rows, **kwargs)

    monkeypatch.setattr(io, "append_csv", crash_on_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_imp(tiny(), tmp_path / "resumed", progress=False)
    monkeypatch.setattr(io, "append_csv", real_append)
    resumed = run_imp(tiny(), tmp_path / "resumed", progress=False)
    for name in (paths.CURVES, paths.PLANS):
        a = pd.read_csv(full / name).drop(columns=["train_seconds", "plan_seconds"], errors="ignore")
        b = pd.read_csv(resumed / name).drop(columns=["train_seconds", "plan_seconds"], errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(_rounds(full), _rounds(resumed), check_exact=True)


def test_random_allocation_never_draws_an_empty_plan(tmp_path, tiny):
    # Seed 1's first draw for round 4 (3 layers, 6 actions) prunes nothing, which used to end the run there.
    run = run_imp(tiny(**{"prune.planner": "random", "train.seed": 1}, rounds=5), tmp_path, progress=False)
    plans = pd.read_csv(run / paths.PLANS)
    assert list(plans["round"]) == [0, 1, 2, 3, 4, 5]
    assert (plans.filter(like="fraction:").sum(axis=1) > 0).all()
