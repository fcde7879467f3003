"""Errors raised by the library; the CLI turns them into one-line messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LandscapeError(Exception):
    """A user-facing error: the message alone must say what is wrong and how to fix it."""


class ConfigError(LandscapeError):
    """A bad value in a config file or a --set override, located by file and dotted key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest valid names to a misspelt one, best first."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """'unknown model 'resnt20' (did you mean resnet20?); choose from: ...'."""
    choices = sorted(choices)
    near = closest(name, choices)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return f"unknown {kind} {name!r}{hint}; choose from: {', '.join(choices)}"
