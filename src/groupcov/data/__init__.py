"""Data layer: reduce tables to :class:`~groupcov.stats.SufficientStats`."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from groupcov.data.frame import DataError, reduce_pandas
from groupcov.stats import SufficientStats

__all__ = ["DataError", "reduce"]


def reduce(data, group: str, features: Sequence[str]) -> SufficientStats:
    """Reduce a table to per-group counts, means and scatter matrices.

    Parameters
    ----------
    data : pandas.DataFrame or SufficientStats
        The rows; statistics are passed through unchanged.
    group : str
        Name of the group column.
    features : sequence of str
        Names of the numeric feature columns.

    Returns
    -------
    SufficientStats

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["a", "a", "b", "b"], "x": [1.0, 3.0, 2.0, 2.0]})
    >>> reduce(df, "g", ["x"]).scatter[:, 0, 0].tolist()
    [2.0, 0.0]
    """
    if isinstance(data, SufficientStats):
        return data
    if isinstance(data, pd.DataFrame):
        return reduce_pandas(data, group, features)
    raise DataError(
        f"unsupported data type {type(data).__name__}: pass a pandas DataFrame"
    )
