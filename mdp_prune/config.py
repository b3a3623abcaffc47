"""Typed, frozen run configuration, its presets and its hash.

Every setting a run depends on lives here, so that a configuration fully names a run: the results store
derives the run folder from `RunConfig.hash()`. Fields left at their default do not enter the hash, so adding
a field later keeps the folders of earlier runs valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mdp_prune.errors import UserError, unknown
from qtable import SCHEDULE_KINDS


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


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

    def validate(self) -> None:
        # Dataset and model names are checked where their registries are looked up (`check_names`).
        _choice("optimizer", self.optimizer, ("adam", "sgd"))
        if any(h < 1 for h in self.hidden_sizes) or not self.hidden_sizes:
            raise UserError(f"--hidden-sizes must be positive integers, got {self.hidden_sizes}")
        if self.train_iterations < 1:
            raise UserError(f"--train-iterations must be at least 1, got {self.train_iterations}")
        if not 0 <= self.rewind_iteration < self.train_iterations:
            raise UserError(
                f"--rewind-iteration must be in [0, train_iterations={self.train_iterations}), "
                f"got {self.rewind_iteration}"
            )
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.eval_every < 1:
            raise UserError(f"--eval-every must be at least 1, got {self.eval_every}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")


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
        for name in ("prune_fc", "prune_conv", "prune_output", "prune_global"):
            _fraction(name, getattr(self, name))
        if not self.actions:
            raise UserError("--actions needs at least one fraction")
        for a in self.actions:
            _fraction("actions", a)
        if list(self.actions) != sorted(set(self.actions)):
            raise UserError(f"--actions must be strictly increasing, got {self.actions}")
        _fraction("target_remaining", self.target_remaining)


@dataclass(frozen=True)
class QLearningConfig:
    """The pruning MDP and its tabular Q-learning (docs/design.md, section 2); used by `--planner qlearning`."""

    episodes: int = _opt(600, "Q-learning episodes per round (one episode walks every prunable layer)")
    alpha: float = _opt(0.5, "learning rate alpha of the Q update (start value of its schedule)")
    alpha_schedule: str = _opt("constant", "alpha schedule over a round's episodes: constant, linear, exponential")
    alpha_end: float = _opt(0.01, "final alpha of a linear or exponential schedule")
    gamma: float = _opt(0.9, "discount gamma")
    epsilon: float = _opt(1.0, "exploration epsilon (start value of its schedule)")
    epsilon_schedule: str = _opt("linear", "epsilon schedule over a round's episodes: constant, linear, exponential")
    epsilon_end: float = _opt(0.0, "final epsilon of a linear or exponential schedule")
    explore_fraction: float = _opt(0.8, "share of a round's episodes over which linear schedules decay")
    decay: float = _opt(0.98, "per-episode factor of exponential schedules")
    initial_q: float = _opt(-1.0, "initial value of every Q(s, a); rewards are at most 0, so 0 would be optimistic")
    accuracy_edges: tuple[float, ...] = _opt(
        (0.005, 0.01, 0.02, 0.05, 0.1, 0.2), "bucket edges of the proxy accuracy drop below the round's unpruned one"
    )
    sparsity_edges: tuple[float, ...] = _opt(
        (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64), "bucket edges (log scale) of the fraction of weights remaining"
    )
    target_accuracy: float = _opt(
        1.0, "T_A as a multiple of the dense network's proxy accuracy (1 - the tolerated accuracy drop): below it "
        "the reward's accuracy hinge penalises a plan")
    target_sparsity: float = _opt(0.964, "T_P: fraction of prunable weights removed that the reward aims at")
    beta: float = _opt(1.0, "reward scale beta")
    budget: str = _opt("free", "free: the reward sets the pace; lt: each round removes exactly the lt baseline's share")
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

    def validate(self) -> None:
        if self.episodes < 1:
            raise UserError(f"--episodes must be at least 1, got {self.episodes}")
        for name in ("alpha", "alpha_end"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(self, name)}")
        for name in ("gamma", "epsilon", "epsilon_end", "explore_fraction", "decay"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        _choice("alpha schedule", self.alpha_schedule, SCHEDULE_KINDS)
        _choice("epsilon schedule", self.epsilon_schedule, SCHEDULE_KINDS)
        _choice("budget", self.budget, ("free", "lt"))
        for name in ("accuracy_edges", "sparsity_edges"):
            edges = getattr(self, name)
            if not edges or list(edges) != sorted(set(edges)):
                raise UserError(f"--{name.replace('_', '-')} must be strictly increasing, got {edges}")
        if not 0 < self.target_accuracy <= 2:
            raise UserError(f"--target-accuracy must be in (0, 2], got {self.target_accuracy}")
        _fraction("target_sparsity", self.target_sparsity)
        if self.target_sparsity == 0:
            raise UserError("--target-sparsity must be positive")
        if self.beta <= 0:
            raise UserError(f"--beta must be positive, got {self.beta}")
        if self.proxy_examples < 1:
            raise UserError(f"--proxy-examples must be at least 1, got {self.proxy_examples}")
        _choice("proxy", self.proxy, ("pruned", "finetune", "rewind"))
        if not 0 < self.proxy_share <= 1:
            raise UserError(f"--proxy-share must be in (0, 1], got {self.proxy_share}")
        if self.proxy_candidates < 1:
            raise UserError(f"--proxy-candidates must be at least 1, got {self.proxy_candidates}")


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
        if self.rounds < 0:
            raise UserError(f"--rounds must be non-negative, got {self.rounds}")
        _choice("device", self.device, ("auto", "cpu", "cuda"))
        return self

    def hash(self) -> str:
        # Flat dotted names, so that adding a section or a field with a default keeps existing run folders.
        # Only the qlearning planner reads its section: a changed Q-learning default must not rename (or
        # orphan) the baselines' runs.
        sections = self.HASHED if self.prune.planner == "qlearning" else ("train", "prune")
        return _digest({f"{k}.{name}": v for k in sections
                        for name, v in non_default_fields(getattr(self, k)).items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return build(cls, d)

    def replace(self, **dotted: Any) -> RunConfig:
        """A copy with fields changed by dotted name, e.g. `replace(**{"train.lr": 1e-3})`."""
        d = self.to_dict()
        for name, value in dotted.items():
            section, _, key = name.rpartition(".")
            target = d[section] if section else d
            if key not in target:
                raise UserError(f"unknown configuration field {name!r}")
            target[key] = value
        return build(RunConfig, d)


def train_hash(train: TrainConfig) -> str:
    """Names the dense round and rewind checkpoint that every planner with these training settings shares."""
    return _digest(non_default_fields(train))


def non_default_fields(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if value != default:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def build(cls: type, d: dict[str, Any]) -> Any:
    """Instantiate a (nested) config dataclass from a plain dict, restoring tuples and nested sections."""
    kwargs = {}
    types = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in d.items():
        if key not in types:
            raise UserError(f"unknown configuration field {key!r} in {cls.__name__}")
        f = types[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            value = build(type(default), value)
        elif isinstance(default, tuple):
            value = tuple(type(default[0])(v) if default else v for v in value)
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _choice(name: str, value: str, allowed: Any) -> None:
    if value not in allowed:
        raise unknown(name, value, allowed)


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise UserError(f"--{name.replace('_', '-')} must be a fraction in [0, 1), got {value}")


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
