import json

from mdp_prune.experiments import bench
from mdp_prune.store import paths


def test_bench_writes_both_ratios(tmp_path, capsys):
    assert bench.main(["--dataset", "digits", "--iterations", "40", "--repeats", "1", "--threads", "1",
                       "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / paths.BENCH_RESULTS).read_text())
    loop, planner = results["masked_loop"], results["planner"]
    assert results["threads"] == 1
    assert loop["ratio_engine_to_bare"] == loop["engine_iterations_per_s"] / loop["bare_iterations_per_s"] > 0
    assert planner["episodes"] == 600 and planner["planner_seconds_per_round"] > 0
    # the planner's share is measured against a full preset round (50K iterations), not the short timing run
    assert planner["round_training_seconds"] == 50_000 / loop["engine_iterations_per_s"]
    assert "ratio" in capsys.readouterr().out
