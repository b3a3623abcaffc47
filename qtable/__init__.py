"""Generic tabular Q-learning (numpy only): a Q-table, discretisation helpers, schedules and an agent."""

from qtable.agent import EpisodeLog, QLearningAgent
from qtable.discretize import Discretizer, StateSpace
from qtable.policies import epsilon_greedy, greedy
from qtable.schedules import SCHEDULE_KINDS, Constant, ExponentialDecay, LinearDecay, Schedule, make_schedule
from qtable.table import QTable

__all__ = [
    "SCHEDULE_KINDS",
    "Constant",
    "Discretizer",
    "EpisodeLog",
    "ExponentialDecay",
    "LinearDecay",
    "QLearningAgent",
    "QTable",
    "Schedule",
    "StateSpace",
    "epsilon_greedy",
    "greedy",
    "make_schedule",
]
