"""The one error class a user sees: a mistake or a damaged input, reported as one line with exit code 2.

It sits in a module of its own, importing nothing from the project, so that every layer (configuration, data,
store, planners) can raise it without importing the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


class UserError(ValueError):
    """Something the user can fix: a bad option, an unknown name, a missing or corrupt file, a failed download."""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """`registry[name]`, or a `UserError` that lists the choices: registries are checked where they are used."""
    if name not in registry:
        raise unknown(what, name, registry)
    return registry[name]


def unknown(what: str, name: str, choices: Iterable[str]) -> UserError:
    return UserError(f"unknown {what} {name!r}; choose from {', '.join(sorted(choices))}")
