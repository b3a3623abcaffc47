"""Lottery tickets (IMP with rewinding) with a learned, tabular Q-learning pruning planner."""

from mdp_prune.config import PruneConfig, RunConfig, TrainConfig

__all__ = ["PruneConfig", "RunConfig", "TrainConfig"]
