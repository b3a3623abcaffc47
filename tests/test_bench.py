import json

import pytest

from mdp_prune.experiments import bench
from mdp_prune.store import paths


def test_bench_reports_what_it_timed(tmp_path, monkeypatch, capsys):
    """On a fake clock the bare loop takes 2 s per timing, the engine 4 s and each planner round 3 s: the figures
    written must be those timings (20 and 10 it/s for 40 iterations; 3 s per round against 50K iterations of the
    lenet preset at 10 it/s), whatever the machine's real speed."""
    now = [0.0]
    monkeypatch.setattr(bench, "_clock", lambda: now[0])

    def taking(seconds, fn):
        def timed(*args, **kwargs):
            now[0] += seconds
            return fn(*args, **kwargs)
        return timed

    monkeypatch.setattr(bench, "_bare_loop", taking(2.0, bench._bare_loop))
    monkeypatch.setattr(bench, "train", taking(4.0, bench.train))
    real_make_planner = bench.make_planner

    def make_planner(config):
        planner = real_make_planner(config)
        planner.propose = taking(3.0, planner.propose)
        return planner

    monkeypatch.setattr(bench, "make_planner", make_planner)
    assert bench.main(["--dataset", "digits", "--iterations", "40", "--repeats", "3", "--threads", "1",
                       "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / paths.BENCH_RESULTS).read_text())
    loop, planner = results["masked_loop"], results["planner"]["lenet"]
    assert results["threads"] == 1
    assert (loop["bare_iterations_per_s"], loop["engine_iterations_per_s"], loop["ratio_engine_to_bare"]) == (
        20.0, 10.0, 0.5)
    assert planner["episodes"] == 600 and planner["preset"] == "lenet" and planner["layers"] == 3
    assert (planner["planner_seconds_per_round"], planner["round_training_seconds"]) == (3.0, 5000.0)
    assert planner["ratio_planner_to_training"] == 3.0 / 5000.0
    out = capsys.readouterr().out
    assert "engine 10 it/s, bare PyTorch 20 it/s, ratio 0.500" in out and "3.00 s per round" in out


def test_bench_times_a_conv_preset_at_its_own_warm_up_speed(tmp_path, monkeypatch):
    """conv2's round is timed at the speed of its own warm-up steps, not LeNet's: 300 steps in a fake 4 s, less
    the warm-up's two validation passes of 0.5 s each, is 100 it/s."""
    now = [0.0]
    monkeypatch.setattr(bench, "_clock", lambda: now[0])
    monkeypatch.setattr(bench, "bench_masked_loop", lambda *a: {"dataset": "digits", "engine_iterations_per_s": 1.0,
                                                                 "bare_iterations_per_s": 1.0,
                                                                 "ratio_engine_to_bare": 1.0})

    def train(*args, **kwargs):
        now[0] += 4.0
        return real_train(*args, **kwargs)

    real_train = bench.train
    monkeypatch.setattr(bench, "train", train)
    real_evaluate = bench.evaluate

    def evaluate(*args, **kwargs):
        now[0] += 0.5
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(bench, "evaluate", evaluate)
    real_make_planner = bench.make_planner

    def make_planner(config):  # a fake round of 3 s that prunes nothing: this test is about the arithmetic
        planner = real_make_planner(config)

        def propose(ctx):
            now[0] += 3.0
            return {n: 0.0 for n in ctx.masks}

        planner.propose = propose
        return planner

    monkeypatch.setattr(bench, "make_planner", make_planner)
    assert bench.main(["--dataset", "digits", "--planner-presets", "conv2", "--planner-rounds", "1",
                       "--threads", "1", "--out", str(tmp_path)]) == 0
    planner = json.loads((tmp_path / paths.BENCH_RESULTS).read_text())["planner"]
    assert list(planner) == ["conv2"] and planner["conv2"]["layers"] == 5
    assert planner["conv2"]["round_training_seconds"] == 20_000 / 100.0
    assert planner["conv2"]["ratio_planner_to_training"] == 3.0 / (20_000 / 100.0)


def test_bench_rejects_an_unknown_preset_with_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--planner-presets", "lenet,conv9", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "unknown preset conv9" in capsys.readouterr().err
