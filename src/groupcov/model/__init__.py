"""Model layer: priors, pooling modes and the PyMC model built from SufficientStats."""

from groupcov.model.build import PARAMETERIZATIONS, POOLING, ModelParts, build_model
from groupcov.model.priors import Priors

__all__ = ["PARAMETERIZATIONS", "POOLING", "ModelParts", "Priors", "build_model"]
