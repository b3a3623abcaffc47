"""Typed, frozen run configuration, its presets and its hash.

Every setting a run depends on lives here, so that a configuration fully names a run: the results store
derives the run folder from `RunConfig.hash()`. Fields left at their default do not enter the hash, so adding
a field later keeps the folders of earlier runs valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdp_prune.errors import UserError
from qtable import SCHEDULE_KINDS, Discretizer


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


# The reward's accuracy signals (planners/proxies.py): the cheap one, then those that retrain briefly.
PROXY_KINDS = ("pruned", "finetune", "rewind")
RETRAINING_KINDS = PROXY_KINDS[1:]
COMMIT_RULES = ("climb", "best", "greedy")
ANCHOR_KINDS = ("lt", "erk")  # budget mode's default allocation: lt's layer rates, or ERK's densities
MAX_STATE_HISTORY = 4


def state_sizes(n_layers: int, n_accuracy_buckets: int, n_sparsity_buckets: int, n_actions: int,
                history: int) -> tuple[int, ...]:
    """The Q-table's state layout (docs/design.md, section 2): layer 0..n_layers (n_layers: terminal), accuracy
    bucket, sparsity bucket, then the actions of up to `history` layers before, nearest first (index n_actions:
    no layer there). More history than n_layers - 1 layers adds nothing, so it is capped there."""
    kept = max(0, min(history, n_layers - 1))
    return (n_layers + 1, n_accuracy_buckets, n_sparsity_buckets, *([n_actions + 1] * kept))


@dataclass(frozen=True)
class TrainConfig:
    """What the dense network and each round's retraining depend on (and nothing else)."""

    dataset: str = _opt("digits", "dataset: digits (embedded), fashion-mnist, mnist, cifar10")
    model: str = _opt("lenet_300_100", "model: lenet_300_100, mlp, conv2, conv4, conv6")
    hidden_sizes: tuple[int, ...] = _opt((300, 100), "hidden layer widths of the mlp model")
    seed: int = _opt(0, "seed of the initialisation, the data order and every random draw of the run")
    train_iterations: int = _opt(1000, "optimizer steps per training run (T)")
    rewind_iteration: int = _opt(0, "iteration k whose weights the survivors rewind to (0: original ticket)")
    batch_size: int = _opt(60, "examples per optimizer step")
    optimizer: str = _opt("adam", "optimizer: adam or sgd")
    lr: float = _opt(1.2e-3, "learning rate")
    momentum: float = _opt(0.9, "momentum (sgd only)")
    eval_every: int = _opt(100, "iterations between validation evaluations (early-stopping iteration)")
    proxy_holdout: int = _opt(0, "validation examples set aside for the planner's proxy and left out of every "
                              "validation figure (selection, feedback, stopping, reports); 0: none, the proxy "
                              "reads validation's first qlearning.proxy_examples images (retraining proxies all "
                              "of validation). Training never reads validation, so test figures do not change")

    def validate(self) -> None:
        # Dataset and model names are checked where their registries are looked up (`check_names`).
        check_fields(self, "train")
        if self.rewind_iteration >= self.train_iterations:
            raise UserError(
                f"--rewind-iteration must be in [0, train_iterations={self.train_iterations}), "
                f"got {self.rewind_iteration}"
            )


@dataclass(frozen=True)
class PruneConfig:
    """How each round's pruning fractions are chosen."""

    planner: str = _opt("lt", "planner: lt, global, random, lamp, erk, qlearning")
    prune_fc: float = _opt(0.2, "lt: fraction of a hidden fully connected layer's remaining weights pruned")
    prune_conv: float = _opt(0.1, "lt: fraction of a conv layer's remaining weights pruned per round")
    prune_output: float = _opt(0.1, "lt: fraction of the output layer's remaining weights pruned per round")
    prune_global: float = _opt(0.2, "global, lamp, erk: fraction of all remaining weights pruned per round")
    actions: tuple[float, ...] = _opt(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), "random, qlearning: the ordered set of per-layer prune fractions"
    )
    target_remaining: float = _opt(0.0, "stop after the first round at or below this fraction of weights (0: never)")

    def validate(self) -> None:
        # The planner name is checked where the registry is looked up (`check_names`).
        check_fields(self, "prune")


@dataclass(frozen=True)
class QLearningConfig:
    """The pruning MDP and its tabular Q-learning (docs/design.md, section 2); used by `--planner qlearning`."""

    episodes: int = _opt(600, "Q-learning episodes per round (one episode walks every prunable layer)")
    alpha: float = _opt(1.0, "learning rate alpha of the Q update (start value of its schedule; within a round the MDP "
                        "is deterministic, so 1 makes Q(s, a) its backed-up value at once)")
    alpha_schedule: str = _opt("constant", "alpha schedule over a round's episodes: constant, linear, exponential")
    alpha_end: float = _opt(0.01, "final alpha of a linear or exponential schedule")
    gamma: float = _opt(0.9, "discount gamma")
    epsilon: float = _opt(1.0, "exploration epsilon (start value of its schedule)")
    epsilon_schedule: str = _opt("linear", "epsilon schedule over a round's episodes: constant, linear, exponential")
    epsilon_end: float = _opt(0.0, "final epsilon of a linear or exponential schedule")
    explore_fraction: float = _opt(0.8, "share of a round's episodes over which linear schedules decay")
    decay: float = _opt(0.98, "per-episode factor of exponential schedules")
    initial_q: float = _opt(0.0, "initial value of every Q(s, a); rewards are at most 0, so 0 is optimistic: every "
                            "action looks best until tried, and the greedy episodes go on exploring")
    accuracy_edges: tuple[float, ...] = _opt(
        (0.005, 0.01, 0.02, 0.05, 0.1, 0.2), "bucket edges of the proxy accuracy drop below the round's unpruned one"
    )
    sparsity_edges: tuple[float, ...] = _opt(
        (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64), "bucket edges (log scale) of the fraction of weights remaining"
    )
    target_accuracy: float = _opt(
        1.0, "T_A as a multiple of the dense network's proxy accuracy (1 - the tolerated accuracy drop): below it "
        "the reward's accuracy hinge penalises a plan")
    target_sparsity: float = _opt(0.964, "T_P: fraction of prunable weights removed that the reward aims at (free "
                                  "mode: at least 1 - target_remaining when that is set)")
    beta: float = _opt(1.0, "reward scale beta")
    budget: str = _opt("free", "free: the reward sets the pace; lt: each round removes exactly the lt baseline's share")
    budget_reward: str = _opt("committed", "budget lt: what the reward judges. committed: only the pruned proxy's "
                              "accuracy drop of the plan as rescaled to lt's count and committed (no retraining proxy "
                              "is run); retrained: the same, then the proxy_candidates best distinct rescaled plans "
                              "are retrained with --proxy (finetune or rewind) for proxy_share of a round's steps and "
                              "the best of them is committed; plan: PuRL's reward of the plan before it is rescaled")
    anchor_z: float = _opt(2.0, "budget lt: commit the planner's allocation only when, on the proxy's validation "
                           "examples, it beats the anchor's allocation of the same count (--anchor: lt's own by "
                           "default) by at least this many paired standard errors (McNemar's (wins - losses) / "
                           "sqrt(wins + losses)); otherwise commit the anchor's. 0: always commit the planner's. "
                           "Free mode ignores it")
    anchor: str = _opt("lt", "budget lt, anchor_z > 0: the allocation of the round's count that the planner's must "
                       "beat. lt: lt's per-layer rates (its fractions must be in --actions); erk: ERK's layer "
                       "densities (Evci et al. 2020) at the round's overall density, as the erk baseline allocates "
                       "them. Free mode ignores it")
    feedback: bool = _opt(True, "feed the retrained validation accuracy back as a terminal reward of the plan")
    proxy_examples: int = _opt(1000, "validation examples used for the pruned proxy (a fixed subset)")
    proxy: str = _opt("rewind", "the reward's accuracy signal: pruned (trained weights under the plan's mask, no "
                      "retraining), finetune (then proxy_share of a round's steps), rewind (survivors rewound to "
                      "W_k and retrained for proxy_share of a round's steps); retraining kinds score "
                      "proxy_candidates plans per round")
    proxy_share: float = _opt(0.02, "finetune, rewind: share of a round's retraining steps (T - k) each candidate "
                              "is trained for")
    proxy_candidates: int = _opt(6, "finetune, rewind: plans per round scored by retraining (one per group of plans "
                                 "removing a similar share of the weights)")
    init_qtable: str = _opt("", "run folder whose final Q-table starts this run (warm start; empty: a fresh table)")
    commit: str = _opt("climb", "the plan a round commits: greedy (Q's greedy plan), best (the plan of highest return "
                       "among the greedy plan and every plan the round's episodes played) or climb (best, then "
                       "changed one layer's action at a time while the return rises)")
    state_history: int = _opt(2, "actions of the layers just before kept in the state (0: the state is (layer, "
                              "accuracy bucket, sparsity bucket); n_layers - 1 or more: a state names its whole plan "
                              "prefix, so no two plans share Q-values; the table grows (actions + 1)x per layer kept)")

    def state_sizes(self, n_layers: int, n_actions: int) -> tuple[int, ...]:
        """This configuration's Q-table state layout for a network of `n_layers` prunable layers."""
        return state_sizes(n_layers, Discretizer(self.accuracy_edges).n_buckets,
                           Discretizer(self.sparsity_edges).n_buckets, n_actions, self.state_history)

    def anchored(self) -> bool:
        """Whether a round's allocation is tested against `anchor`'s (`anchor_z`): budget mode only."""
        return self.budget == "lt" and self.anchor_z > 0

    def validate(self) -> None:
        check_fields(self, "qlearning")
        if self.budget == "lt" and self.budget_reward == "retrained" and self.proxy not in RETRAINING_KINDS:
            raise UserError(f"--budget-reward retrained retrains with --proxy, which must be "
                            f"{' or '.join(RETRAINING_KINDS)}, not {self.proxy}")


@dataclass(frozen=True)
class RunConfig:
    """A whole IMP run. `rounds` and the fields below it do not enter the hash: a longer run extends a shorter
    one with the same settings, and paths or devices do not change what is computed."""

    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    qlearning: QLearningConfig = field(default_factory=QLearningConfig)
    rounds: int = _opt(5, "pruning rounds after the dense round 0")
    data_dir: str = _opt("", "folder with the dataset files (default: found automatically, or downloaded)")
    device: str = _opt("auto", "auto, cpu or cuda")

    HASHED = ("train", "prune", "qlearning")

    def validate(self) -> RunConfig:
        self.train.validate()
        self.prune.validate()
        self.qlearning.validate()
        check_fields(self, "")
        holdout, examples = self.train.proxy_holdout, self.qlearning.proxy_examples
        if self.prune.planner == "qlearning" and 0 < holdout < examples:
            raise UserError(f"--proxy-examples {examples} is more than the {holdout} validation examples "
                            f"--proxy-holdout sets aside for the proxy; pass --proxy-examples {holdout} or a larger "
                            "--proxy-holdout")
        return self

    def hash(self) -> str:
        # Flat dotted names, so that adding a section or a field with a default keeps existing run folders.
        # Only the qlearning planner reads its section: a changed Q-learning default must not rename (or
        # orphan) the baselines' runs.
        sections = self.HASHED if self.prune.planner == "qlearning" else ("train", "prune")
        fields = {f"{k}.{name}": v for k in sections
                  for name, v in non_default_fields(getattr(self, k), HASH_DEFAULTS.get(k, {})).items()}
        if self.qlearning.budget != "lt":  # only budget mode reads them: their new defaults must not rename free runs
            fields.pop("qlearning.budget_reward", None)
            fields.pop("qlearning.anchor_z", None)
            fields.pop("qlearning.anchor", None)
        return _digest(fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return build(cls, d)

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> RunConfig:
        """A run folder's config.json, perhaps written before some fields existed: a field it lacks takes the
        default it had then (HASH_DEFAULTS), so the folder still holds the configuration its name says."""
        if isinstance(d, dict):
            d = {**d, **{k: {**HASH_DEFAULTS[k], **d[k]} for k in HASH_DEFAULTS if isinstance(d.get(k), dict)}}
        return build(cls, d)

    def replace(self, **dotted: Any) -> RunConfig:
        """A copy with fields changed by dotted name, e.g. `replace(**{"train.lr": 1e-3})`."""
        d = self.to_dict()
        for name, value in dotted.items():
            if name not in RULES:  # every field, and only fields: not a section, not a.b.c
                raise UserError(f"unknown configuration field {_show(name)}{_did_you_mean(name)}")
            section, _, key = name.rpartition(".")
            (d[section] if section else d)[key] = value
        return build(RunConfig, d)


def train_hash(train: TrainConfig) -> str:
    """Names the dense round and rewind checkpoint that every planner with these training settings shares."""
    return _digest(non_default_fields(train))


# A changed default must not rename or orphan existing run folders: the hash compares such a field with the
# default it had when the folders were first written, not with today's. (qlearning.commit became `climb` on
# 2026-12-03, and alpha 1, initial_q 0 and state_history 2 the same day — before state_history existed its value
# was 0; budget_reward became `committed` on 2026-12-06, and anchor_z 2 on 2026-12-07. Runs of the former defaults
# keep their folders, and runs of the new ones get new folders.)
HASH_DEFAULTS: dict[str, dict[str, Any]] = {
    "qlearning": {"commit": "best", "alpha": 0.5, "initial_q": -1.0, "state_history": 0, "budget_reward": "plan",
                  "anchor_z": 0.0}}


def non_default_fields(obj: Any, baseline: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields of `obj` that differ from their defaults (from `baseline[name]` where it names one)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        default = (baseline or {}).get(f.name, default)
        if value != default:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def build(cls: type, d: Any, where: str = "") -> Any:
    """Instantiate a (nested) config dataclass from a plain dict, restoring tuples and nested sections.

    Only lossless conversions happen here (a list to a tuple, an integer to a float field's float); whether the
    values have the right types and ranges is `validate`'s question.
    """
    if not isinstance(d, dict):
        raise UserError(f"{where or 'the configuration'} must be a mapping of field names to values, got {_show(d)}")
    kwargs = {}
    types = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in d.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in types:
            raise UserError(f"unknown configuration field {_show(dotted)}{_did_you_mean(dotted)}")
        f = types[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            value = build(type(default), value, dotted)
        elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
            value = tuple(_widen(type(default[0]), v) for v in value)
        else:
            value = _widen(type(default), value)
        kwargs[key] = value
    return cls(**kwargs)


def _widen(kind: type, value: Any) -> Any:
    """An integer given for a float field is that float (JSON and YAML write 1.0 as 1); nothing else changes."""
    if kind is float and type(value) is int and abs(value) <= _FLOAT_MAX:
        return float(value)
    return value


_FLOAT_MAX = int(sys.float_info.max)


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# -- what each field accepts -------------------------------------------------------------------------------------

INT_MAX = 2**63 - 1  # every integer ends up in a 64-bit tensor, numpy or torch argument
SEED_MAX = INT_MAX  # torch.Generator.manual_seed takes train.seed itself (the init); all else derives from it


@dataclass(frozen=True)
class Rule:
    """What one field accepts: a type (bool, int, float: finite, or str), then a range or a set of choices.

    A range is `low`/`high` (None: open-ended; an int's high is then INT_MAX) with `ends` saying which of them
    belong to it, as in interval notation; `words` says the range in a message where that reads better. A tuple
    field (`items`) takes a non-empty list whose every item obeys the rule, strictly increasing if `increasing`.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    ends: str = "[]"
    words: str = ""
    choices: tuple[str, ...] = ()
    items: bool = False
    increasing: bool = False

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with `value` for the field called `name` (a flag or a dotted name), or None."""
        if self.choices:
            ok = isinstance(value, str) and value in self.choices
            return None if ok else f"{name} must be one of {', '.join(self.choices)}, got {_show(value)}"
        if not self.items:
            wrong = self._wrong(value)
            return None if wrong is None else f"{name} must be {wrong}, got {_show(value)}"
        if not isinstance(value, (tuple, list)) or not value or not all(self._is_kind(v) for v in value):
            return f"{name} must be a non-empty list of {_KINDS[self.kind][1]}, got {_show(value)}"
        wrong = next((w for w in map(self._wrong, value) if w is not None), None)
        if wrong is not None:
            return f"{name} must be {wrong} for every item, got {_show(value)}"
        if self.increasing and list(value) != sorted(set(value)):
            return f"{name} must be strictly increasing, got {_show(value)}"
        return None

    def _is_kind(self, value: Any) -> bool:
        if isinstance(value, bool):  # bool is an int subclass: True is no seed, and 1 is no boolean
            return self.kind is bool
        if self.kind is float:
            try:
                return isinstance(value, (int, float)) and math.isfinite(value)
            except OverflowError:  # an integer beyond every float
                return False
        return isinstance(value, self.kind)

    def _wrong(self, value: Any) -> str | None:
        """A scalar's type or range problem, said as what it must be; None when it is fine."""
        if not self._is_kind(value):
            return _KINDS[self.kind][0] + (f" ({self._range()})" if self._range() else "")
        if self.kind not in (int, float):
            return None
        high = INT_MAX if self.high is None and self.kind is int else self.high
        below = self.low is not None and (value < self.low if self.ends[0] == "[" else value <= self.low)
        above = high is not None and (value > high if self.ends[1] == "]" else value >= high)
        if not (below or above):
            return None
        return f"at most {INT_MAX} (a 64-bit integer)" if above and self.high is None else self._range()

    def _range(self) -> str:
        if self.words or (self.low is None and self.high is None):
            return self.words
        return f"in {self.ends[0]}{_num(self.low)}, {_num(self.high)}{self.ends[1]}"


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


_KINDS = {bool: ("true or false", "booleans"), int: ("a whole number", "whole numbers"),
          float: ("a finite number", "finite numbers"), str: ("a string", "strings")}

_NAME = Rule(str)  # dataset, model and planner names are checked against their registries (`check_names`)
_TEXT = Rule(str)
_COUNT = Rule(int, 1, words="at least 1")
_NON_NEGATIVE = Rule(int, 0, words="non-negative")
_FRACTION = Rule(float, 0, 1, "[)", words="a fraction in [0, 1)")
_UNIT = Rule(float, 0, 1, "[]")
_RATE = Rule(float, 0, 1, "(]")
_POSITIVE = Rule(float, 0, None, "()", words="positive")

# Every field of every section, by dotted name (tests/test_config_validation.py checks that none is missing).
RULES: dict[str, Rule] = {
    "train.dataset": _NAME,
    "train.model": _NAME,
    "train.hidden_sizes": Rule(int, 1, words="at least 1", items=True),
    "train.seed": Rule(int, 0, SEED_MAX),
    "train.train_iterations": _COUNT,
    "train.rewind_iteration": _NON_NEGATIVE,  # and below train_iterations: TrainConfig.validate
    "train.batch_size": _COUNT,
    "train.optimizer": Rule(str, choices=("adam", "sgd")),
    "train.lr": _POSITIVE,
    "train.momentum": Rule(float, 0, 1, "[)"),  # torch rejects a negative one; 1 or more never converges
    "train.eval_every": _COUNT,
    "train.proxy_holdout": _NON_NEGATIVE,  # and below the validation split's size: Setup
    "prune.planner": _NAME,
    "prune.prune_fc": _FRACTION,
    "prune.prune_conv": _FRACTION,
    "prune.prune_output": _FRACTION,
    "prune.prune_global": _FRACTION,
    "prune.actions": Rule(float, 0, 1, "[)", words="a fraction in [0, 1)", items=True, increasing=True),
    "prune.target_remaining": _FRACTION,
    "qlearning.episodes": _COUNT,
    "qlearning.alpha": _RATE,
    "qlearning.alpha_schedule": Rule(str, choices=SCHEDULE_KINDS),
    "qlearning.alpha_end": _RATE,
    "qlearning.gamma": _UNIT,
    "qlearning.epsilon": _UNIT,
    "qlearning.epsilon_schedule": Rule(str, choices=SCHEDULE_KINDS),
    "qlearning.epsilon_end": _UNIT,
    "qlearning.explore_fraction": _UNIT,
    "qlearning.decay": _RATE,  # an exponential schedule's factor: 0 would end the schedule after one episode
    "qlearning.initial_q": Rule(float),
    "qlearning.accuracy_edges": Rule(float, -1, 1, items=True, increasing=True),  # a drop can be negative
    "qlearning.sparsity_edges": Rule(float, 0, 1, items=True, increasing=True),
    "qlearning.target_accuracy": Rule(float, 0, 2, "(]"),
    "qlearning.target_sparsity": Rule(float, 0, 1, "()"),
    "qlearning.beta": _POSITIVE,
    "qlearning.budget": Rule(str, choices=("free", "lt")),
    "qlearning.budget_reward": Rule(str, choices=("plan", "committed", "retrained")),
    "qlearning.anchor_z": Rule(float, 0, None, "[)", words="non-negative"),
    "qlearning.anchor": Rule(str, choices=ANCHOR_KINDS),
    "qlearning.feedback": Rule(bool),
    "qlearning.proxy_examples": _COUNT,
    "qlearning.proxy": Rule(str, choices=PROXY_KINDS),
    "qlearning.proxy_share": _RATE,
    "qlearning.proxy_candidates": _COUNT,
    "qlearning.init_qtable": _TEXT,
    "qlearning.commit": Rule(str, choices=COMMIT_RULES),
    # Beyond a few layers the table outgrows memory on deep networks ((actions + 1)^history rows per cell).
    "qlearning.state_history": Rule(int, 0, MAX_STATE_HISTORY),
    "rounds": _NON_NEGATIVE,
    "data_dir": _TEXT,
    "device": Rule(str, choices=("auto", "cpu", "cuda")),
}


def check_fields(obj: Any, section: str) -> None:
    """Check every (non-section) field of a config dataclass against RULES; the error names its flag."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            continue  # a section: validated by its own `validate`
        problem = RULES[f"{section}.{f.name}" if section else f.name].problem(flag(f.name), value)
        if problem:
            raise UserError(problem)


def parse_value(dotted: str, value: Any) -> Any:
    """A value for field `dotted` read from a file (a grid): converted where nothing is lost, then checked.

    YAML 1.1 reads `1e-3` as a string, and `5.0` is a float; a float field takes the number a numeric string
    names, an integer field an integral float (and a numeric string naming a whole number). A value that is
    still wrong is a UserError naming `dotted` and what it must be.
    """
    rule = RULES.get(dotted) if isinstance(dotted, str) else None
    if rule is None:
        raise UserError(f"unknown configuration field {_show(dotted)}{_did_you_mean(dotted)}")
    if rule.items and isinstance(value, (list, tuple)):
        value = [_number(rule.kind, v) for v in value]
    elif not rule.items:
        value = _number(rule.kind, value)
    problem = rule.problem(dotted, value)
    if problem:
        raise UserError(problem)
    return value


def _number(kind: type, value: Any) -> Any:
    if kind in (int, float) and isinstance(value, str):
        for parse in (int, float):
            try:
                value = parse(value)
                break
            except ValueError:
                continue
    if kind is int and type(value) is float and value.is_integer():
        return int(value)
    return _widen(kind, value)


def flag(name: str) -> str:
    """The command-line flag of a config field: `prune_fc` is `--prune-fc`."""
    return "--" + name.replace("_", "-")


def _did_you_mean(name: Any) -> str:
    if name in RunConfig.HASHED:
        example = next(k for k in RULES if k.startswith(f"{name}."))
        return f" (a section: give its fields by dotted name, like {example})"
    close = difflib.get_close_matches(str(name), list(RULES), n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any, limit: int = 80) -> str:
    """repr for a one-line message, shortened: a damaged file can hold a long value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The paper's recipes (Frankle & Carbin 2019, Figure 2). A preset sets these fields; flags given on the
# command line still win.
PRESETS: dict[str, dict[str, Any]] = {
    "lenet": {
        "train.model": "lenet_300_100", "train.train_iterations": 50_000, "train.batch_size": 60,
        "train.optimizer": "adam", "train.lr": 1.2e-3, "train.eval_every": 1000,
        "prune.prune_fc": 0.2, "prune.prune_output": 0.1,
    },
    "conv2": {
        "train.model": "conv2", "train.train_iterations": 20_000, "train.batch_size": 60,
        "train.optimizer": "adam", "train.lr": 2e-4, "train.eval_every": 1000,
        "prune.prune_conv": 0.1, "prune.prune_fc": 0.2, "prune.prune_output": 0.1,
    },
    "conv4": {
        "train.model": "conv4", "train.train_iterations": 25_000, "train.batch_size": 60,
        "train.optimizer": "adam", "train.lr": 3e-4, "train.eval_every": 1000,
        "prune.prune_conv": 0.1, "prune.prune_fc": 0.2, "prune.prune_output": 0.1,
    },
    "conv6": {
        "train.model": "conv6", "train.train_iterations": 30_000, "train.batch_size": 60,
        "train.optimizer": "adam", "train.lr": 3e-4, "train.eval_every": 1000,
        "prune.prune_conv": 0.15, "prune.prune_fc": 0.2, "prune.prune_output": 0.1,
    },
}
