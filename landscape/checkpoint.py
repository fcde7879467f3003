"""Self-describing checkpoints: the model's name and arguments, the config, and the weights."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import LandscapeError

FORMAT = "landscape-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    model_name: str,
    model_args: dict[str, Any],
    *,
    config: dict[str, Any] | None = None,
    epoch: int = 0,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint via a temporary file and a rename: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "model_args": dict(model_args),
        "config": config or {},
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    payload.update(extra or {})
    tmp = path.with_name(path.name + ".tmp")
    try:
        # Through a Python file: a full disk then raises OSError (ENOSPC), where torch.save to a
        # path raises only a RuntimeError about zip offsets.
        with open(tmp, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException as e:  # Ctrl-C or a full disk: keep the old file, no half-written one
        tmp.unlink(missing_ok=True)
        # torch.save answers a failed write with a RuntimeError of its own while closing the
        # zip archive; the OSError behind it is the one that says what went wrong.
        cause = _os_error(e)
        if cause is not None:
            raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from None
        raise
    return path


def _os_error(e: BaseException | None) -> OSError | None:
    """The first OSError in an exception and the ones it was raised while handling."""
    while e is not None and not isinstance(e, OSError):
        e = e.__context__
    return e


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read with weights_only=True; a bare state_dict is wrapped: {'state_dict': ...}."""
    path = _existing_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message runs to several lines of advice about weights_only=False.
        raise LandscapeError(
            f"checkpoint {path} cannot be read safely: it is not a PyTorch file, or it pickles "
            "Python objects (e.g. a whole model); save model.state_dict() instead"
        ) from None
    except Exception as e:  # noqa: BLE001 - any other failure is a bad file for the user
        detail = (str(e).strip().splitlines() or ["file is empty or truncated"])[0]
        raise LandscapeError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {detail}): it is not a "
            "PyTorch checkpoint, or damaged or cut short; fix the path, copy it again, or delete "
            "it and train again"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return {
            "state_dict": obj["state_dict"],
            **{k: v for k, v in obj.items() if k != "state_dict"},
        }
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"state_dict": obj}
    what = (
        f"a dict with keys {sorted(map(str, obj))[:8]}"
        if isinstance(obj, dict)
        else type(obj).__name__
    )
    raise LandscapeError(f"checkpoint {path} holds no state_dict (got {what})")


def _existing_file(path: str | Path) -> Path:
    """`path`, refused in one line when it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"checkpoint {path} not found: train first or fix the path")
    if path.is_dir():
        raise LandscapeError(f"checkpoint {path} is a folder: give the checkpoint file in it")
    return path


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load weights, turning a key or shape mismatch into one clear line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"shape mismatch at {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
        raise LandscapeError(
            f"{where} does not match the model: {'; '.join(parts)}; check model.name and its args"
        )
    model.load_state_dict(state)


def model_from_checkpoint(
    path: str | Path,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The model a checkpoint describes (or the named one, for a bare state_dict) with weights."""
    ckpt = load_checkpoint(path)
    return model_from_loaded(ckpt, path, model_name, model_args), ckpt


def model_from_loaded(
    ckpt: dict[str, Any],
    path: str | Path,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
) -> nn.Module:
    """`model_from_checkpoint` for a checkpoint already read (by `load_checkpoint`) from path."""
    from .models import create_model

    stored = ckpt.get("model_name")
    if model_name is not None and stored is not None and stored != model_name:
        raise LandscapeError(
            f"checkpoint {path} is a {stored!r} but the config asks for model {model_name!r}: "
            "fix model.name or the checkpoint path"
        )
    name = stored or model_name
    if name is None:
        raise LandscapeError(
            f"checkpoint {path} is a bare state_dict: give model.name in the config"
        )
    stored_args = ckpt.get("model_args") or {}
    for key, value in (model_args or {}).items():
        if key in stored_args and stored_args[key] != value:
            raise LandscapeError(
                f"checkpoint {path} was made with {key}={stored_args[key]!r}, but the config "
                f"gives {value!r} (model.args, or the data's): make them agree"
            )
    args = dict(stored_args or model_args or {})
    model = create_model(name, **args)
    load_state_into(model, ckpt["state_dict"], f"checkpoint {path}")
    return model


def file_sha256(path: str | Path) -> str:
    """The sha256 of a checkpoint file (missing: the same one-line error as load_checkpoint)."""
    h = hashlib.sha256()
    with open(_existing_file(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
