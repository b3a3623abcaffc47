"""Figures of runs, by theme, built from the results store's tables and returned as matplotlib Figures:

- `accuracy`: accuracy and early stopping against weights remaining, training curves by round;
- `qlearning`: the Q-planner's convergence, plans per round, Q-table and coverage;
- `runs`: readers of one run folder's tables; `style`: colours, labels, the log axis, `save_figure`.

Everything a notebook calls is importable from here: `from mdp_prune import viz; viz.accuracy_vs_remaining(...)`.
"""

from mdp_prune.viz.accuracy import accuracy_vs_remaining, aggregate_by_round, early_stop_vs_remaining, training_curves
from mdp_prune.viz.qlearning import coverage, greedy_plans, q_convergence, qtable_heatmaps
from mdp_prune.viz.runs import layer_names, qtable_snapshot, read_table
from mdp_prune.viz.style import METHODS, method_color, save_figure

__all__ = [
    "METHODS",
    "accuracy_vs_remaining",
    "aggregate_by_round",
    "coverage",
    "early_stop_vs_remaining",
    "greedy_plans",
    "layer_names",
    "method_color",
    "q_convergence",
    "qtable_heatmaps",
    "qtable_snapshot",
    "read_table",
    "save_figure",
    "training_curves",
]
