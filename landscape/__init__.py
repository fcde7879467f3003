"""landscape: loss-landscape visualization for neural networks (Li et al., NeurIPS 2018).

The public Python API is re-exported here lazily, so `import landscape` (and `landscape --help`)
does not import torch; the first use of a name imports its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module (under landscape) that defines it.
_EXPORTS = {
    "loss_surface": "api",
    "Surface": "api",
    "DirectionSet": "api",
    "load_model": "api",
    "random_directions": "api",
    "line_directions": "api",
    "plane_directions": "api",
    "create_model": "models",
    "list_models": "models",
    "register_model": "models",
    "compute_surface": "surface",
    "load_config": "config",
    "LandscapeError": "errors",
    "ConfigError": "errors",
}

__all__ = [
    "ConfigError",
    "DirectionSet",
    "LandscapeError",
    "Surface",
    "__version__",
    "compute_surface",
    "create_model",
    "line_directions",
    "list_models",
    "load_config",
    "load_model",
    "loss_surface",
    "plane_directions",
    "random_directions",
    "register_model",
]

if TYPE_CHECKING:
    from .api import (
        DirectionSet,
        Surface,
        line_directions,
        load_model,
        loss_surface,
        plane_directions,
        random_directions,
    )
    from .config import load_config
    from .errors import ConfigError, LandscapeError
    from .models import create_model, list_models, register_model
    from .surface import compute_surface


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
