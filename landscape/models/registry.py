"""The model registry: builders register by name; models are created, listed and counted here."""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from landscape.errors import ConfigError, LandscapeError, closest, unknown_name_message

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)

_BUILDERS: dict[str, Builder] = {}
_FAMILIES: dict[str, str] = {}

# Python's own wording when a call names an argument the callee does not take, or one the builder
# already fixes (e.g. depth=32 for resnet20); other TypeErrors are bugs and must not be relabelled.
_BAD_ARGUMENT = re.compile(
    r"got an unexpected keyword argument '(\w+)'"
    r"|got multiple values for (?:keyword )?argument '(\w+)'"
)


def register_model(fn: B) -> B:
    """Register a builder under its function name; its family is the short name of its module."""
    name = fn.__name__
    family = fn.__module__.rsplit(".", 1)[-1]
    old = _BUILDERS.get(name)
    # Re-importing the same module (e.g. importlib.reload) re-registers the same builder: allow it.
    if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
        raise LandscapeError(
            f"model {name!r} is already registered by {old.__module__}; "
            f"give the builder in {fn.__module__} another name"
        )
    _BUILDERS[name] = fn
    _FAMILIES[name] = family
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_BUILDERS)


def _builder(name: str) -> Builder:
    """The builder for a name, or a LandscapeError that lists the close and the valid names."""
    try:
        return _BUILDERS[name]
    except KeyError:
        raise LandscapeError(unknown_name_message("model", name, list_models())) from None


def model_family(name: str) -> str:
    """The family of a registered model: 'resnet', 'vgg' or 'densenet'."""
    _builder(name)
    return _FAMILIES[name]


def _accepted_arguments(fn: Builder) -> list[str]:
    """Keyword arguments a builder takes, including those of the class it forwards **kwargs to."""
    names: list[str] = []
    has_var_keyword = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            has_var_keyword = True
        elif p.kind is not p.VAR_POSITIONAL:
            names.append(p.name)
    if has_var_keyword:
        # Thin builders annotate the class they build; its __init__ names the real arguments.
        try:
            target = typing.get_type_hints(fn).get("return")
        except Exception:  # an unresolvable annotation only costs us the suggestion
            target = None
        if isinstance(target, type):
            names += [
                p.name
                for p in inspect.signature(target).parameters.values()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            ]
    return sorted(set(names))


def _check_size(what: str, value: object) -> None:
    """Reject a class or channel count that is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LandscapeError(f"{what} must be a positive integer, got {value!r}")


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any
) -> nn.Module:
    """Build a registered model, or call the builder at an import path 'pkg.module:function'.

    Extra keyword arguments go to the builder (shortcut='resnet_d'); an import-path builder is
    given num_classes and in_channels only when its signature takes them.
    """
    _check_size("num_classes", num_classes)
    _check_size("in_channels", in_channels)
    if is_import_path(name):
        fn = _import_builder(name)
        sizes = {"num_classes": num_classes, "in_channels": in_channels}
        kwargs = {**{k: v for k, v in sizes.items() if _takes(fn, k)}, **kwargs}
    else:
        fn = _builder(name)
        kwargs = {"num_classes": num_classes, "in_channels": in_channels, **kwargs}
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        match = _BAD_ARGUMENT.search(str(exc))
        arg = (match.group(1) or match.group(2)) if match else None
        # Only an argument the caller passed is the caller's mistake; anything else is a bug.
        if arg is None or arg not in kwargs:
            raise
        accepted = _accepted_arguments(fn)
        if arg in accepted:
            # The class takes it, but this builder already sets it (depth=32 for resnet20).
            raise LandscapeError(
                f"model {name!r} fixes argument {arg!r} itself; remove it or pick another model"
            ) from None
        near = closest(arg, accepted)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        valid = f"; valid arguments: {', '.join(accepted)}" if accepted else ""
        raise LandscapeError(
            f"model {name!r} has no argument {arg!r}{hint}; remove it{valid}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{name!r} returned {_describe(model)}; expected a torch.nn.Module", key="model.name"
        )
    return model


def is_import_path(name: str) -> bool:
    """Whether a model name is an import path 'pkg.module:function', not a registered name."""
    return ":" in name


def _import_builder(path: str) -> Builder:
    """The callable at 'pkg.module:function' (dots after the colon reach nested attributes)."""
    expected = "expected 'pkg.module:function' naming a callable that returns an nn.Module"
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"cannot import {path!r}; {expected}", key="model.name")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any failure while importing user code is a bad path for us
        raise ConfigError(
            f"cannot import {path!r} ({type(exc).__name__}: {exc}); {expected}", key="model.name"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"cannot import {path!r} (no {part!r} in {module_name}); {expected}",
                key="model.name",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(
            f"{path!r} is {_describe(obj)}, not callable; {expected}", key="model.name"
        )
    return obj


def _takes(fn: Builder, arg: str) -> bool:
    """Whether fn accepts keyword `arg`, by name or through **kwargs."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature (some builtins): do not guess
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == arg and p.kind is not p.POSITIONAL_ONLY)
        for p in params
    )


def _describe(value: object) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters, trainable or not; buffers such as BN statistics are left out."""
    return sum(p.numel() for p in model.parameters())
