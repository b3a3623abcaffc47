"""Every planner by the name `--planner` gives it."""

from __future__ import annotations

from collections.abc import Callable

from mdp_prune.config import RunConfig
from mdp_prune.errors import lookup
from mdp_prune.planners.base import Planner
from mdp_prune.planners.baselines import Erk, GlobalMagnitude, Lamp, LotteryTicket, RandomAllocation
from mdp_prune.planners.qlearning.planner import QLearningPlanner

PLANNERS: dict[str, Callable[[RunConfig], Planner]] = {
    "lt": LotteryTicket,
    "global": GlobalMagnitude,
    "random": RandomAllocation,
    "lamp": Lamp,
    "erk": Erk,
    "qlearning": QLearningPlanner,
}


def make_planner(config: RunConfig) -> Planner:
    return lookup(PLANNERS, config.prune.planner, "planner")(config)
