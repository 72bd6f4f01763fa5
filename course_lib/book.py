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

__all__ = ["ClaimError", "claim", "glue"]

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
