"""The retraining-aware proxies, the exact optimum of a round's MDP, warm starts and the proxy-step count."""

import itertools
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from mdp_prune.cli import main
from mdp_prune.engine import pruning
from mdp_prune.engine.models import prunable_weights
from mdp_prune.errors import UserError
from mdp_prune.experiments.imp import Setup, dense_round, run_imp
from mdp_prune.planners.proxies import RetrainedProxy, Retrainer
from mdp_prune.planners.qlearning.env import ProxyEvaluator, PruningEnv, exact_optimum, greedy_rollout, hill_climb
from mdp_prune.planners.qlearning.planner import QLearningPlanner
from mdp_prune.store import paths
from qtable import QLearningAgent, QTable, make_schedule

ACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@pytest.fixture
def round_pieces(tmp_path, tiny):
    """A trained dense round of a tiny network and a committed mask with some weights already pruned."""
    config = tiny(**{"train.train_iterations": 60})
    setup = Setup(config)
    dense = dense_round(setup, tmp_path, progress=False)
    model = setup.model()
    model.load_state_dict(dense["trained"])
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    masks = pruning.magnitude_prune(weights, pruning.ones_like(weights), {n: 0.3 for n in weights})
    cheap = ProxyEvaluator(model, weights, masks, ACTIONS, setup.splits.val_x[:200], setup.splits.val_y[:200])
    retrainer = Retrainer(model, dense["trained"], dense["rewind"], setup.splits, config.train, setup.order)
    return cheap, retrainer, weights, masks


def test_proxy_masks_equal_magnitude_prune_for_the_same_plan(round_pieces):
    cheap, _, weights, masks = round_pieces
    for plan in [(0, 0, 0), (5, 1, 3), (2, 5, 5), (5,)]:
        fractions = {n: ACTIONS[plan[i]] if i < len(plan) else 0.0 for i, n in enumerate(cheap.names)}
        expected = pruning.magnitude_prune(weights, masks, fractions)
        got = cheap.plan_masks(plan)
        assert all(torch.equal(got[n], expected[n]) for n in expected)


@pytest.mark.parametrize("kind", ["finetune", "rewind"])
def test_retraining_proxies_are_deterministic_and_leave_the_round_untouched(round_pieces, kind):
    cheap, retrainer, weights, masks = round_pieces
    before_weights = {n: w.clone() for n, w in weights.items()}
    before_masks = {n: m.clone() for n, m in masks.items()}
    before_model = {k: v.clone() for k, v in retrainer.model.state_dict().items()}
    plan_masks = cheap.plan_masks((5, 2, 1))
    first = retrainer.accuracy(kind, plan_masks, 15)
    second = retrainer.accuracy(kind, plan_masks, 15)
    assert first == second
    assert retrainer.iterations == 30  # every step counted
    assert all(torch.equal(weights[n], before_weights[n]) for n in weights)
    assert all(torch.equal(masks[n], before_masks[n]) for n in masks)
    assert all(torch.equal(v, before_model[k]) for k, v in retrainer.model.state_dict().items())


def test_planner_proxy_retrains_its_candidates_and_ranks_the_rest_below_them(round_pieces):
    cheap, retrainer, _, _ = round_pieces
    retrained = []

    def retrain(masks):
        retrained.append(masks)
        return retrainer.accuracy("rewind", masks, 10)

    proxy = RetrainedProxy(cheap, retrain, n_candidates=4)
    assert len(retrained) == len(proxy.candidates) <= 4
    for b, plan in proxy.candidates.items():
        assert proxy.accuracy(plan) == pytest.approx(proxy.retrained[b])
    for plan in itertools.product(range(len(ACTIONS)), repeat=cheap.n_layers):
        assert proxy.accuracy(plan) <= proxy.retrained[proxy._bin(plan)] + 1e-12
    assert len(retrained) == len(proxy.candidates)  # nothing retrained after construction


class GridEvaluator:
    """Synthetic round: every prefix has its own accuracy drop, so states never alias."""

    n_layers = 2
    actions = 3

    def accuracy(self, plan):
        index = sum(a * self.actions ** (len(plan) - 1 - i) for i, a in enumerate(plan))
        drop = 0.0 if not plan else 0.001 * (1 + index + 10 * (len(plan) - 1))
        penalty = 0.05 if plan[:1] == (2,) else 0.0  # pruning layer 0 hard hurts the real accuracy
        return 0.9 - drop - (penalty if len(plan) == 2 else 0.0)

    def remaining(self, plan):
        return 1 - sum(0.25 * a for a in plan) / 2


def _grid_env():
    edges = tuple(0.001 * i + 0.0005 for i in range(40))
    return PruningEnv(GridEvaluator(), 3, edges, (0.5, 0.8), target_accuracy=0.9, target_sparsity=0.6)


def test_exact_optimum_equals_brute_force_and_q_learning_reaches_it():
    env = _grid_env()
    brute = {}
    for plan in itertools.product(range(3), repeat=2):
        env.reset()
        brute[plan] = sum(0.9**t * env.step(a)[1] for t, a in enumerate(plan))
    best = max(brute, key=brute.get)
    plan, value = exact_optimum(env, 0.9, max_plans=100)
    assert plan == best and value == pytest.approx(brute[best])
    assert exact_optimum(env, 0.9, max_plans=8) is None  # 9 plans: too many to enumerate

    agent = QLearningAgent(env.space.n_states, 3, alpha=make_schedule("constant", 0.5),
                           epsilon=make_schedule("linear", 1.0, 0.0, 300), gamma=0.9, seed=0)
    for _ in range(400):
        agent.run_episode(env, max_steps=2)
    assert greedy_rollout(env, agent.table.values)[0] == best


def _q(tiny, **extra):
    return tiny(**{"prune.planner": "qlearning", "qlearning.episodes": 30, "rounds": 3, **extra})


def test_warm_start_loads_a_table_of_the_right_shape_and_rejects_another(tmp_path, tiny, capsys):
    source = run_imp(_q(tiny, rounds=1), tmp_path / "source", progress=False)
    final = QTable.load(paths.qtable_file(source, paths.qtable_rounds(source)[-1]))
    planner = QLearningPlanner(_q(tiny, **{"qlearning.init_qtable": str(source)}))
    planner._ensure_agent(final.n_states)
    assert np.array_equal(planner.agent.table.values, final.values)
    assert planner.agent.table.visits.sum() == 0  # visits describe this run's own exploration

    other = run_imp(_q(tiny, rounds=1, **{"prune.actions": (0.0, 0.25, 0.5)}), tmp_path / "other", progress=False)
    with pytest.raises(UserError, match="needs"):
        QLearningPlanner(_q(tiny, **{"qlearning.init_qtable": str(other)}))._ensure_agent(final.n_states)
    code = main(["run", "--dataset", "digits", "--model", "mlp", "--hidden-sizes", "32,16", "--train-iterations",
                 "40", "--eval-every", "10", "--batch-size", "32", "--rounds", "1", "--planner", "qlearning",
                 "--episodes", "30", "--init-qtable", str(other), "--out", str(tmp_path / "warm"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--init-qtable" in err


def test_proxy_iterations_are_cumulative_and_resume_exactly(tmp_path, tiny):
    config = _q(tiny, rounds=3, **{"qlearning.proxy_candidates": 3})
    full = run_imp(config, tmp_path / "full", progress=False)
    rows = pd.read_csv(full / paths.ROUNDS)
    steps = rows["proxy_iterations"].diff().dropna()
    assert rows["proxy_iterations"].iloc[0] > 0 and (steps > 0).all()
    per_round = pd.read_csv(full / paths.QLEARNING_ROUNDS)["proxy_iterations"]
    assert list(rows["proxy_iterations"]) == list(per_round.cumsum())

    def kill(round_, model, masks):
        if round_ == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_imp(config, tmp_path / "resumed", progress=False, on_round_start=kill)
    resumed = run_imp(config, tmp_path / "resumed", progress=False)
    pd.testing.assert_frame_equal(rows.drop(columns="seconds"),
                                  pd.read_csv(resumed / paths.ROUNDS).drop(columns="seconds"), check_exact=True)


class FragileEvaluator:
    """Synthetic round where every cut costs accuracy: the reward's optimum is the plan that prunes nothing."""

    n_layers = 2

    def accuracy(self, plan):
        return 0.0 if any(plan) else 0.9

    def remaining(self, plan):
        return 1 - sum(ACTIONS[a] for a in plan) / 2


def test_free_mode_keeps_pruning_while_retrained_accuracy_is_within_the_tolerance(tiny):
    planner = QLearningPlanner(_q(tiny, **{"qlearning.target_accuracy": 0.98}))
    env = PruningEnv(FragileEvaluator(), len(ACTIONS), (0.01,), (0.5,), target_accuracy=0.9, target_sparsity=0.9)
    planner._ensure_agent(env.space.n_states)
    planner.dense_val_accuracy = 0.9
    empty = (0, 0)
    assert exact_optimum(env, 0.9, 100)[0] == empty

    within = SimpleNamespace(result=SimpleNamespace(val_accuracy=0.89))  # 0.89 >= 0.98 * 0.9
    forced = planner._keeps_pruning(within, env, empty)
    others = [p for p in itertools.product(range(len(ACTIONS)), repeat=2) if p != empty]
    assert forced == max(others, key=lambda p: env.discounted_return(p, planner.agent.gamma))
    assert any(ACTIONS[a] for a in forced)

    below = SimpleNamespace(result=SimpleNamespace(val_accuracy=0.80))
    assert planner._keeps_pruning(below, env, empty) is None  # the stopping rule: empty plan, accuracy gone
    assert planner._keeps_pruning(within, env, (1, 0)) is None  # a plan that prunes is kept as it is


@pytest.mark.parametrize("target_remaining,target_sparsity,expected", [
    (0.035826, 0.964, 1 - 0.035826),  # the run's target is stricter: the reward must want it too
    (0.05, 0.99, 0.99),  # a reward aiming beyond the target is left alone
    (0.0, 0.964, 0.964),  # no target: T_P as given
])
def test_free_mode_reward_wants_at_least_the_runs_own_target(tiny, target_remaining, target_sparsity, expected):
    planner = QLearningPlanner(_q(tiny, **{"prune.target_remaining": target_remaining,
                                           "qlearning.target_sparsity": target_sparsity}))
    assert planner._target_sparsity(None) == pytest.approx(expected)
    assert planner._target_for_feedback() == pytest.approx(expected)


def test_proxy_check_scores_every_kind_and_resumes_without_retraining(tmp_path, tiny, monkeypatch):
    from mdp_prune.experiments import proxy_check as check

    run = run_imp(tiny(rounds=2, **{"train.train_iterations": 60}), tmp_path, progress=False)
    summary = check.proxy_check(run, 1, n_plans=4, progress=False)
    rows = pd.read_csv(paths.proxy_check_file(run, 1))
    assert len(rows) == 4 and rows["plan"].nunique() == 4
    assert set(summary["proxy"]) == {*check.KINDS, *check.REFERENCES}
    assert summary[["spearman_rho", "spearman_rho_test"]].stack().dropna().between(-1, 1).all()
    on_test = summary.set_index("proxy")["spearman_rho_test"]
    assert math.isnan(on_test["retrained_test_accuracy"])  # the test ranking against itself is not a check
    assert on_test["pruned"] == pytest.approx(spearmanr(rows["pruned"], rows["retrained_test_accuracy"])[0],
                                              nan_ok=True)
    steps = summary.set_index("proxy")["proxy_steps"]
    assert steps["pruned"] == 0 and steps["rewind"] == steps["finetune"] > 0
    assert steps["planner"] == steps["rewind"] * tiny().qlearning.proxy_candidates
    assert paths.proxy_check_summary_file(run, 1).is_file() and paths.proxy_check_trained_file(run, 1).is_file()
    # a rerun finds every plan done: it trains nothing and gives the same table
    monkeypatch.setattr(Setup, "train", lambda *a, **k: pytest.fail("retrained on resume"))
    again = check.proxy_check(run, 1, n_plans=4, progress=False)
    pd.testing.assert_frame_equal(again, summary)
    assert main(["proxy-check", str(run), "--round", "7", "--quiet"]) == 2
    # longer rewinds asked for later: added to the finished plans by short retrains only
    longer = check.proxy_check(run, 1, n_plans=4, progress=False, rewind_shares=(0.5, 1.0)).set_index("proxy")
    rows = pd.read_csv(paths.proxy_check_file(run, 1))
    assert rows[["rewind@0.5", "rewind@1", "planner@0.5", "planner@1"]].notna().all().all() and len(rows) == 4
    candidates = tiny().qlearning.proxy_candidates
    assert longer.loc["planner@0.5", "proxy_steps"] == longer.loc["rewind@0.5", "proxy_steps"] * candidates
    assert longer.loc["rewind@1", "proxy_steps"] == 2 * longer.loc["rewind@0.5", "proxy_steps"] > 0
    # the full-length rewind is the truth itself: the same training, so the same accuracy
    assert rows["rewind@1"].tolist() == rows["retrained_val_accuracy"].tolist()
    with pytest.raises(SystemExit) as stop:
        main(["proxy-check", str(run), "--round", "1", "--rewind-shares", "0.5,2", "--quiet"])
    assert stop.value.code == 2
    # the pruned proxy on other subsets of the validation set: evaluations only, and on the planner's own
    # subset it is the `pruned` column itself
    own = min(tiny().qlearning.proxy_examples, len(Setup(tiny()).splits.val_y))
    wider = check.proxy_check(run, 1, n_plans=4, progress=False, pruned_examples=(own, 3)).set_index("proxy")
    rows = pd.read_csv(paths.proxy_check_file(run, 1))
    assert rows[f"pruned@{own}"].tolist() == rows["pruned"].tolist()
    thirds = rows["pruned@3"] * 3  # an accuracy on 3 examples is a whole number of thirds
    assert np.allclose(thirds, thirds.round(), atol=1e-5) and len(rows) == 4
    assert wider.loc["pruned@3", "proxy_steps"] == 0
    assert main(["proxy-check", str(run), "--round", "1", "--pruned-examples", "99999999", "--quiet"]) == 2
    with pytest.raises(SystemExit) as stop:
        main(["proxy-check", str(run), "--round", "1", "--pruned-examples", "0", "--quiet"])
    assert stop.value.code == 2


def test_proxy_check_summary_gives_each_rho_a_bootstrap_interval_over_the_plans():
    from mdp_prune.experiments import proxy_check as check

    rng = np.random.default_rng(0)
    truth = rng.normal(size=40)
    frame = pd.DataFrame({"plan_index": range(40), "weights_remaining": rng.uniform(size=40),
                          "retrained_val_accuracy": truth + 0.3 * rng.normal(size=40),
                          "retrained_test_accuracy": truth + 0.3 * rng.normal(size=40)})
    for kind in check.KINDS:  # one close proxy, the others noise, one with ties
        frame[kind] = rng.normal(size=40)
    frame["planner"] = truth.round(0)
    summary = check.summarize(frame, steps=10, candidates=2, round_steps=100).set_index("proxy")
    for column, low, high in (("spearman_rho", "rho_low", "rho_high"),
                              ("spearman_rho_test", "rho_test_low", "rho_test_high")):
        defined = summary[[column, low, high]].dropna()
        assert len(defined) >= len(check.KINDS)
        assert (defined[low] <= defined[column]).all() and (defined[column] <= defined[high]).all()
        assert defined[[low, high]].stack().between(-1, 1).all()
    assert summary.loc["planner", "rho_low"] > 0.5  # the close proxy's interval excludes the noise
    assert summary.loc["pruned", "rho_low"] < 0 < summary.loc["pruned", "rho_high"]
    assert summary.loc["planner", "spearman_rho"] == pytest.approx(
        spearmanr(frame["planner"], frame["retrained_val_accuracy"])[0])  # ties ranked as scipy ranks them
    assert check._rank_correlation(frame["planner"].to_numpy(), frame["retrained_val_accuracy"].to_numpy()) == \
        pytest.approx(summary.loc["planner", "spearman_rho"])
    few = check.summarize(frame.head(4), steps=10, candidates=2, round_steps=100)
    assert few[["rho_low", "rho_high"]].isna().all().all()  # no interval from four plans
    with warnings.catch_warnings():  # resamples of a proxy with two values are often all tied: no interval, quietly
        warnings.simplefilter("error")
        assert math.isnan(check._spearman_interval(pd.Series([1.0, 1, 1, 2, 2, 1, 1, 2]), pd.Series(range(8)))[0])


class AliasedEvaluator:
    """Synthetic round whose states alias: both first actions lead to the same (layer, accuracy, sparsity)
    bucket, so Q sees the same future after either and picks the first action by its immediate reward (keep
    layer 0), while the optimum (prune both layers) pays for its first cut in the second step."""

    n_layers = 2
    accuracies = {(): 0.9, (0,): 0.9, (1,): 0.46, (0, 0): 0.9, (0, 1): 0.0, (1, 0): 0.9, (1, 1): 0.9}

    def accuracy(self, plan):
        return self.accuracies[plan]

    def remaining(self, plan):
        return 1 - 0.25 * sum(plan)


def test_committing_the_best_played_plan_reaches_the_optimum_an_aliased_greedy_plan_misses():
    from mdp_prune.planners.qlearning.planner import best_played

    env = PruningEnv(AliasedEvaluator(), 2, (0.5,), (0.01,), target_accuracy=0.9, target_sparsity=0.6)
    assert env.state_of((0,)) == env.state_of((1,))  # aliased
    optimum, value = exact_optimum(env, 0.9, 100)
    assert optimum == (1, 1)
    agent = QLearningAgent(env.space.n_states, 2, alpha=make_schedule("constant", 0.1),
                           epsilon=make_schedule("linear", 1.0, 0.0, 300), gamma=0.9, seed=0)
    played = set()
    for _ in range(400):
        agent.run_episode(env, max_steps=2)
        played.add(env.plan)
    greedy = greedy_rollout(env, agent.table.values)[0]
    assert env.discounted_return(greedy, 0.9) < value - 1e-6  # the aliasing is real: greedy misses
    assert played == set(itertools.product(range(2), repeat=2))
    assert best_played(env, 0.9, greedy, played) == optimum
    assert best_played(env, 0.9, greedy, set()) == greedy  # nothing better played: the greedy plan stands


def test_hill_climb_reaches_an_optimum_one_layer_at_a_time_that_was_never_played():
    env = PruningEnv(AliasedEvaluator(), 2, (0.5,), (0.01,), target_accuracy=0.9, target_sparsity=0.6)
    optimum, _ = exact_optimum(env, 0.9, 100)
    assert hill_climb(env, 0.9, (0, 0)) == (optimum, 2)  # (0, 0) -> (1, 0) -> (1, 1)
    assert hill_climb(env, 0.9, optimum) == (optimum, 0)

    grid = _grid_env()
    plans = list(itertools.product(range(3), repeat=2))
    for start in plans:
        end, moves = hill_climb(grid, 0.9, start)
        value = grid.discounted_return(end, 0.9)
        assert value >= grid.discounted_return(start, 0.9) and (moves == 0) == (end == start)
        neighbours = [p for p in plans if sum(a != b for a, b in zip(p, end, strict=True)) == 1]
        assert all(grid.discounted_return(p, 0.9) <= value + 1e-12 for p in neighbours)  # a local optimum


def test_a_run_logs_the_committed_plan_against_the_optimum(tmp_path, tiny):
    config = _q(tiny, **{"qlearning.episodes": 200, "rounds": 2})
    run = run_imp(config, tmp_path, progress=False)
    log = pd.read_csv(run / paths.QLEARNING_ROUNDS)
    assert set(log["commit"]) == {"climb"}
    assert (log["climb_moves"] >= 0).all()
    assert (log["committed_discounted_return"] >= log["greedy_discounted_return"] - 1e-12).all()
    assert (log["committed_is_optimal"] == (log["committed_discounted_return"]
                                            >= log["optimal_discounted_return"] - 1e-9)).all()
    assert (log["plans_played"] >= 1).all()
    assert ((log["optimum_seconds"] > 0) & (log["optimum_seconds"] <= log["seconds"])).all()


def test_previous_actions_in_the_state_remove_the_aliasing_and_the_greedy_plan_reaches_the_optimum():
    aliased = PruningEnv(AliasedEvaluator(), 2, (0.5,), (0.01,), target_accuracy=0.9, target_sparsity=0.6)
    env = PruningEnv(AliasedEvaluator(), 2, (0.5,), (0.01,), target_accuracy=0.9, target_sparsity=0.6, history=1)
    assert env.space.n_states == aliased.space.n_states * 3  # one more dimension: action 0, 1 or "no layer"
    assert env.state_of((0,)) != env.state_of((1,))
    assert PruningEnv(AliasedEvaluator(), 2, (0.5,), (0.01,), target_accuracy=0.9, target_sparsity=0.6,
                      history=4).space.sizes == env.space.sizes  # capped at n_layers - 1
    optimum, value = exact_optimum(env, 0.9, 100)
    assert (optimum, value) == exact_optimum(aliased, 0.9, 100)  # the same MDP: rewards do not see the state
    for history, environment in ((0, aliased), (1, env)):
        agent = QLearningAgent(environment.space.n_states, 2, alpha=make_schedule("constant", 0.1),
                               epsilon=make_schedule("linear", 1.0, 0.0, 300), gamma=0.9, seed=0)
        for _ in range(400):
            agent.run_episode(environment, max_steps=2)
        greedy = greedy_rollout(environment, agent.table.values)[0]
        assert (greedy == optimum) == (history == 1), history


def test_a_run_with_state_history_plans_heatmaps_and_rejects_a_table_of_another_history(tmp_path, tiny):
    from mdp_prune import viz

    run = run_imp(_q(tiny, rounds=1, **{"qlearning.state_history": 1}), tmp_path / "h1", progress=False)
    table = QTable.load(paths.qtable_file(run, paths.qtable_rounds(run)[-1]))
    plain = run_imp(_q(tiny, rounds=1, **{"qlearning.state_history": 0}), tmp_path / "h0", progress=False)
    base = QTable.load(paths.qtable_file(plain, paths.qtable_rounds(plain)[-1]))
    assert table.n_states == base.n_states * (len(tiny().prune.actions) + 1)
    config = _q(tiny, **{"qlearning.state_history": 1})
    n_layers = len(viz.layer_names(run))
    assert np.prod(config.qlearning.state_sizes(n_layers, len(config.prune.actions))) == table.n_states
    snapshot = viz.qtable_snapshot(run)
    assert snapshot["values"].shape == base.values.shape
    assert snapshot["visits"].sum() == table.visits.sum()  # folded, nothing lost
    viz.qtable_heatmaps(**snapshot)
    with pytest.raises(UserError, match="state-history"):
        QLearningPlanner(_q(tiny, **{"qlearning.init_qtable": str(plain), "qlearning.state_history": 1})
                         )._ensure_agent(table.n_states)
