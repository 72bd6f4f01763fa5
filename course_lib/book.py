"""Claims are code: numbers quoted in a chapter's prose, and the comparisons the prose makes.

A chapter never types a measured number into its text. The cell that computes the number glues it::

    from course_lib.book import claim, glue

    glue("gap_corloc", corloc_gap)          # the text says {glue:text}`gap_corloc:.3f`
    claim(corloc_gap > corloc_gmp, "GAP localizes better than GMP")   # in a hidden (remove-cell) cell

In the book build and under nbval, :func:`glue` is myst-nb's ``glue`` (it stores the value in the cell's
output, and ``{glue:text}`` renders it in the prose). Where myst-nb is absent (Colab), it prints the value, so
the chapter still runs and the reader still sees the number. :func:`claim` fails loudly, quoting the sentence
it guards, when the numbers no longer support it: ``make book`` and nbval then fail instead of publishing a
false sentence.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClaimError", "claim", "glue", "table", "mean_ci", "paired_ci", "interval_sign", "verdict"]

try:  # the book build and nbval have myst-nb; Colab does not
    from myst_nb import glue as _myst_glue
except ImportError:  # pragma: no cover - exercised only where myst-nb is missing
    _myst_glue = None


class ClaimError(AssertionError):
    """A sentence of the text is no longer true to the numbers the chapter computed."""


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` available to the text as ``{glue:text}`name```.

    Args:
        name: the key the text refers to (letters, digits and ``_``).
        value: the number (or short string) the text quotes.
        display: also show the value in the cell's output.

    Returns ``None`` (as myst-nb's ``glue`` does), so a cell that ends with it shows no stray output.

    Raises:
        ValueError: if ``name`` is not a valid key.

    Example:
        >>> glue("answer", 42)   # outside a notebook there is nothing to store
        >>> glue("mean", 0.25, display=True)   # display=True also shows the value
        mean = 0.25
    """
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits and '_', got {name!r}")
    value = _plain(value)
    if _myst_glue is not None and _in_notebook():
        _myst_glue(name, value, display=display)
    elif display or _myst_glue is None:
        print(f"{name} = {value}")


def claim(condition: bool, text: str) -> None:
    """Assert a comparison that the chapter's text makes.

    Args:
        condition: the comparison, computed from the chapter's own numbers.
        text: the sentence (or its gist) as the text states it.

    Raises:
        ClaimError: quoting ``text`` when ``condition`` is false.

    Example:
        >>> claim(0.70 > 0.39, "GAP localizes better than GMP")
        >>> claim(0.30 > 0.39, "GAP localizes better than GMP")
        Traceback (most recent call last):
        ...
        course_lib.book.ClaimError: the text says "GAP localizes better than GMP", but the numbers no longer support it
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be the sentence the claim guards, got {text!r}")
    if not bool(condition):
        raise ClaimError(f'the text says "{text}", but the numbers no longer support it')


def _plain(value: Any) -> Any:
    """A NumPy or 0-d torch scalar as the Python number it holds: its repr (``np.float64(0.24)``) is what
    myst-nb stores, and ``{glue:text}`name:.3f``` could not format it."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def table(rows: list[list[Any]], header: list[str], caption: str | None = None, align: str | None = None):
    """A table for the page: rows rendered as Markdown (a real table in the book, in Jupyter and in Colab).

    End a ``remove-input`` cell with it. Numbers are shown as given: format them (``f"{x:.3f}"``) before.

    Args:
        rows: the table's rows, each a list with one entry per column.
        header: the column titles.
        caption: a line shown above the table (``"Table 1.1. What the leak does."``).
        align: one letter per column, ``l``/``r``/``c`` (default: text left, numbers right).

    Raises:
        ValueError: if a row's length differs from the header's, or ``align`` does not match.

    Example:
        >>> print(table([["raw", "203559"]], ["input", "condition number"], align="lr").data)
        | input | condition number |
        |:--|--:|
        | raw | 203559 |
    """
    if not header:
        raise ValueError("header must name at least one column")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"rows[{i}] has {len(row)} entries but header has {len(header)}")
    if align is None:
        first = rows[0] if rows else [""] * len(header)
        align = "".join("r" if _numeric(v) else "l" for v in first)
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align must be one of l/r/c per column ({len(header)}), got {align!r}")
    rule = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = [f"**{caption}**", ""] if caption else []
    lines += ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    from IPython.display import Markdown

    return Markdown("\n".join(lines))


def _numeric(value: Any) -> bool:
    try:
        float(str(value).replace("%", "").replace(",", "").split()[0].replace("−", "-"))
    except (ValueError, IndexError):
        return False
    return True


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    r"""Mean and its ``level`` confidence interval from Student's t: :math:`\bar v \pm t_{n-1}\, s/\sqrt n`.

    Independent values (seeds, splits, images): a paired comparison passes the differences.

    Example:
        >>> mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
        >>> mean, round(lo, 3), round(hi, 3)
        (2.0, -0.484, 4.484)
    """
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"values must be a 1-D sequence of at least 2 numbers, got shape {v.shape}")
    mean = float(v.mean())
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def paired_ci(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Mean difference ``a - b`` over paired items and its t interval (see :func:`mean_ci`).

    Example:
        >>> paired_ci([0.9, 0.8, 0.85], [0.7, 0.65, 0.7])[0] > 0
        True
    """
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (same shape), got {a.shape} and {b.shape}")
    return mean_ci(a - b, level)


def interval_sign(ci, n: int | None = None, min_items: int = 50) -> str:
    """Which way an interval ``(mean, lo, hi)`` points: ``"+"`` (it lies above zero), ``"-"`` (below) or ``"0"``
    (it includes zero). With ``n`` independent items below ``min_items``, ``"?"``: too few items to rank.

    The course's rule for a ranking: a paired interval that excludes zero, over at least 50 independent items
    (or 3 seeds: pass ``min_items=3``).

    Example:
        >>> interval_sign((0.2, 0.1, 0.3)), interval_sign((0.1, -0.1, 0.3)), interval_sign((0.2, 0.1, 0.3), n=30)
        ('+', '0', '?')
    """
    if not (isinstance(ci, (tuple, list)) and len(ci) == 3):
        raise TypeError(f"ci must be a (mean, lo, hi) triple, got {ci!r}")
    lo, hi = float(ci[1]), float(ci[2])
    if not lo <= hi:
        raise ValueError(f"ci must have lo <= hi, got lo={lo}, hi={hi}")
    if n is not None and n < min_items:
        return "?"
    return "+" if lo > 0 else "-" if hi < 0 else "0"


def verdict(ci, above: str, below: str, within: str = "within noise of", *, n: int | None = None,
            min_items: int = 50, unranked: str = "not ranked (too few items) against") -> str:
    """The words an interval supports (see :func:`interval_sign`): ``above`` where it lies above zero, ``below``
    where it lies below, ``within`` where it includes zero, ``unranked`` with fewer than ``min_items`` items.

    Example:
        >>> verdict(paired_ci([0.9, 0.8, 0.85], [0.7, 0.65, 0.7]), "better than", "worse than")
        'better than'
        >>> verdict((0.01, -0.02, 0.04), "better than", "worse than")
        'within noise of'
    """
    return {"+": above, "-": below, "0": within, "?": unranked}[interval_sign(ci, n, min_items)]
