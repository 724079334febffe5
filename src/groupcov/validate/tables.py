"""Markdown tables for the validation write-ups."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["markdown_table"]


def _cell(value, digits: int) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table of ``table`` (floats to ``digits`` significant digits).

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"a": ["x"], "b": [0.123456]})))
    | a | b |
    |---|---|
    | x | 0.123 |
    """
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])
