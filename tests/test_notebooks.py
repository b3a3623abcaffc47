"""The notebooks run headless against a real (tiny) comparison folder, and the shared plots are honest."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gridsearch.figures import grid_heatmaps
from gridsearch.results import find_run, load_comparison
from mdp_prune import viz
from mdp_prune.store import paths

ROOT = Path(__file__).resolve().parents[1]
# notebooks/run.py is a script, not a package module: load it from its file.
_spec = importlib.util.spec_from_file_location("notebook_runner", ROOT / "notebooks" / "run.py")
notebook_runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_runner)


def test_every_notebook_executes_and_writes_its_figures(tiny_comparison, tmp_path):
    assert notebook_runner.main(["--results", str(tiny_comparison), "--out", str(tmp_path)]) == 0
    for name in notebook_runner.NOTEBOOKS:
        assert (tmp_path / f"{name}.html").stat().st_size > 10_000
        executed = json.loads((tmp_path / f"{name}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
    pngs = {p.stem for p in (tmp_path / paths.FIGURES).rglob("*.png")}
    assert {"q_convergence", "qtable", "coverage", "greedy_plans", "accuracy_vs_remaining",
            "early_stop_vs_remaining", "training_curves_lt", "grid_heatmaps", "grid_effects"} <= pngs


def test_a_missing_results_folder_is_a_one_line_error(tmp_path, capsys):
    assert notebook_runner.main(["--results", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_committed_notebooks_have_no_outputs():
    for name in notebook_runner.NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
        assert any("parameters" in c["metadata"].get("tags", []) for c in code)


def test_accuracy_plot_is_log_scaled_and_plots_the_seed_means(tiny_comparison):
    frame = pd.read_csv(tiny_comparison / paths.COMPARISON_CSV)
    fig = viz.accuracy_vs_remaining(frame, dense_accuracy=0.9)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    expected = frame.groupby(["method", "round"])["test_accuracy"].mean()
    lt_line = next(line for line in ax.get_lines() if line.get_label().startswith("lt "))
    assert np.allclose(lt_line.get_ydata(), expected["lt"].to_numpy() * 100)


def test_every_figure_is_labelled(tiny_comparison):
    data = load_comparison(tiny_comparison)
    run = find_run(data, "qlearning", 0)
    snapshot = viz.qtable_snapshot(run)
    figures = [viz.early_stop_vs_remaining(data["comparison"]),
               viz.q_convergence(viz.read_table(run, paths.QLEARNING_LOG)),
               viz.qtable_heatmaps(**snapshot), viz.coverage(**snapshot), grid_heatmaps(data["grid"]),
               viz.training_curves(viz.read_table(run, paths.CURVES))]
    for fig in figures:
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.has_data()]
        assert axes, f"{fig} draws no data"
        assert fig.get_suptitle() or all(ax.get_title() for ax in axes), f"{fig} has no title"
        for ax in axes:
            assert ax.get_xlabel() and ax.get_ylabel(), fig
