"""Text tables for the terminal, one way for every command: tabulate lines the columns up.

Cells are printed as given (tabulate's number parsing is off): a digest made of digits keeps its
leading zeros, and a column is right-aligned only where the caller asks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from tabulate import tabulate


def text_table(rows: Iterable[Sequence[str]], header: Sequence[str], *, rule: bool = True,
               right: Collection[int] = ()) -> str:
    """``rows`` under ``header``, columns two spaces apart; ``rule`` underlines the header with
    dashes, ``right`` names the columns (by index) aligned to the right, as sizes read best."""
    align = tuple("right" if index in right else "left" for index in range(len(header)))
    return tabulate([list(row) for row in rows], headers=list(header), tablefmt="simple" if rule else "plain",
                    disable_numparse=True, colalign=align)
