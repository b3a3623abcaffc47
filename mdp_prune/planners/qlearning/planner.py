"""The `qlearning` planner: each round, Q-learning on the round's pruning MDP, then a plan is committed.

The committed plan is, by default (`commit = "climb"`), the best of the greedy plan and every plan the round's
episodes played, hill-climbed one layer at a time: the states alias plans (they keep only buckets of a plan's
prefix), so Q's greedy plan can miss an optimum the episodes have already scored, and the episodes' best plan can
sit one layer away from an optimum they never played. `commit = "best"` stops before the climb, `commit =
"greedy"` commits the greedy plan itself.

The Q-table persists across rounds (states carry the sparsity bucket, so rounds meet in different regions of
it); the exploration schedules restart every round because every round is a new MDP instance (new weights).
The retrained validation accuracy of the committed plan can be fed back as a terminal reward.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mdp_prune.config import RETRAINING_KINDS, RunConfig
from mdp_prune.engine import pruning
from mdp_prune.engine.training import derive_seed
from mdp_prune.errors import UserError
from mdp_prune.planners.base import Planner, RoundContext
from mdp_prune.planners.proxies import (
    MAX_ENUMERATED_PLANS,
    RetrainedProxy,
    all_prefixes,
    plan_space_size,
    proxy_iterations,
)
from mdp_prune.planners.qlearning.env import (
    CommittedBudgetEnv,
    ProxyEvaluator,
    PruningEnv,
    exact_optimum,
    greedy_rollout,
    hill_climb,
    paired_z,
    purl_reward,
)
from mdp_prune.store import io, paths
from qtable import QLearningAgent, QTable, make_schedule


class _PerRound:
    """A schedule restarted at every round: step -> base(step mod episodes_per_round)."""

    def __init__(self, base: Any, episodes: int) -> None:
        self.base, self.episodes = base, episodes

    def __call__(self, step: int) -> float:
        return self.base(step % self.episodes)


class QLearningPlanner(Planner):
    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.q = config.qlearning
        self.agent: QLearningAgent | None = None
        self._pending_state: dict[str, Any] | None = None
        self.dense_proxy_accuracy: float | None = None
        self.dense_val_accuracy: float | None = None
        self.reference_val_accuracy = 0.0  # budget_reward committed: the validation accuracy of the pruned network
        self.committed: list[tuple] = []  # transitions of the last committed plan, for the feedback reward
        self.committed_sparsity = 0.0

    # -- construction, lazily: the number of layers is known only from the first round's model ---------------

    def _env(self, ctx: RoundContext) -> tuple[PruningEnv, ProxyEvaluator]:
        evaluator = ProxyEvaluator(ctx.model, ctx.weights, ctx.masks, self.config.prune.actions,
                                   *ctx.splits.proxy_images(self.q.proxy_examples))
        if self._judges_committed():
            return self._committed_budget_env(ctx, evaluator), evaluator
        reward_evaluator = evaluator
        if self.q.proxy in RETRAINING_KINDS:
            if ctx.retrainer is None:
                raise UserError(f"--proxy {self.q.proxy} needs the IMP loop's retrainer")
            iterations = proxy_iterations(self.q.proxy_share, self.config.train)
            retrainer, kind = ctx.retrainer, self.q.proxy

            def retrain(masks: dict[str, torch.Tensor]) -> float:
                return retrainer.accuracy(kind, masks, iterations)

            reward_evaluator = RetrainedProxy(evaluator, retrain, self.q.proxy_candidates)
            if self.dense_proxy_accuracy is None:  # round 0: the dense mask itself, retrained the same way
                self.dense_proxy_accuracy = retrain(evaluator.plan_masks(()))
        if self.dense_proxy_accuracy is None:  # round 0: the dense network is the reference
            self.dense_proxy_accuracy = evaluator.accuracy(())
        if self.dense_val_accuracy is None:
            self.dense_val_accuracy = ctx.result.val_accuracy
        env = PruningEnv(evaluator, len(self.config.prune.actions), self.q.accuracy_edges, self.q.sparsity_edges,
                         target_accuracy=self.q.target_accuracy * self.dense_proxy_accuracy,
                         target_sparsity=self._target_sparsity(ctx), beta=self.q.beta,
                         reward_evaluator=reward_evaluator, history=self.q.state_history)
        self._ensure_agent(env.space.n_states)
        return env, evaluator

    @property
    def _max_fraction(self) -> float:
        """The largest fraction of a layer's remaining weights one round may prune: the largest action."""
        return max(self.config.prune.actions)

    def _judges_committed(self) -> bool:
        return self.q.budget == "lt" and self.q.budget_reward in ("committed", "retrained")

    def _retrained_pick(self, ctx: RoundContext, env: CommittedBudgetEnv, evaluator: ProxyEvaluator,
                        chosen: tuple[int, ...]) -> tuple[tuple[int, ...], dict[str, Any]]:
        """`--budget-reward retrained`: the plan committed among the `proxy_candidates` best distinct rescaled
        plans by the pruned proxy (the round's choice `chosen` always among them), by the accuracy of each after
        `proxy_share` of a round's steps of `--proxy`; ties keep the pruned proxy's order.

        Every rescaled plan removes the same count, so retraining can only re-rank allocations; it is spent
        where the pruned proxy is least trusted, between the allocations it rates close to the best."""
        if ctx.retrainer is None:
            raise UserError("--budget-reward retrained needs the IMP loop's retrainer")
        gamma, n_layers, n_actions = self.agent.gamma, evaluator.n_layers, len(self.config.prune.actions)  # type: ignore[union-attr]
        pool = (itertools.product(range(n_actions), repeat=n_layers)
                if plan_space_size(n_layers, n_actions) <= MAX_ENUMERATED_PLANS
                else [tuple([a] * n_layers) for a in range(n_actions)])
        chosen_counts = evaluator.budget_counts(chosen, env.budget, env.max_fraction)
        by_counts = {chosen_counts: chosen}
        for plan in pool:  # the first plan of each rescaled allocation stands for it
            by_counts.setdefault(evaluator.budget_counts(plan, env.budget, env.max_fraction), plan)
        # sorted is stable, so on ties `chosen` (first in the pool) keeps its place ahead
        ranked = sorted(by_counts.items(), key=lambda item: -env.discounted_return(item[1], gamma))
        picked = ranked[:self.q.proxy_candidates]
        if chosen not in [plan for _, plan in picked]:
            picked[-1] = (chosen_counts, chosen)
        iterations = proxy_iterations(self.q.proxy_share, self.config.train)
        candidates = [plan for _, plan in picked]
        scores = [ctx.retrainer.accuracy(self.q.proxy, evaluator.counts_masks(counts), iterations)
                  for counts, _ in picked]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        return candidates[best], {"retrained_candidates": len(candidates), "retrained_pick_rank": best,
                                  "retrained_accuracy": scores[best], "retrained_accuracy_of_choice":
                                  scores[candidates.index(chosen)]}

    def _committed_budget_env(self, ctx: RoundContext, evaluator: ProxyEvaluator) -> CommittedBudgetEnv:
        # Every rescaled plan removes the same count, so a retraining proxy's candidates (one per share removed)
        # would add one constant to all of them: the pruned proxy alone ranks them (`retrained` then re-ranks
        # the best few by retraining, outside the MDP).
        if self.dense_val_accuracy is None:
            self.dense_proxy_accuracy, self.dense_val_accuracy = evaluator.accuracy(()), ctx.result.val_accuracy
        self.reference_val_accuracy = ctx.result.val_accuracy
        env = CommittedBudgetEnv(evaluator, len(self.config.prune.actions), self.q.accuracy_edges,
                                 self.q.sparsity_edges, budget=evaluator.kept_total - self._lt_kept(ctx),
                                 max_fraction=self._max_fraction, beta=self.q.beta,
                                 history=self.q.state_history)
        self._ensure_agent(env.space.n_states)
        return env

    def _n_states(self, ctx: RoundContext) -> int:
        return math.prod(self.q.state_sizes(len(ctx.masks), len(self.config.prune.actions)))

    def _free_target_sparsity(self) -> float:
        """T_P in free mode: never short of the run's own target, or the reward would stop asking for sparsity
        before the run may stop (a run aiming at 3.58 % remaining stalled at 3.63 % with T_P at 96.4 %)."""
        target_remaining = self.config.prune.target_remaining
        return max(self.q.target_sparsity, 1.0 - target_remaining) if target_remaining > 0 else self.q.target_sparsity

    def stale_round(self, log: pd.DataFrame) -> int | None:
        if log.empty or "round" not in log.columns:
            return None
        rounds = pd.to_numeric(log["round"], errors="coerce")
        stale = pd.Series(False, index=log.index)
        # Free-mode runs planned before T_P was raised to the run's own target stalled short of it.
        if self.q.budget == "free" and "target_sparsity" in log.columns:
            logged = pd.to_numeric(log["target_sparsity"], errors="coerce")
            stale |= ~((logged - self._free_target_sparsity()).abs() <= 1e-9)
        # Rounds logged before the commit rule existed committed the greedy plan.
        commit = log["commit"].fillna("greedy") if "commit" in log.columns else pd.Series("greedy", index=log.index)
        stale |= commit.astype(str) != self.q.commit
        stale_rounds = rounds[rounds.notna() & stale]
        return int(stale_rounds.min()) if len(stale_rounds) else None

    def _target_sparsity(self, ctx: RoundContext) -> float:
        if self.q.budget == "free":
            return self._free_target_sparsity()
        # Budget mode aims the reward at this round's lt sparsity: pruning past it earns nothing.
        return 1.0 - self._lt_kept(ctx) / sum(m.numel() for m in ctx.masks.values())

    def _lt_kept(self, ctx: RoundContext) -> int:
        """Weights (a count) the lt baseline keeps after this round's pruning, its (ctx.round + 1)-th."""
        shapes = {n: m.shape for n, m in ctx.masks.items()}
        return sum(pruning.lt_ladder(shapes, self.config.prune, ctx.round + 1)[-1].values())

    def _ensure_agent(self, n_states: int) -> None:
        if self.agent is not None:
            return
        q, episodes = self.q, self.q.episodes
        steps = max(1, int(q.explore_fraction * episodes))
        self.agent = QLearningAgent(
            n_states, len(self.config.prune.actions),
            alpha=_PerRound(make_schedule(q.alpha_schedule, q.alpha, q.alpha_end, steps, q.decay), episodes),
            epsilon=_PerRound(make_schedule(q.epsilon_schedule, q.epsilon, q.epsilon_end, steps, q.decay), episodes),
            gamma=q.gamma, initial_value=q.initial_q,
            seed=derive_seed(self.config.train.seed, "qlearning") % 2**32,
        )
        if self._pending_state is not None:
            self.agent.load_state_dict(self._pending_state)
            self._pending_state = None
        elif self.q.init_qtable:
            self.agent.table.values[:] = self._warm_start_values(n_states)

    def _warm_start_values(self, n_states: int) -> np.ndarray:
        """The final Q-values of the run folder `init_qtable` (states are relative, so they transfer)."""
        run = Path(self.q.init_qtable)
        tables = [paths.qtable_file(run, r) for r in paths.qtable_rounds(run)]
        if not tables:
            raise UserError(f"--init-qtable {run}: no Q-table found (expected {paths.qtable_file(run, 0)} ...)")
        try:
            table = QTable.load(tables[-1])
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"--init-qtable: cannot read {tables[-1]} ({e})") from None
        expected = (n_states, len(self.config.prune.actions))
        if table.values.shape != expected:
            raise UserError(f"--init-qtable: {tables[-1]} holds a {table.values.shape[0]}x{table.values.shape[1]} "
                              f"Q-table, this run needs {expected[0]}x{expected[1]} (other layers, actions or "
                              "bucket edges, or another --state-history)")
        return table.values

    # -- the planner protocol ---------------------------------------------------------------------------------

    def observe(self, ctx: RoundContext) -> None:
        if not (self.q.feedback and self.committed and self.dense_val_accuracy):
            return
        self._ensure_agent(self._n_states(ctx))
        assert self.agent is not None
        # The retrained validation accuracy replaces the proxy in the committed plan's last reward.
        state, action, _, next_state, _ = self.committed[-1]
        reward = self._feedback_reward(ctx.result.val_accuracy)
        self.agent.table.update(state, action, reward, None, True, self.agent.current_alpha, self.agent.gamma)

    def _feedback_reward(self, val_accuracy: float) -> float:
        if self._judges_committed():  # the retrained drop, on the scale of CommittedBudgetEnv's reward
            return -self.q.beta * (self.reference_val_accuracy - val_accuracy)
        return purl_reward(val_accuracy, self.committed_sparsity, self.q.target_accuracy * self.dense_val_accuracy,
                           self._target_for_feedback(), self.q.beta)

    def _target_for_feedback(self) -> float:
        return self._free_target_sparsity() if self.q.budget == "free" else self.committed_sparsity

    def propose(self, ctx: RoundContext) -> dict[str, float]:
        began = time.perf_counter()
        env, evaluator = self._env(ctx)
        agent = self.agent
        assert agent is not None
        before = agent.table.values.copy()
        logs, played = [], set()
        for episode in range(self.q.episodes):
            log = agent.run_episode(env, max_steps=evaluator.n_layers)
            played.add(env.plan)
            plan, _, _ = greedy_rollout(env, agent.table.values)
            logs.append({"round": ctx.round, "episode": episode, "epsilon": log.epsilon, "alpha": log.alpha,
                         "return": log.return_, "max_abs_dq": log.max_abs_dq, "mean_abs_dq": log.mean_abs_dq,
                         "greedy_plan": "/".join(f"{self.config.prune.actions[a]:g}" for a in plan)})
        greedy_plan, transitions, greedy_return = greedy_rollout(env, agent.table.values)
        enumerating = time.perf_counter()
        n_actions = len(self.config.prune.actions)
        if plan_space_size(evaluator.n_layers, n_actions) <= MAX_ENUMERATED_PLANS:
            evaluator.accuracies(all_prefixes(evaluator.n_layers, n_actions))  # one sweep, not plan by plan
        optimum = exact_optimum(env, agent.gamma, MAX_ENUMERATED_PLANS)
        optimum_seconds = time.perf_counter() - enumerating
        chosen, climb_moves = greedy_plan, 0
        if self.q.commit in ("best", "climb"):
            chosen = best_played(env, agent.gamma, greedy_plan, played)
        if self.q.commit == "climb":
            chosen, climb_moves = hill_climb(env, agent.gamma, chosen)
        plan = forced = self._keeps_pruning(ctx, env, chosen)
        if forced is None:
            plan = chosen
        retrained: dict[str, Any] = {}
        if self._judges_committed() and self.q.budget_reward == "retrained":
            plan, retrained = self._retrained_pick(ctx, env, evaluator, chosen)  # type: ignore[arg-type]
        anchor: dict[str, Any] = {}
        anchor_counts = None
        budget = evaluator.kept_total - self._lt_kept(ctx) if self.q.budget == "lt" else 0
        if self.q.anchored():
            plan, anchor_counts, anchor = self._anchored(ctx, evaluator, plan, budget)
        if plan != greedy_plan:
            transitions = _transitions(env, plan)
        fractions = {n: self.config.prune.actions[a] for n, a in zip(evaluator.names, plan, strict=True)}
        if self.q.budget == "lt":  # CommittedBudgetEnv's reward rescales with the same function, so it judges this
            kept = dict(zip(evaluator.names, evaluator.kept, strict=True))
            # The correction stays within the action set: a greedy plan that prunes one layer only must not put
            # the whole round's budget on that layer.
            fractions = (pruning.count_fractions(dict(zip(evaluator.names, anchor_counts, strict=True)), kept)
                         if anchor_counts is not None else
                         pruning.match_budget(fractions, kept, budget, max_fraction=self._max_fraction))
        self.committed = transitions
        self.committed_sparsity = 1.0 - sum(
            k - pruning.prune_count(k, fractions[n]) for n, k in zip(evaluator.names, evaluator.kept, strict=True)
        ) / evaluator.total
        self._write_diagnostics(ctx, env, evaluator, logs, before, greedy_return, time.perf_counter() - began,
                                greedy_plan, chosen, plan, optimum, optimum_seconds, len(played), climb_moves,
                                retrained, anchor)
        return fractions

    def _anchored(self, ctx: RoundContext, evaluator: ProxyEvaluator, plan: tuple[int, ...],
                  budget: int) -> tuple[tuple[int, ...], tuple[int, ...] | None, dict[str, Any]]:
        """`--anchor-z`: `plan`, or the anchor's allocation of the round's count (`--anchor`: lt's or ERK's)
        unless `plan` beats it on the proxy's examples by `anchor_z` paired standard errors. Returns the plan, the
        counts to commit (None: the plan's own rescaled counts) and the diagnostics.

        The round's plan is the best of ~100 distinct allocations by a score that differs between them by a few
        of the 1,000 proxy examples, so early in a run it is mostly the luckiest one (docs/results.md); the
        anchor's allocation is what a researcher gets without a planner, and deviating from it should need
        evidence."""
        max_fraction = self._max_fraction
        anchor_plan, anchor_counts = (self._lt_anchor if self.q.anchor == "lt" else self._erk_anchor)(
            ctx, evaluator, budget)
        counts = evaluator.budget_counts(plan, budget, max_fraction)
        if counts == anchor_counts:
            z, wins, losses = 0.0, 0, 0
        else:
            z, wins, losses = paired_z(evaluator.counts_correct(counts), evaluator.counts_correct(anchor_counts))
        keeps_anchor = counts != anchor_counts and z < self.q.anchor_z
        info = {"anchor_z": z, "anchor_wins": wins, "anchor_losses": losses, "anchor_committed": keeps_anchor}
        return (anchor_plan, anchor_counts, info) if keeps_anchor else (plan, None, info)

    def _lt_anchor(self, ctx: RoundContext, evaluator: ProxyEvaluator,
                   budget: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """lt's allocation as a plan of --actions and as counts: lt's per-layer fractions of each layer's remaining
        weights, its exact counts when they remove the round's count (always, while every earlier round kept it),
        else rescaled to it."""
        shapes = {n: ctx.masks[n].shape for n in evaluator.names}
        lt = pruning.lt_fractions(shapes, self.config.prune)
        lt_plan = pruning.lt_action_plan(shapes, self.config.prune)  # complete: `check_names` saw to it
        anchor_plan = tuple(lt_plan[n] for n in evaluator.names)
        exact = tuple(pruning.prune_count(k, lt[n]) for n, k in zip(evaluator.names, evaluator.kept, strict=True))
        if sum(exact) == budget:
            return anchor_plan, exact
        return anchor_plan, evaluator.budget_counts(anchor_plan, budget, self._max_fraction)

    def _erk_anchor(self, ctx: RoundContext, evaluator: ProxyEvaluator,
                    budget: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """ERK's allocation of the round's count: the erk baseline's fractions at the density the count leaves,
        rescaled to remove exactly the count. ERK's fractions are not in --actions, so the plan whose transitions
        the Q-table is told about is the nearest action of each layer's committed fraction."""
        masks = {n: ctx.masks[n] for n in evaluator.names}
        density = (evaluator.kept_total - budget) / evaluator.total
        kept = dict(zip(evaluator.names, evaluator.kept, strict=True))
        counts = pruning.budget_counts(pruning.erk_fractions(masks, density), kept, budget,
                                       self._max_fraction)
        actions = np.asarray(self.config.prune.actions)
        fractions = pruning.count_fractions(counts, kept)
        anchor_plan = tuple(int(np.argmin(np.abs(actions - fractions[n]))) for n in evaluator.names)
        return anchor_plan, tuple(counts[n] for n in evaluator.names)

    def _keeps_pruning(self, ctx: RoundContext, env: PruningEnv, plan: tuple[int, ...]) -> tuple[int, ...] | None:
        """Free mode's stopping rule: a greedy plan that prunes nothing ends the run only once the retrained
        validation accuracy has left the tolerance (target_accuracy x dense). While it is within, the best plan
        that prunes something is committed instead (None: keep the greedy plan)."""
        actions = self.config.prune.actions
        if self.q.budget != "free" or any(actions[a] > 0 for a in plan) or not any(actions):
            return None
        if ctx.result.val_accuracy < self.q.target_accuracy * self.dense_val_accuracy:
            return None
        n_layers = env.evaluator.n_layers
        if len(actions) ** n_layers <= MAX_ENUMERATED_PLANS:
            plans = [p for p in itertools.product(range(len(actions)), repeat=n_layers) if any(actions[a] for a in p)]
        else:  # the same smallest non-zero fraction everywhere
            plans = [tuple([next(i for i, a in enumerate(actions) if a > 0)] * n_layers)]
        return max(plans, key=lambda p: env.discounted_return(p, self.agent.gamma))  # type: ignore[union-attr]

    def _write_diagnostics(self, ctx: RoundContext, env: PruningEnv, evaluator: ProxyEvaluator, logs: list[dict],
                           before: np.ndarray, greedy_return: float, seconds: float, greedy: tuple[int, ...],
                           chosen: tuple[int, ...], committed: tuple[int, ...],
                           optimum: tuple[tuple[int, ...], float] | None, optimum_seconds: float,
                           n_played: int, climb_moves: int, retrained: dict[str, Any],
                           anchor: dict[str, Any]) -> None:
        run, table, gamma = ctx.run_dir, self.agent.table, self.agent.gamma  # type: ignore[union-attr]
        visited = table.visits.sum(1) > 0
        changed = int(np.sum(visited & (np.argmax(before, 1) != np.argmax(table.values, 1))))
        io.replace_round(run / paths.QLEARNING_LOG, ctx.round, logs)
        table.save(paths.qtable_file(run, ctx.round))
        last_plans = {row["greedy_plan"] for row in logs[-max(1, len(logs) // 10):]}
        summary = {"round": ctx.round, "episodes": len(logs), "greedy_return": greedy_return,
                   "greedy_plan": logs[-1]["greedy_plan"], "plan_stable_last_10pct": len(last_plans) == 1,
                   "final_max_abs_dq": logs[-1]["max_abs_dq"], "first_max_abs_dq": logs[0]["max_abs_dq"],
                   "greedy_changes": changed, "states_visited": int(visited.sum()),
                   "state_action_pairs_visited": int((table.visits > 0).sum()),
                   "state_action_pairs": int(table.visits.size), "proxy_evaluations": evaluator.evaluations,
                   "proxy_lookups": evaluator.lookups, "reference_proxy_accuracy": env.reference_accuracy,
                   "target_sparsity": env.target_sparsity, "seconds": seconds,
                   "proxy": "pruned" if self._judges_committed() and not retrained else self.q.proxy,
                   "proxy_iterations": ctx.retrainer.iterations if ctx.retrainer else 0,
                   "commit": self.q.commit, "plans_played": n_played, "climb_moves": climb_moves,
                   "committed_plan": self._plan_text(committed),
                   "forced_nonempty": committed != chosen and not retrained and not anchor,
                   "greedy_discounted_return": env.discounted_return(greedy, gamma),
                   "committed_discounted_return": env.discounted_return(committed, gamma), **retrained, **anchor}
        if optimum is not None:
            # The diagnostic's own cost, inside `seconds`: it evaluates every plan prefix the episodes did not.
            summary.update(optimum_seconds=optimum_seconds,
                           optimal_plan=self._plan_text(optimum[0]), optimal_discounted_return=optimum[1],
                           greedy_is_optimal=bool(summary["greedy_discounted_return"] >= optimum[1] - 1e-9),
                           committed_is_optimal=bool(summary["committed_discounted_return"] >= optimum[1] - 1e-9))
        io.replace_round(run / paths.QLEARNING_ROUNDS, ctx.round, [summary])

    def _plan_text(self, plan: tuple[int, ...]) -> str:
        return "/".join(f"{self.config.prune.actions[a]:g}" for a in plan)

    # -- checkpointing ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        agent = self.agent.state_dict() if self.agent is not None else self._pending_state
        if agent is not None:
            agent = {**agent, "values": torch.as_tensor(agent["values"]), "visits": torch.as_tensor(agent["visits"])}
        return {"agent": agent, "dense_proxy_accuracy": self.dense_proxy_accuracy,
                "dense_val_accuracy": self.dense_val_accuracy, "reference_val_accuracy": self.reference_val_accuracy,
                "committed": [list(t) for t in self.committed], "committed_sparsity": self.committed_sparsity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        agent = state["agent"]
        if agent is not None:
            agent = {**agent, "values": agent["values"].numpy(), "visits": agent["visits"].numpy()}
        self._pending_state = agent
        self.agent = None
        self.dense_proxy_accuracy = state["dense_proxy_accuracy"]
        self.dense_val_accuracy = state["dense_val_accuracy"]
        self.reference_val_accuracy = state.get("reference_val_accuracy", 0.0)  # absent before budget_reward
        self.committed = [tuple(t) for t in state["committed"]]
        self.committed_sparsity = state["committed_sparsity"]


def best_played(env: PruningEnv, gamma: float, greedy: tuple[int, ...],
                played: set[tuple[int, ...]]) -> tuple[int, ...]:
    """The plan of highest discounted return among the greedy plan and the plans the episodes played.

    Within a round the MDP is deterministic, so every played plan's return is known exactly (and cached). The
    greedy plan of an aliased state space can miss a plan the episodes have already found; committing the best
    one costs nothing. Ties keep the greedy plan, then the lowest plan in product order."""
    best, best_return = greedy, env.discounted_return(greedy, gamma)
    for plan in sorted(played):
        value = env.discounted_return(plan, gamma)
        if value > best_return + 1e-12:
            best, best_return = plan, value
    return best


def _transitions(env: PruningEnv, plan: tuple[int, ...]) -> list[tuple]:
    """The transitions of following `plan` from the start (for the feedback reward of a plan Q did not choose)."""
    state, _ = env.reset()
    out = []
    for action in plan:
        next_state, reward, terminated, _, _ = env.step(action)
        out.append((state, action, reward, next_state, terminated))
        state = next_state
    return out
