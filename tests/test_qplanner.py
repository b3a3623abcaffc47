import itertools
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch import nn

from mdp_prune.engine import pruning
from mdp_prune.engine.models import build_model, layer_shapes, prunable_weights
from mdp_prune.errors import UserError
from mdp_prune.experiments.imp import Setup, check_names, run_imp
from mdp_prune.planners.proxies import all_prefixes, proxy_iterations
from mdp_prune.planners.qlearning.env import (
    CommittedBudgetEnv,
    ProxyEvaluator,
    PruningEnv,
    greedy_rollout,
    paired_z,
    purl_reward,
)
from mdp_prune.store import paths
from qtable import QLearningAgent, make_schedule

ACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


class SensitiveLayerEvaluator:
    """Synthetic network: three layers of 100 weights; pruning layer 1 at all costs 3 points per percent."""

    n_layers = 3

    def accuracy(self, plan):
        return 0.9 - (3 * ACTIONS[plan[1]] if len(plan) > 1 else 0.0)

    def remaining(self, plan):
        return 1 - sum(round(ACTIONS[a] * 100) for a in plan) / 300


def _env(evaluator=None, target_sparsity=0.5):
    return PruningEnv(evaluator or SensitiveLayerEvaluator(), len(ACTIONS), (0.01, 0.1), (0.5, 0.8),
                      target_accuracy=0.9, target_sparsity=target_sparsity, beta=1.0)


def test_env_passes_gymnasium_check():
    check_env(_env(), skip_render_check=True)


def test_rewards_follow_purl_formula():
    env = _env()
    env.reset()
    _, r1, done1, _, _ = env.step(5)  # layer 0 at 50 %: sparsity 50/300
    assert r1 == pytest.approx(-(0 + (1 - (50 / 300) / 0.5))) and not done1
    _, r2, _, _, _ = env.step(1)  # layer 1 at 10 %: accuracy 0.6, sparsity 60/300
    assert r2 == pytest.approx(-((1 - 0.6 / 0.9) + (1 - (60 / 300) / 0.5)))
    _, _, done3, _, info = env.step(0)
    assert done3 and info["plan"] == (5, 1, 0)
    assert purl_reward(0.9, 0.6, 0.9, 0.5, 2.0) == 0.0


def test_greedy_plan_finds_the_known_best_plan_and_q_converges():
    env = _env()
    returns = {}
    for plan in itertools.product(range(len(ACTIONS)), repeat=3):
        env.reset()
        returns[plan] = sum(env.step(a)[1] for a in plan)
    best = max(returns, key=returns.get)
    assert best == (5, 0, 5)  # prune the insensitive layers fully, leave layer 1 alone

    agent = QLearningAgent(env.space.n_states, len(ACTIONS), alpha=make_schedule("constant", 0.5),
                           epsilon=make_schedule("linear", 1.0, 0.0, 300), gamma=1.0, seed=0)
    logs = [agent.run_episode(env, max_steps=3) for _ in range(400)]
    plan, _, _ = greedy_rollout(env, agent.table.values)
    assert plan == best
    early = np.mean([log.max_abs_dq for log in logs[:50]])
    late = np.mean([log.max_abs_dq for log in logs[-50:]])
    assert late < 0.01 * early


@pytest.fixture
def proxy(tiny):
    setup = Setup(tiny())
    model = setup.model()
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    masks = {n: (torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) > 0.3).float()
             for n, w in weights.items()}
    return ProxyEvaluator(model, weights, masks, ACTIONS, setup.splits.val_x, setup.splits.val_y), model, masks


def test_episodes_never_touch_the_trained_weights_or_committed_mask(proxy):
    evaluator, model, masks = proxy
    before_w = {k: v.clone() for k, v in model.state_dict().items()}
    before_m = {k: v.clone() for k, v in masks.items()}
    env = _env(evaluator, target_sparsity=0.9)
    check_env(env, skip_render_check=True)
    agent = QLearningAgent(env.space.n_states, len(ACTIONS), alpha=make_schedule("constant", 0.2),
                           epsilon=make_schedule("constant", 1.0), gamma=0.9, seed=1)
    for _ in range(30):
        agent.run_episode(env, max_steps=3)
    assert all(torch.equal(before_w[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(before_m[k], masks[k]) for k in masks)
    assert evaluator.evaluations < evaluator.lookups  # repeated plans come from the cache


def test_one_action_index_always_prunes_the_same_weights(proxy):
    evaluator, model, masks = proxy
    first = {(layer, a): evaluator.layer_mask(layer, a).clone() for layer in range(evaluator.n_layers)
             for a in range(len(ACTIONS))}
    for (layer, a), m in first.items():
        kept = int(masks[evaluator.names[layer]].sum())
        assert int(m.sum()) == kept - round(ACTIONS[a] * kept)
        assert torch.all(m <= masks[evaluator.names[layer]])
    # A second evaluator sorts the weights afresh (no shared cache) and prunes the very same weights.
    fresh = ProxyEvaluator(model, evaluator.weights, masks, ACTIONS, evaluator.x, evaluator.y)
    for (layer, a), m in reversed(first.items()):
        assert torch.equal(fresh.layer_mask(layer, a), m)


@pytest.mark.parametrize("ties", [False, True])
def test_proxy_masks_equal_magnitude_prune_for_the_same_plan(proxy, ties):
    """The proxy scores exactly the masks the IMP loop would commit for a plan: what the planner learns about a
    plan is about that plan."""
    evaluator, model, masks = proxy
    weights = dict(evaluator.weights)
    if ties:  # exact zeros and repeated magnitudes: the order among equals must agree too
        weights = {n: (w * 4).round() / 4 for n, w in weights.items()}
        evaluator = ProxyEvaluator(model, weights, masks, ACTIONS, evaluator.x, evaluator.y)
    rng = np.random.default_rng(0)
    for plan in [tuple(int(a) for a in rng.integers(len(ACTIONS), size=evaluator.n_layers)) for _ in range(20)]:
        fractions = {n: ACTIONS[a] for n, a in zip(evaluator.names, plan, strict=True)}
        expected = pruning.magnitude_prune(weights, masks, fractions)
        got = evaluator.plan_masks(plan)
        assert all(torch.equal(got[n], expected[n]) for n in evaluator.names), plan
        assert evaluator.remaining(plan) == pruning.remaining(expected)[0]


def test_committed_budget_reward_judges_the_rescaled_plan_that_magnitude_prune_commits(proxy):
    """--budget-reward committed: the reward is 0 before the last layer, then the accuracy drop of exactly the
    masks the IMP loop commits once match_budget has rescaled the plan to the round's count."""
    evaluator, model, masks = proxy
    budget, top = evaluator.kept_total // 5, max(ACTIONS)
    env = CommittedBudgetEnv(evaluator, len(ACTIONS), (0.01, 0.1), (0.5, 0.8), budget=budget, max_fraction=top)
    check_env(env, skip_render_check=True)
    kept = dict(zip(evaluator.names, evaluator.kept, strict=True))
    rng = np.random.default_rng(1)
    for plan in [(0, 0, 0), *(tuple(int(a) for a in rng.integers(len(ACTIONS), size=3)) for _ in range(10))]:
        assert env.reward(plan[:1]) == env.reward(plan[:2]) == 0.0
        fractions = pruning.match_budget({n: ACTIONS[a] for n, a in zip(evaluator.names, plan, strict=True)},
                                         kept, budget, max_fraction=top)
        committed = pruning.magnitude_prune(evaluator.weights, masks, fractions)
        assert sum(kept.values()) - sum(int(m.sum()) for m in committed.values()) == budget
        check = ProxyEvaluator(model, {n: evaluator.weights[n] * committed[n] for n in evaluator.names}, committed,
                               ACTIONS, evaluator.x, evaluator.y)
        assert env.reward(plan) == pytest.approx(-(evaluator.accuracy(()) - check.accuracy(())), abs=1e-12)
    # Plans with the same allocation across layers rescale to the same counts, and are scored once.
    assert evaluator.budget_counts((1, 1, 1), budget, top) == evaluator.budget_counts((2, 2, 2), budget, top)


@pytest.mark.parametrize("model_name", ["mlp", "conv2"])
def test_plan_tree_sweep_equals_plan_by_plan_evaluation_bit_for_bit(model_name):
    """`accuracies` shares the forward pass over plan prefixes (a conv net's plan tree would otherwise cost one
    full forward per prefix); it must score every plan exactly as `accuracy` does, and count each once."""
    model = build_model(model_name, (1, 8, 8), 10, (12, 8), seed=0)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    masks = pruning.magnitude_prune(weights, pruning.ones_like(weights), {n: 0.3 for n in weights})
    x, y = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 10
    actions = (0.0, 0.5, 0.9)
    plans = all_prefixes(len(weights), len(actions))
    swept = ProxyEvaluator(model, weights, masks, actions, x, y)
    one_by_one = ProxyEvaluator(model, weights, masks, actions, x, y)
    values = swept.accuracies(plans)
    assert values == [one_by_one.accuracy(p) for p in plans]
    assert len(set(values)) > 3  # the plans really differ, so equality is not trivial
    assert swept.evaluations == len(plans) == swept.lookups
    assert swept.accuracies(plans[:5]) == values[:5] and swept.evaluations == len(plans)  # cached
    # A model that is not such a Sequential is scored plan by plan, with the same result.
    wrapped = nn.Sequential(OrderedDict(body=model))
    nested = ProxyEvaluator(wrapped, {f"body.{n}": w for n, w in weights.items()},
                            {f"body.{n}": m for n, m in masks.items()}, actions, x, y)
    assert nested.accuracies(plans[:40]) == values[:40]


def test_match_budget_removes_exactly_the_budget_and_keeps_the_allocation():
    kept = {"a": 1000, "b": 500, "c": 10}
    fr = pruning.match_budget({"a": 0.4, "b": 0.2, "c": 0.0}, kept, budget=300)
    counts = {n: round(fr[n] * kept[n]) for n in kept}
    assert sum(counts.values()) == 300 and counts["c"] == 0 and counts["a"] == 4 * counts["b"]
    capped = pruning.match_budget({"a": 0.0, "b": 0.5, "c": 0.0}, kept, budget=600)
    assert sum(round(capped[n] * kept[n]) for n in kept) == 600 and capped["b"] < 1
    one_layer = pruning.match_budget({"a": 0.0, "b": 0.1, "c": 0.0}, kept, budget=400, max_fraction=0.5)
    counts = {n: round(one_layer[n] * kept[n]) for n in kept}
    assert sum(counts.values()) == 400 and max(one_layer.values()) <= 0.5 and counts["b"] == 250
    zero = pruning.match_budget({}, kept, budget=151)
    assert sum(round(zero[n] * kept[n]) for n in kept) == 151


def _q(tiny, **extra):
    return tiny(**{"prune.planner": "qlearning", "qlearning.episodes": 40, **extra})


def test_qlearning_run_logs_convergence(tmp_path, tiny):
    run = run_imp(_q(tiny), tmp_path, progress=False)
    log = pd.read_csv(run / paths.QLEARNING_LOG)
    assert list(log.columns) == ["round", "episode", "epsilon", "alpha", "return", "max_abs_dq", "mean_abs_dq",
                                 "greedy_plan"]
    assert len(log) == 4 * 40 and set(log["round"]) == {0, 1, 2, 3}
    assert all(paths.qtable_file(run, r).is_file() for r in range(4))
    rounds = pd.read_csv(run / paths.QLEARNING_ROUNDS)
    assert (rounds["state_action_pairs_visited"] > 0).all()
    assert pd.read_csv(run / paths.ROUNDS)["weights_remaining"].is_monotonic_decreasing


@pytest.mark.parametrize("budget_reward", ["plan", "committed", "retrained"])
def test_budget_mode_matches_the_lt_sparsity_each_round(tmp_path, tiny, budget_reward):
    q = run_imp(_q(tiny, **{"qlearning.budget": "lt", "qlearning.budget_reward": budget_reward,
                            "qlearning.proxy": "finetune"}), tmp_path, progress=False)
    lt = run_imp(tiny(), tmp_path, progress=False)
    q_rows, lt_rows = pd.read_csv(q / paths.ROUNDS), pd.read_csv(lt / paths.ROUNDS)
    assert np.allclose(q_rows["weights_remaining"], lt_rows["weights_remaining"], atol=1e-9)
    log = pd.read_csv(q / paths.QLEARNING_ROUNDS)
    if budget_reward == "committed":  # judged by the pruned proxy alone: nothing is retrained for the reward
        assert (q_rows["proxy_iterations"] == 0).all()
        assert log["proxy"].eq("pruned").all()
    if budget_reward == "retrained":  # each round retrains its candidates, and counts every step of it
        config = _q(tiny)
        steps = proxy_iterations(config.qlearning.proxy_share, config.train)
        per_round = np.diff(q_rows["proxy_iterations"].to_numpy())
        assert (per_round == steps * log["retrained_candidates"].to_numpy()[:-1]).all()
        assert log["proxy"].eq("finetune").all() and (log["retrained_candidates"] >= 2).all()
        assert (log["retrained_accuracy"] >= log["retrained_accuracy_of_choice"]).all()


def test_paired_z_counts_only_the_examples_the_two_disagree_on():
    a = torch.tensor([True, True, True, False, True, False, True, True])
    b = torch.tensor([True, False, False, False, True, True, True, False])
    z, wins, losses = paired_z(a, b)  # a alone right on 3 examples, b alone on 1
    assert (wins, losses) == (3, 1) and z == pytest.approx(2 / 2)
    assert paired_z(b, a)[0] == pytest.approx(-1.0)
    assert paired_z(a, a) == (0.0, 0, 0)


def test_anchor_z_commits_lt_allocation_unless_the_plan_wins_clearly(tmp_path, tiny):
    """--anchor-z: an unreachable bar commits lt's allocation every round, so the run is lt's run bit for bit;
    without it the planner's own allocations are committed."""
    budget = {"qlearning.budget": "lt", "qlearning.budget_reward": "committed"}
    lt = pd.read_csv(run_imp(tiny(), tmp_path, progress=False) / paths.ROUNDS)
    always = run_imp(_q(tiny, **budget, **{"qlearning.anchor_z": 1e9}), tmp_path, progress=False)
    rows, log = pd.read_csv(always / paths.ROUNDS), pd.read_csv(always / paths.QLEARNING_ROUNDS)
    pd.testing.assert_frame_equal(rows[["weights_remaining", "test_accuracy", "val_accuracy"]],
                                  lt[["weights_remaining", "test_accuracy", "val_accuracy"]], check_exact=True)
    lt_plan = "/".join(f"{f:g}" for f in (0.2, 0.2, 0.1))
    assert log["committed_plan"].eq(lt_plan).all()
    assert (log["anchor_committed"] | (log["anchor_wins"] + log["anchor_losses"] == 0)).all()
    free = pd.read_csv(run_imp(_q(tiny, **budget, **{"qlearning.anchor_z": 0.0}), tmp_path, progress=False)
                       / paths.QLEARNING_ROUNDS)
    assert "anchor_z" not in free.columns and not free["committed_plan"].eq(lt_plan).all()


def test_anchor_erk_commits_erk_densities_of_lt_count_unless_the_plan_wins_clearly(tmp_path, tiny):
    """--anchor erk with an unreachable bar: every round removes lt's count (so the overall sparsity is lt's,
    weight for weight) and leaves each layer at ERK's density for that sparsity, to a weight's rounding."""
    budget = {"qlearning.budget": "lt", "qlearning.anchor": "erk", "qlearning.anchor_z": 1e9}
    lt = pd.read_csv(run_imp(tiny(), tmp_path, progress=False) / paths.ROUNDS)
    run = run_imp(_q(tiny, **budget), tmp_path, progress=False)
    rows, log = pd.read_csv(run / paths.ROUNDS), pd.read_csv(run / paths.QLEARNING_ROUNDS)
    assert (rows["weights_remaining"] == lt["weights_remaining"]).all()
    shapes = layer_shapes(tiny().train)
    for _, row in rows[rows["round"] > 0].iterrows():
        erk = pruning.erk_densities(shapes, row["weights_remaining"])
        for name, shape in shapes.items():
            assert abs(row[f"remaining:{name}"] - erk[name]) <= 1.5 / np.prod(shape), (row["round"], name)
    assert (log["anchor_committed"] | (log["anchor_wins"] + log["anchor_losses"] == 0)).all()
    assert run.name != run_imp(_q(tiny, **{**budget, "qlearning.anchor": "lt"}), tmp_path, progress=False).name
    # ERK's fractions are not actions, so lt's rates need not be among --actions
    check_names(_q(tiny, **budget, **{"prune.prune_fc": 0.25}))
    assert _q(tiny, **{"qlearning.anchor": "erk"}).hash() == _q(tiny).hash()  # free mode never reads it


def test_anchor_z_is_budget_mode_only_and_needs_lt_fractions_among_the_actions(tiny):
    assert _q(tiny).qlearning.anchor_z == 2.0  # the default
    # free mode never reads the anchor, so it neither errs there nor renames free-mode runs
    assert _q(tiny, **{"qlearning.anchor_z": 0.0}).hash() == _q(tiny).hash()
    assert (_q(tiny, **{"qlearning.budget": "lt", "qlearning.anchor_z": 0.0}).hash()
            != _q(tiny, **{"qlearning.budget": "lt"}).hash())
    with pytest.raises(UserError, match="lacks --prune-fc 0.25 .--anchor-z 0 turns the anchor off"):
        check_names(_q(tiny, **{"qlearning.budget": "lt", "prune.prune_fc": 0.25}))
    check_names(_q(tiny, **{"qlearning.budget": "lt", "qlearning.anchor_z": 0.0, "prune.prune_fc": 0.25}))
    # only the kinds of layer the model has: an mlp has no conv layer, so its conv fraction is never committed
    check_names(_q(tiny, **{"qlearning.budget": "lt", "prune.prune_conv": 0.15}))
    with pytest.raises(UserError, match=r"lacks --prune-conv 0.15, --prune-output 0.05 \("):
        check_names(_q(tiny, **{"qlearning.budget": "lt", "train.model": "conv2", "prune.prune_conv": 0.15,
                                "prune.prune_output": 0.05}))


def test_budget_reward_retrained_needs_a_retraining_proxy(tiny):
    with pytest.raises(UserError, match="--budget-reward retrained retrains with --proxy"):
        _q(tiny, **{"qlearning.budget": "lt", "qlearning.budget_reward": "retrained", "qlearning.proxy": "pruned"})
    # free mode never reads budget_reward, so the combination is not an error there
    _q(tiny, **{"qlearning.budget_reward": "retrained", "qlearning.proxy": "pruned"})


@pytest.mark.parametrize("extra", [{}, {"qlearning.budget": "lt", "qlearning.anchor_z": 0.0},
                                   {"qlearning.budget": "lt", "qlearning.anchor_z": 1.0},
                                   {"qlearning.budget": "lt", "qlearning.anchor": "erk"},
                                   {"qlearning.budget": "lt", "qlearning.budget_reward": "retrained",
                                    "qlearning.proxy": "finetune"}])
def test_qlearning_run_resumes_exactly(tmp_path, tiny, extra):
    full = run_imp(_q(tiny, **extra), tmp_path / "full", progress=False)

    def kill(round_, model, masks):
        if round_ == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_imp(_q(tiny, **extra), tmp_path / "resumed", progress=False, on_round_start=kill)
    resumed = run_imp(_q(tiny, **extra), tmp_path / "resumed", progress=False)
    for name in (paths.ROUNDS, paths.QLEARNING_LOG):
        a, b = pd.read_csv(full / name), pd.read_csv(resumed / name)
        pd.testing.assert_frame_equal(a.drop(columns="seconds", errors="ignore"),
                                      b.drop(columns="seconds", errors="ignore"), check_exact=True)
    q_full, q_resumed = (np.load(paths.qtable_file(r, 3))["values"] for r in (full, resumed))
    assert np.array_equal(q_full, q_resumed)
