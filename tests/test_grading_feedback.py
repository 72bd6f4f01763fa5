"""course_lib.grading._feedback: the feedback a student sees (hidden tests and their quotes removed, the
reason a test cell scored 0), checked on hand-built notebooks and against nbgrader's grading rule."""

from __future__ import annotations

import nbformat

from course_lib.grading import (
    _feedback,
)
from course_lib.grading import _notebook as nbt
from tests.helpers.grading import (
    HIDDEN_PROBES,
    SOURCE_NB,
)


def test_feedback_sanitizer_removes_hidden_code_and_quotes():
    source = nbformat.read(SOURCE_NB, as_version=4)
    release = nbformat.read(SOURCE_NB, as_version=4)
    for cell in release.cells:
        cell.source = nbt.strip_hidden(cell.source)[0]
    secrets = _feedback.secret_lines(source, release)
    assert any("hidden_softmax_probe = " in s for s in secrets)
    graded = nbformat.read(SOURCE_NB, as_version=4)
    test = next(c for c in graded.cells if nbt.grade_id(c) == "test_softmax")
    test.execution_count = 9
    test.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "probe\n"}),
                    nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": "",
                                        "traceback": ["Cell In[9], line 3", test.source.split("\n")[2]]})]
    spy = next(c for c in graded.cells if c.cell_type == "code" and not nbt.grade_id(c))
    spy.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stdout",
                                       "text": "stolen: " + test.source.split("\n")[2] + "\n"})]
    assert _feedback.cell_verdicts(graded)["test_softmax"] == {"passed": False, "hidden": True,
                                                               "message": "a hidden test failed (AssertionError)"}
    safe, changed = _feedback.sanitize(graded, release, secrets, max_chars=1000)
    text = nbformat.writes(safe)
    assert not any(p in text for p in HIDDEN_PROBES) and changed["redacted"] == 1
    assert "hidden_softmax_probe" in nbformat.writes(graded)  # the check above could fail


def test_leak_check_matches_quoted_hidden_lines_not_visible_lines_that_extend_them():
    secrets = {"assert indices.tolist() == ref.indices.tolist()"}
    public = {'assert indices.tolist() == ref.indices.tolist(), "the indices differ from the reference"'}
    shown = '----> 3 assert indices.tolist() == ref.indices.tolist(), "the indices differ from the reference"'
    assert _feedback.leaks(shown, secrets, public) == []  # exercise 03's false alarm
    assert _feedback.leaks("stolen: assert indices.tolist()  ==  ref.indices.tolist()", secrets, public) == list(secrets)
    assert _feedback.leaks(shown, secrets) == list(secrets)  # without the release's lines it would be flagged


def test_a_test_cell_that_warned_on_stderr_says_why_it_scored_zero():
    from nbgrader.utils import determine_grade

    cell = nbformat.v4.new_code_cell("assert score() > 0.9")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "test_score", "locked": True, "points": 2,
                                 "solution": False, "schema_version": 3}
    cell.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stderr",
                                        "text": "joblib.py:44: UserWarning: [Errno 13] Permission denied\n"})]
    assert determine_grade(cell) == (0, 2)  # nbgrader's rule, which the message explains
    nb = nbformat.v4.new_notebook()
    nb.cells.append(cell)
    verdict = _feedback.cell_verdicts(nb)["test_score"]
    assert verdict["passed"] is False and "wrote to stderr" in verdict["message"] and "Errno 13" in verdict["message"]
