import json

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
    loop, planner = results["masked_loop"], results["planner"]
    assert results["threads"] == 1
    assert (loop["bare_iterations_per_s"], loop["engine_iterations_per_s"], loop["ratio_engine_to_bare"]) == (
        20.0, 10.0, 0.5)
    assert planner["episodes"] == 600 and planner["preset"] == "lenet"
    assert (planner["planner_seconds_per_round"], planner["round_training_seconds"]) == (3.0, 5000.0)
    assert planner["ratio_planner_to_training"] == 3.0 / 5000.0
    out = capsys.readouterr().out
    assert "engine 10 it/s, bare PyTorch 20 it/s, ratio 0.500" in out and "3.00 s per round" in out
