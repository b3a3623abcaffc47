"""Tests for the generic tabular Q-learning library `qtable`."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import chisquare

from qtable import (
    Constant,
    Discretizer,
    EpisodeLog,
    ExponentialDecay,
    LinearDecay,
    QLearningAgent,
    QTable,
    StateSpace,
    epsilon_greedy,
    greedy,
    make_schedule,
)

# -- QTable: Bellman updates --------------------------------------------------------------------------------


def test_nonterminal_update_by_hand():
    t = QTable(3, 2)
    t.values[1] = [2.0, 5.0]  # max_a' Q(s'=1, a') = 5
    t.values[0, 1] = 1.0
    # target = r + gamma * 5 = -1 + 0.9 * 5 = 3.5; delta = 0.5 * (3.5 - 1.0) = 1.25
    delta = t.update(0, 1, reward=-1.0, next_state=1, terminal=False, alpha=0.5, gamma=0.9)
    assert delta == pytest.approx(1.25)
    assert t.values[0, 1] == pytest.approx(2.25)
    assert t.visits[0, 1] == 1
    assert t.visits.sum() == 1
    # A second update from the new value: target 3.5, delta = 0.5 * (3.5 - 2.25) = 0.625
    delta = t.update(0, 1, -1.0, 1, False, alpha=0.5, gamma=0.9)
    assert delta == pytest.approx(0.625)
    assert t.values[0, 1] == pytest.approx(2.875)
    assert t.visits[0, 1] == 2


def test_terminal_update_does_not_bootstrap():
    t = QTable(2, 2, initial_value=1.0)
    t.values[1] = [100.0, 100.0]  # must be ignored
    delta = t.update(0, 0, reward=3.0, next_state=1, terminal=True, alpha=0.25, gamma=1.0)
    # target = 3; delta = 0.25 * (3 - 1) = 0.5
    assert delta == pytest.approx(0.5)
    assert t.values[0, 0] == pytest.approx(1.5)
    delta = t.update(0, 0, reward=3.0, next_state=None, terminal=True, alpha=1.0, gamma=1.0)
    assert delta == pytest.approx(1.5)
    assert t.values[0, 0] == pytest.approx(3.0)
    assert t.visits[0, 0] == 2


def test_negative_delta_is_signed():
    t = QTable(1, 1, initial_value=2.0)
    assert t.update(0, 0, -2.0, None, True, alpha=0.5, gamma=1.0) == pytest.approx(-2.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(state=3, action=0), "state 3 out of range"),
        (dict(state=-1, action=0), "state -1 out of range"),
        (dict(state=0, action=2), "action 2 out of range"),
        (dict(state=0, action=0, next_state=7), "state 7 out of range"),
        (dict(state=0, action=0, next_state=None), "next_state may only be None"),
        (dict(state=0, action=0, alpha=1.5), "alpha"),
        (dict(state=0, action=0, gamma=-0.1), "gamma"),
    ],
)
def test_update_validation(kwargs, match):
    args = dict(reward=0.0, next_state=0, terminal=False, alpha=0.5, gamma=0.9) | kwargs
    with pytest.raises(ValueError, match=match):
        QTable(3, 2).update(**args)


@pytest.mark.parametrize("shape", [(0, 2), (2, 0), (-1, 3), (2.5, 2)])
def test_table_rejects_bad_sizes(shape):
    with pytest.raises(ValueError, match="positive integer"):
        QTable(*shape)


# -- QTable: greedy choice and persistence ------------------------------------------------------------------


def test_greedy_tie_breaking():
    t = QTable(2, 4)
    t.values[0] = [0.0, 3.0, 1.0, 3.0]
    assert t.greedy_action(0) == 1  # lowest index among tied maxima
    rng = np.random.default_rng(0)
    picks = {t.greedy_action(0, rng) for _ in range(200)}
    assert picks == {1, 3}  # random among tied maxima only
    np.testing.assert_array_equal(t.greedy_policy(), [1, 0])
    assert greedy(np.array([2.0, 2.0, 1.0])) == 0
    with pytest.raises(ValueError, match="state 2 out of range"):
        t.greedy_action(2)


def test_table_save_load_roundtrip(tmp_path):
    t = QTable(5, 3, initial_value=-0.5)
    rng = np.random.default_rng(1)
    t.values[:] = rng.normal(size=(5, 3))
    t.visits[:] = rng.integers(0, 100, size=(5, 3))
    path = tmp_path / "sub" / "q.npz"
    t.save(path)
    t.save(path)  # overwriting is fine and atomic
    assert sorted(p.name for p in path.parent.iterdir()) == ["q.npz"]  # no temp files left behind
    u = QTable.load(path)
    np.testing.assert_array_equal(u.values, t.values)
    np.testing.assert_array_equal(u.visits, t.visits)
    assert u.values.dtype == np.float64 and u.visits.dtype == np.int64
    assert u.initial_value == -0.5


# -- schedules ----------------------------------------------------------------------------------------------


def test_schedules():
    c = Constant(0.3)
    assert c(0) == c(10**6) == 0.3
    lin = LinearDecay(1.0, 0.1, 10)
    assert lin(0) == pytest.approx(1.0)
    assert lin(5) == pytest.approx(0.55)
    assert lin(10) == pytest.approx(0.1)
    assert lin(1000) == pytest.approx(0.1)
    exp = ExponentialDecay(1.0, 0.05, 0.5)
    assert exp(0) == pytest.approx(1.0)
    assert exp(2) == pytest.approx(0.25)
    assert exp(4) == pytest.approx(0.0625)
    assert exp(5) == pytest.approx(0.05)  # floored at end
    assert exp(100) == pytest.approx(0.05)


def test_make_schedule():
    assert make_schedule("constant", 0.5, 0.0, 10, 0.9)(7) == 0.5
    assert make_schedule("linear", 1.0, 0.0, 10, 0.9)(5) == pytest.approx(0.5)
    assert make_schedule("exponential", 1.0, 0.0, 10, 0.9)(2) == pytest.approx(0.81)
    with pytest.raises(ValueError, match="constant, linear, exponential"):
        make_schedule("cosine", 1.0, 0.0, 10, 0.9)


def test_schedule_validation():
    with pytest.raises(ValueError):
        LinearDecay(1.0, 0.0, 0)
    with pytest.raises(ValueError):
        ExponentialDecay(1.0, 0.0, 1.5)
    with pytest.raises(ValueError):
        Constant(1.0)(-1)


# -- policies -----------------------------------------------------------------------------------------------


def test_epsilon_zero_is_greedy():
    rng = np.random.default_rng(0)
    row = np.array([0.1, -2.0, 0.7, 0.3])
    assert all(epsilon_greedy(row, 0.0, rng) == 2 for _ in range(1000))


def test_epsilon_one_is_uniform():
    rng = np.random.default_rng(123)
    row = np.array([0.0, 10.0, 0.0, 0.0])  # a strong greedy preference that epsilon=1 must ignore
    n = 20_000
    draws = np.array([epsilon_greedy(row, 1.0, rng) for _ in range(n)])
    counts = np.bincount(draws, minlength=4)
    assert chisquare(counts).pvalue > 0.001
    np.testing.assert_array_less(np.abs(counts / n - 0.25), 0.02)


def test_epsilon_greedy_ties_are_random():
    rng = np.random.default_rng(0)
    row = np.array([1.0, 0.0, 1.0])
    counts = np.bincount([epsilon_greedy(row, 0.0, rng) for _ in range(2000)], minlength=3)
    assert counts[1] == 0 and counts[0] > 800 and counts[2] > 800
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy(row, 1.1, rng)


# -- discretisation -----------------------------------------------------------------------------------------


def test_discretizer_buckets_and_labels():
    d = Discretizer([0.1, 0.2, 0.5], name="acc")
    assert d.n_buckets == 4
    assert [d(v) for v in (-1.0, 0.0999, 0.1, 0.15, 0.2, 0.49, 0.5, 7.0)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert d.labels() == ["<0.1", "[0.1, 0.2)", "[0.2, 0.5)", ">=0.5"]
    with pytest.raises(ValueError):
        d.label(4)
    with pytest.raises(ValueError, match="NaN"):
        d(float("nan"))


@pytest.mark.parametrize("edges", [[], [0.2, 0.1], [0.1, 0.1], [0.0, float("inf")], [[0.1, 0.2]]])
def test_discretizer_rejects_bad_edges(edges):
    with pytest.raises(ValueError, match="edges"):
        Discretizer(edges)


def test_state_space_roundtrip():
    space = StateSpace([3, 4, 5])
    assert space.n_states == 60
    flat = [space.index(ix) for ix in np.ndindex(3, 4, 5)]
    assert flat == list(range(60))  # row-major and a bijection
    assert all(space.unravel(space.index(ix)) == ix for ix in np.ndindex(3, 4, 5))
    assert space.index((1, 2, 3)) == 1 * 20 + 2 * 5 + 3
    with pytest.raises(ValueError, match="out of range"):
        space.index((3, 0, 0))
    with pytest.raises(ValueError, match="expected 3 indices"):
        space.index((0, 0))
    with pytest.raises(ValueError, match="out of range"):
        space.unravel(60)
    with pytest.raises(ValueError, match="positive"):
        StateSpace([3, 0])


# -- agent --------------------------------------------------------------------------------------------------


def _agent(seed: int = 0) -> QLearningAgent:
    return QLearningAgent(
        6, 3, alpha=LinearDecay(0.9, 0.1, 20), epsilon=ExponentialDecay(1.0, 0.05, 0.9), gamma=0.9, seed=seed
    )


def _random_mdp_episode(agent: QLearningAgent, env_rng: np.random.Generator, steps: int = 8) -> list[int]:
    """A small random MDP driven by hand (not via Gymnasium), recording the agent's actions."""
    actions, state = [], int(env_rng.integers(6))
    for t in range(steps):
        a = agent.act(state)
        actions.append(a)
        nxt = int((state + a + env_rng.integers(2)) % 6)
        agent.learn(state, a, float(env_rng.normal() + a), nxt, terminal=t == steps - 1)
        state = nxt
    return actions


def test_episode_log():
    agent = _agent()
    agent.start_episode()
    d1 = agent.learn(0, 1, 1.0, 2, False)
    d2 = agent.learn(2, 0, -3.0, None, True)
    log = agent.end_episode()
    assert isinstance(log, EpisodeLog)
    assert (log.episode, log.length, log.return_) == (0, 2, -2.0)
    assert log.max_abs_dq == pytest.approx(max(abs(d1), abs(d2)))
    assert log.mean_abs_dq == pytest.approx((abs(d1) + abs(d2)) / 2)
    assert (log.epsilon, log.alpha) == (pytest.approx(1.0), pytest.approx(0.9))
    assert agent.episodes_done == 1
    log = agent.end_episode()  # an empty episode is allowed and logs zeros
    assert (log.episode, log.length, log.max_abs_dq, log.epsilon) == (1, 0, 0.0, pytest.approx(0.9))


def test_state_dict_resume_is_bit_exact():
    a, env_rng_a = _agent(seed=7), np.random.default_rng(99)
    for _ in range(10):
        _random_mdp_episode(a, env_rng_a)
        a.end_episode()
    _random_mdp_episode(a, env_rng_a, steps=3)  # checkpoint mid-episode, too

    state = a.state_dict()
    state_json = {k: v for k, v in state.items() if k not in ("values", "visits")}
    restored = json.loads(json.dumps(state_json)) | {"values": state["values"], "visits": state["visits"]}
    b = _agent(seed=0)  # a different seed: everything must come from the state dict
    b.load_state_dict(restored)
    env_rng_b = np.random.default_rng()
    env_rng_b.bit_generator.state = env_rng_a.bit_generator.state

    log_a = a.end_episode()
    log_b = b.end_episode()
    assert log_a == log_b
    for _ in range(15):
        assert _random_mdp_episode(a, env_rng_a) == _random_mdp_episode(b, env_rng_b)
        assert a.end_episode() == b.end_episode()
    np.testing.assert_array_equal(a.table.values, b.table.values)
    np.testing.assert_array_equal(a.table.visits, b.table.visits)
    assert a.episodes_done == b.episodes_done == 26


def test_load_state_dict_rejects_mismatch():
    with pytest.raises(ValueError, match="6x3"):
        QLearningAgent(5, 3, alpha=Constant(0.1), epsilon=Constant(0.1), gamma=0.9).load_state_dict(
            _agent().state_dict()
        )


def _cliff_env() -> gym.Env:
    try:
        return gym.make("CliffWalking-v1")
    except gym.error.Error:
        return gym.make("CliffWalking-v0")


def _greedy_return(agent: QLearningAgent, env: gym.Env, max_steps: int = 100) -> float:
    obs, _ = env.reset()
    total = 0.0
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(agent.table.greedy_action(int(obs)))
        total += float(reward)
        if terminated or truncated:
            break
    return total


def test_learns_cliff_walking_optimally():
    env = _cliff_env()
    agent = QLearningAgent(
        env.observation_space.n,
        env.action_space.n,
        alpha=Constant(0.5),
        epsilon=LinearDecay(1.0, 0.0, 300),
        gamma=1.0,
        seed=0,
    )
    logs = [agent.run_episode(env) for _ in range(500)]
    assert [log.episode for log in logs] == list(range(500))
    assert logs[-1].epsilon == 0.0
    assert _greedy_return(agent, env) == -13.0  # the optimal path along the cliff edge
    assert agent.table.visits.sum() == sum(log.length for log in logs)


def test_run_episode_is_reproducible():
    def run(seed: int) -> tuple[np.ndarray, list[EpisodeLog]]:
        env = gym.make("FrozenLake-v1", is_slippery=True)
        agent = QLearningAgent(16, 4, alpha=Constant(0.2), epsilon=Constant(0.5), gamma=0.95, seed=seed)
        logs = [agent.run_episode(env, max_steps=100) for _ in range(30)]
        return agent.table.values.copy(), logs

    (v1, l1), (v2, l2), (v3, _) = run(3), run(3), run(4)
    np.testing.assert_array_equal(v1, v2)
    assert l1 == l2
    assert not np.array_equal(v1, v3)
