"""Planners: after each round's training they choose, per prunable layer, the fraction of its remaining weights
to prune. The fixed-rate baselines live in `baselines`, the learned Q-learning planner in `qlearning`."""
