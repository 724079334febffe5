"""Model layer: priors, pooling modes and the PyMC model built from SufficientStats.

:mod:`groupcov.model.inputs` and :mod:`groupcov.model.priors` need no PyMC;
:mod:`groupcov.model.build` (imported on first use of its names here) builds the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from groupcov.model.inputs import PARAMETERIZATIONS, POOLING
from groupcov.model.priors import Priors

__all__ = ["PARAMETERIZATIONS", "POOLING", "ModelParts", "Priors", "build_model"]

if TYPE_CHECKING:  # pragma: no cover
    from groupcov.model.build import ModelParts, build_model


def __getattr__(name: str) -> Any:
    if name in ("ModelParts", "build_model"):
        return getattr(importlib.import_module("groupcov.model.build"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
