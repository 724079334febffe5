"""Probability distributions: the batched LKJ prior and the sufficient-statistics likelihood."""

from groupcov.distributions.lkj import LKJCholeskyCov
from groupcov.distributions.mvnormal import MvNormalSuffStats

__all__ = ["LKJCholeskyCov", "MvNormalSuffStats"]
