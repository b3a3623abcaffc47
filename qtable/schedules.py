"""Step-indexed schedules for the learning rate and exploration rate.

Schedules are pure functions of the step (the agent uses finished episodes), so a resumed run needs only the
step counter, not schedule state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SCHEDULE_KINDS = ("constant", "linear", "exponential")


class Schedule(Protocol):
    def __call__(self, step: int) -> float: ...


def _check_step(step: int) -> int:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, step: int) -> float:
        _check_step(step)
        return float(self.value)


@dataclass(frozen=True)
class LinearDecay:
    """Linear from `start` at step 0 to `end` at step `steps`, then held at `end`."""

    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"LinearDecay steps must be > 0, got {self.steps}")

    def __call__(self, step: int) -> float:
        frac = min(_check_step(step), self.steps) / self.steps
        return float(self.start + frac * (self.end - self.start))


@dataclass(frozen=True)
class ExponentialDecay:
    """start * decay**step, floored at `end` so exploration never vanishes by accident."""

    start: float
    end: float
    decay: float

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"ExponentialDecay decay must be in (0, 1], got {self.decay}")

    def __call__(self, step: int) -> float:
        return float(max(self.end, self.start * self.decay ** _check_step(step)))


def make_schedule(kind: str, start: float, end: float = 0.0, steps: int = 1, decay: float = 1.0) -> Schedule:
    """Build a schedule from flat config values; arguments a kind does not use are ignored."""
    if kind == "constant":
        return Constant(start)
    if kind == "linear":
        return LinearDecay(start, end, steps)
    if kind == "exponential":
        return ExponentialDecay(start, end, decay)
    raise ValueError(f"unknown schedule kind {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
