"""Probability distributions: the batched LKJ prior and the sufficient-statistics likelihood."""

from groupcov.distributions.lkj import LKJCholeskyCov

__all__ = ["LKJCholeskyCov"]
