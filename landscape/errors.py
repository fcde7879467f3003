"""Errors raised by the library; the CLI turns them into one-line messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

# How to get past a refusal to resume a file made with other settings.
START_AFRESH = (
    "delete it to start afresh (or pass --overwrite on the command line, overwrite=True in "
    "Python), or write elsewhere"
)


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (its type where it has none): what a
    one-line error quotes of a library's multi-line message."""
    text = str(e)
    return text.splitlines()[0] if text else type(e).__name__


class LandscapeError(Exception):
    """A user-facing error: the message alone must say what is wrong and how to fix it."""


class SharedError(LandscapeError):
    """An error every torchrun rank raises alike (rank 0's refusal, passed to all ranks), so
    rank 0 alone reports it."""


class EmptyRangeError(LandscapeError):
    """A colour range (vmin, vmax) that leaves out every value of the data."""


class ConfigError(LandscapeError):
    """A bad value in a config file or a --set override, located by file and dotted key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.message = message
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def in_file(self, file: str) -> ConfigError:
        """The same error located in `file`, for one raised where the config's file is not
        known (the data module checking data.name while it loads)."""
        return ConfigError(self.message, file=self.file or file, key=self.key)


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest valid names to a misspelt one, best first."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)


def did_you_mean(word: str, choices: Iterable[str], quote: bool = False) -> str:
    """' (did you mean resnet20?)' for the closest valid name to a misspelt one, else ''."""
    near = closest(word, choices)
    if not near:
        return ""
    return f" (did you mean {near[0]!r}?)" if quote else f" (did you mean {near[0]}?)"


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """'unknown model 'resnt20' (did you mean resnet20?); choose from: ...'."""
    choices = sorted(choices)
    near = closest(name, choices)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return f"unknown {kind} {name!r}{hint}; choose from: {', '.join(choices)}"


def check_same_settings(path: Any, before: Any, now: Any, made: str = "made") -> None:
    """Refuse to resume `path` when the settings it records differ from this run's, saying
    what changed and how to start afresh."""
    if before != now:
        raise LandscapeError(
            f"{path} was {made} with other settings ({differences(before, now)}): {START_AFRESH}"
        )


def differences(before: Any, now: Any, prefix: str = "", most: int = 3) -> str:
    """What changed between two nested settings, for a refusal to resume:
    'surface.samples: 200 in the file, 100 now; seed: 0 in the file, 1 now'."""
    found: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{key}.{k}" if key else str(k))
        elif a != b and key.endswith("sha256"):  # a digest says only that the file differs
            found.append(f"{key}: another file")
        elif a != b:
            show = {id(_MISSING): "unset"}
            found.append(
                f"{key or 'settings'}: {show.get(id(a), repr(a))} in the file, "
                f"{show.get(id(b), repr(b))} now"
            )

    walk(before, now, prefix)
    more = f"; and {len(found) - most} more" if len(found) > most else ""
    return "; ".join(found[:most]) + more


_MISSING = object()
