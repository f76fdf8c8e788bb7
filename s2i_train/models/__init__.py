"""Model registry: ``create_model("mae_vit_tiny", img_size=64, patch_size=8)``.

Names are ``<method>_<size>`` for pretraining models (methods ``mae``, ``diffmae``; sizes in
:data:`ENCODER_SIZES`) and plain ``<size>`` for the timm encoder used by evaluation. A repeated
registration raises instead of silently replacing a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

__all__ = ["ENCODER_SIZES", "METHODS", "create_model", "list_models", "register_model"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model factory under ``name``."""

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return add


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its factory."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


from s2i_train.models import diffmae, mae  # noqa: E402,F401  (register the pretraining models)
from s2i_train.models.vit import ENCODER_SIZES, create_encoder  # noqa: E402

METHODS = ("mae", "diffmae")

for _size in ENCODER_SIZES:
    register_model(_size)(lambda _s=_size, **kw: create_encoder(_s, **kw))
