"""course_lib.grading._notebook: reading, comparing, restoring and describing nbgrader notebooks, checked
against nbgrader's own functions (checksums, hidden-test removal) and hand-built notebooks."""

from __future__ import annotations

import nbformat
import pytest

from course_lib.grading import _notebook as nbt
from tests.helpers.grading import (
    SOURCE_NB,
    notebook,
)


def test_checksum_matches_nbgrader():
    from nbgrader.utils import compute_checksum

    cells = [c for c in nbformat.read(SOURCE_NB, as_version=4).cells if "nbgrader" in c.metadata]
    assert len(cells) == 8
    for cell in cells:
        assert nbt.checksum(cell) == compute_checksum(cell)
    cells[1].source += "\nassert True"
    assert nbt.checksum(cells[1]) == compute_checksum(cells[1])


def test_strip_hidden_matches_nbgrader_clear_hidden_tests():
    from nbgrader.preprocessors import ClearHiddenTests

    clear = ClearHiddenTests(begin_test_delimeter="BEGIN HIDDEN TESTS", end_test_delimeter="END HIDDEN TESTS")
    n = 0
    for cell in nbformat.read(SOURCE_NB, as_version=4).cells:
        visible, regions = nbt.strip_hidden(cell.source)
        removed = clear._remove_hidden_test_region(cell)
        assert visible == cell.source and bool(regions) == removed
        n += removed
    assert n == 4


def test_strip_hidden_without_end_hides_to_the_end():
    visible, regions = nbt.strip_hidden("a = 1\n### BEGIN HIDDEN TESTS\nsecret = 2\nmore = 3")
    assert visible == "a = 1" and regions == [(2, 4)]


@pytest.mark.parametrize("data, kind", [
    (b"", "empty"), (b"  \n", "empty"), (b'{"cells": [', "invalid_json"), (b"\xff\xfe", "invalid_json"),
    (b"[1, 2]", "invalid_notebook"), (b'{"cells": "no", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
                                      "invalid_notebook"),
])
def test_unreadable_notebooks_get_a_named_problem(data, kind):
    with pytest.raises(nbt.NotebookProblem) as info:
        nbt.read_notebook(data)
    assert info.value.kind == kind


def test_compare_names_every_difference():
    ref = notebook(("plain", None, "import math"), ("answer", "f", "raise NotImplementedError()"),
              ("test", "test_f", "assert f() == 1"), ("answer", "g", "raise NotImplementedError()"),
              ("test", "test_g", "assert g() == 2"))
    assert nbt.compare(ref, ref).unanswered and nbt.compare(ref, ref).clean
    sub = notebook(("plain", None, "import math"), ("answer", "f", "def f(): return 1"),
              ("test", "test_f", "assert True"), ("test", "test_f", "assert f() == 1"), ("test", "test_x", "pass"))
    cmp = nbt.compare(sub, ref)
    assert cmp.missing_grade == ["test_g"] and cmp.missing_solution == ["g"]
    assert cmp.edited_locked == ["test_f"] and cmp.unknown == ["test_x"] and cmp.duplicated == ["test_f"]
    assert not cmp.unanswered and not cmp.clean


def test_restore_missing_puts_a_cell_back_where_it_was():
    ref = notebook(("answer", "f", "x"), ("test", "test_f", "assert f"), ("answer", "g", "y"), ("test", "test_g", "assert g"))
    sub = notebook(("answer", "f", "x"), ("answer", "g", "y"))
    nbt.restore_missing(sub, ref, ["test_f", "test_g"])
    assert [nbt.grade_id(c) for c in sub.cells] == ["f", "test_f", "g", "test_g"]
    lonely = notebook(("plain", None, "pasted"))
    nbt.restore_missing(lonely, ref, ["test_g"])
    assert [nbt.grade_id(c) for c in lonely.cells] == [None, "test_g"]


def test_error_message_is_the_assertion_or_the_failing_visible_line():
    bare = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "",
                               "traceback": ["\x1b[0;31mCell In[7], line 2\x1b[0m", "..."]})
    assert nbt.failing_line(bare, 7) == 2
    assert nbt.describe_error(bare, "x = 1\nassert x == 2", 2) == "AssertionError (at line 2: assert x == 2)"
    said = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "x should be 2",
                               "traceback": []})
    assert nbt.describe_error(said, "", None) == "x should be 2"


def test_error_message_keeps_the_hint_at_its_end():
    """A test's message ends with its hint; a ~300-character message (exercise 09's longest) must arrive whole."""
    hint = " — sort with torch.argsort(..., descending=True, stable=True)"
    long = "with a constant map the first half moved must be the top 8 rows (raster order), " * 3 + hint
    said = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": long, "traceback": []})
    assert len(long) > 300 and nbt.describe_error(said, "", None) == " ".join(long.split())
    flood = nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "x" * 5000,
                                "traceback": []})
    cut = nbt.describe_error(flood, "", None)
    assert len(cut) == nbt.MESSAGE_CHARS and cut.endswith("…")


def test_cell_label_names_what_jupyter_shows():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"),
                nbformat.v4.new_markdown_cell("Some text\n\n## 5. On the trained model\n\nMore text."),
                nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2"),
                nbformat.v4.new_code_cell("assert a", metadata={"nbgrader": {"grade_id": "test_a", "grade": True}}),
                nbformat.v4.new_markdown_cell("No heading here.")]
    assert nbt.cell_label(nb, 0) == "the 1st code cell of the notebook"
    assert nbt.cell_label(nb, 2) == 'the code cell under "5. On the trained model"'
    assert nbt.cell_label(nb, 3) == 'the 2nd code cell under "5. On the trained model"'
    assert nbt.cell_label(nb, 4) == "test_a"


def test_output_cap_leaves_images_whole():
    png = "iVBORw0KGgo" + "A" * 174_408
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.show()")
    cell.outputs = [nbformat.from_dict({"output_type": "display_data", "metadata": {},
                                        "data": {"image/png": png, "text/plain": "<Figure size 640x480>"}}),
                    nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "y" * 30_000})]
    nb.cells.append(cell)
    assert nbt.cap_outputs(nb, 20_000) == [0]  # the text was cut ...
    assert cell.outputs[0]["data"]["image/png"] == png and len(cell.outputs[1]["text"]) < 20_100  # ... not the image


def test_invalid_json_message_reads_well():
    with pytest.raises(nbt.NotebookProblem, match=r"not valid JSON \(Unterminated string starting at line 1, column 11\)"):
        nbt.read_notebook(b'{"cells": "abc')
    with pytest.raises(nbt.NotebookProblem, match=r"not valid JSON \(Expecting value at line 1, column 1\)"):
        nbt.read_notebook(b'nope')
