"""Tabular Q-learning agent with per-episode convergence logs and bit-exact resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qtable.policies import epsilon_greedy
from qtable.schedules import Schedule
from qtable.table import QTable


@dataclass
class EpisodeLog:
    """What one episode did; |ΔQ| shrinking towards zero is the convergence signal we report."""

    episode: int
    return_: float
    length: int
    max_abs_dq: float
    mean_abs_dq: float
    epsilon: float
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QLearningAgent:
    """ε-greedy Q-learning over a QTable.

    The alpha and epsilon schedules are indexed by the number of finished episodes, so both are constant
    within an episode and a resumed agent picks them up from `episodes_done` alone.
    """

    def __init__(
        self,
        n_states: int,
        n_actions: int,
        *,
        alpha: Schedule,
        epsilon: Schedule,
        gamma: float,
        initial_value: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        self.table = QTable(n_states, n_actions, initial_value)
        self.alpha = alpha
        self.epsilon = epsilon
        self.gamma = float(gamma)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.episodes_done = 0
        self._reset_episode()

    @property
    def n_states(self) -> int:
        return self.table.n_states

    @property
    def n_actions(self) -> int:
        return self.table.n_actions

    @property
    def current_epsilon(self) -> float:
        return float(self.epsilon(self.episodes_done))

    @property
    def current_alpha(self) -> float:
        return float(self.alpha(self.episodes_done))

    # -- acting and learning --------------------------------------------------------------------------------

    def act(self, state: int) -> int:
        row = self.table.values[self.table._check_state(state)]
        return epsilon_greedy(row, self.current_epsilon, self.rng)

    def learn(self, state: int, action: int, reward: float, next_state: int | None, terminal: bool) -> float:
        delta = self.table.update(state, action, reward, next_state, terminal, self.current_alpha, self.gamma)
        self._return += float(reward)
        self._abs_dq.append(abs(delta))
        return delta

    def start_episode(self) -> None:
        """Clear the per-episode accumulators (also done by end_episode, so calling this is optional)."""
        self._reset_episode()

    def end_episode(self) -> EpisodeLog:
        dq = np.asarray(self._abs_dq, dtype=np.float64)
        log = EpisodeLog(
            episode=self.episodes_done,
            return_=self._return,
            length=len(self._abs_dq),
            max_abs_dq=float(dq.max()) if dq.size else 0.0,
            mean_abs_dq=float(dq.mean()) if dq.size else 0.0,
            epsilon=self.current_epsilon,
            alpha=self.current_alpha,
        )
        self.episodes_done += 1
        self._reset_episode()
        return log

    def _reset_episode(self) -> None:
        self._return = 0.0
        self._abs_dq: list[float] = []

    # -- driving a Gymnasium env ----------------------------------------------------------------------------

    def run_episode(
        self, env: Any, obs_to_state: Callable[[Any], int] = int, max_steps: int = 10_000
    ) -> EpisodeLog:
        """Train for one episode on an env with Discrete observation and action spaces.

        The env is seeded with the agent's seed on the agent's first episode only; later resets continue the
        env's own random stream, so a whole run is reproducible from the seed.
        """
        n = getattr(getattr(env, "action_space", None), "n", None)
        if n is not None and int(n) != self.n_actions:
            raise ValueError(f"env has {int(n)} actions but the agent has {self.n_actions}")
        obs, _ = env.reset(seed=self.seed if self.episodes_done == 0 else None)
        self.start_episode()
        state = obs_to_state(obs)
        for _ in range(max_steps):
            action = self.act(state)
            obs, reward, terminated, truncated, _ = env.step(action)
            next_state = obs_to_state(obs)
            # Truncation is a time limit, not the end of the task: keep bootstrapping.
            self.learn(state, action, float(reward), next_state, bool(terminated))
            state = next_state
            if terminated or truncated:
                break
        return self.end_episode()

    # -- checkpointing --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly, except the schedules (configuration, not state).

        All entries are plain Python (JSON-serialisable) except `values` and `visits`, which stay numpy
        arrays so float64 values round-trip exactly and cheaply.
        """
        return {
            "n_states": self.n_states,
            "n_actions": self.n_actions,
            "gamma": self.gamma,
            "initial_value": self.table.initial_value,
            "seed": self.seed,
            "episodes_done": self.episodes_done,
            "values": self.table.values.copy(),
            "visits": self.table.visits.copy(),
            "rng_state": _plain(self.rng.bit_generator.state),
            "episode_return": self._return,
            "episode_abs_dq": list(self._abs_dq),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if (int(d["n_states"]), int(d["n_actions"])) != (self.n_states, self.n_actions):
            raise ValueError(
                f"state dict is for a {d['n_states']}x{d['n_actions']} table, "
                f"this agent has {self.n_states}x{self.n_actions}"
            )
        if float(d["gamma"]) != self.gamma:
            raise ValueError(f"state dict has gamma={d['gamma']} but this agent has gamma={self.gamma}")
        values = np.asarray(d["values"], dtype=np.float64)
        visits = np.asarray(d["visits"], dtype=np.int64)
        if values.shape != self.table.values.shape or visits.shape != self.table.visits.shape:
            raise ValueError(f"values {values.shape} / visits {visits.shape} do not match the table shape")
        self.table.values[:] = values
        self.table.visits[:] = visits
        self.table.initial_value = float(d["initial_value"])
        self.seed = int(d["seed"])
        self.episodes_done = int(d["episodes_done"])
        bit_generator = getattr(np.random, d["rng_state"]["bit_generator"])()
        bit_generator.state = d["rng_state"]
        self.rng = np.random.Generator(bit_generator)
        self._return = float(d["episode_return"])
        self._abs_dq = [float(x) for x in d["episode_abs_dq"]]


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays inside a bit_generator state -> Python types, so the dict is JSON-friendly."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
