"""course_lib.grading.selfcheck: the student's self-check (``python -m course_lib.grading check``), run on the
corpus's submissions the way a student would, in a terminal, in a Jupyter kernel and in Colab."""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import SELF_CHECK_ENV, check_notebook, self_check
from course_lib.grading import _notebook as nbt
from course_lib.grading.__main__ import main as cli
from tests.helpers.grading import (
    CORPUS,
    NAME,
    SOURCE_NB,
    corpus_template,
    notebook,
    release_of,
)


def test_self_check_reminds_to_save_an_old_file(tmp_path):
    from course_lib.grading.selfcheck import _saved_note

    path = tmp_path / "nb.ipynb"
    path.write_text("{}")
    assert _saved_note(path) is None
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime - 600))
    assert "10 min ago" in _saved_note(path)


def test_self_check_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        check_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        check_notebook(SOURCE_NB, timeout=0)
    with pytest.raises(TypeError, match="notebook must be a path"):
        check_notebook(42)


def test_self_check_returns_at_once_where_it_must_not_recurse(monkeypatch, capsys):
    monkeypatch.setenv(SELF_CHECK_ENV, "0")
    report = self_check("does-not-even-exist.ipynb")
    assert report.skipped and report.exit_code == 0 and "skipped" in capsys.readouterr().out
    monkeypatch.delenv(SELF_CHECK_ENV)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert self_check("does-not-even-exist.ipynb", quiet=True).skipped


def test_cli_exit_code_2_for_an_unreadable_notebook(capsys):
    assert cli(["check", str(CORPUS / "submitted" / "empty_file" / NAME / f"{NAME}.ipynb")]) == 2
    assert "the file is empty" in capsys.readouterr().out


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    return corpus_template(tmp_path_factory)


@pytest.fixture(scope="module")
def release_path(template, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("release") / f"{NAME}.ipynb"
    nbformat.write(release_of(template), path)
    return path


def _submitted(kind: str) -> Path:
    return next((CORPUS / "submitted" / kind / NAME).glob("*.ipynb"))


@pytest.mark.slow
def test_self_check_passes_a_correct_notebook(release_path):
    report = check_notebook(_submitted("correct"), release=release_path, cell_timeout=60)
    assert report.exit_code == 0 and [c.status for c in report.cells] == ["passed"] * 4
    assert report.points == (6, 6)


@pytest.mark.slow
def test_self_check_reports_visible_failures_and_never_runs_hidden_tests(release_path):
    report = check_notebook(_submitted("wrong_answer"), release=release_path, cell_timeout=60)
    cells = {c.grade_id: c for c in report.cells}
    assert report.exit_code == 1
    assert cells["test_relu"].status == "failed" and cells["test_relu"].message == "relu([-1, 0, 2]) should be [0, 0, 2]"
    assert cells["test_softmax"].status == "passed"  # the naive softmax fails only the hidden test
    assert "test_relu" in report.format() and "FAILED" in report.format()


@pytest.mark.slow
def test_self_check_runs_the_released_test_over_an_edited_one(release_path):
    report = check_notebook(_submitted("edited_hidden_region"), release=release_path, cell_timeout=60)
    cells = {c.grade_id: c for c in report.cells}
    assert cells["test_relu"].status == "failed" and any("test_relu" in n and "edited" in n for n in report.notes)


@pytest.mark.slow
def test_self_check_strips_hidden_tests_from_the_instructor_notebook(tmp_path):
    nb = notebook(("answer", "f", "def f():\n    return 1"),
             ("test", "test_f", 'assert f() == 1, "f() should be 1"\n### BEGIN HIDDEN TESTS\n'
                                'assert False, "a hidden test ran"\n### END HIDDEN TESTS'))
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    report = check_notebook(path, cell_timeout=60)
    assert report.exit_code == 0 and report.cells[0].status == "passed"
    assert "hidden-test regions in 1 cell(s) were removed" in report.format()
    assert any("no released copy of tiny.ipynb was found" in n for n in report.notes)  # and it says so


@pytest.mark.slow
def test_self_check_works_inside_a_running_kernel(tmp_path):
    """The exercise's last cell: ``self_check`` called from a Jupyter kernel (an event loop is running)."""
    from nbclient import NotebookClient

    shutil.copy(_submitted("wrong_answer"), tmp_path / f"{NAME}.ipynb")
    outer = nbformat.v4.new_notebook()
    outer.cells = [nbformat.v4.new_code_cell(f'from course_lib.grading import self_check\n'
                                             f'report = self_check("{NAME}.ipynb", cell_timeout=60)\n'
                                             f'print("EXIT", report.exit_code)')]
    env = {k: v for k, v in os.environ.items() if k not in (SELF_CHECK_ENV, "NBGRADER_EXECUTION")}
    client = NotebookClient(outer, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel(env=env):
        client.execute_cell(outer.cells[0], 0)
    text = nbt.output_text(outer.cells[0])
    # it finished: the notebook's own self-check cell, run by the inner check, returned at once
    assert "test_relu" in text and "EXIT 1" in text


@pytest.mark.slow
def test_self_check_in_colab_reads_the_open_notebook(tmp_path, monkeypatch):
    notebook = json.loads(_submitted("correct").read_text())
    message = types.SimpleNamespace(blocking_request=lambda kind, request="", timeout_sec=0:
                                    {"ipynb": notebook} if kind == "get_ipynb" else None)
    colab = types.ModuleType("google.colab")
    colab._message = message
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab._message", message)
    monkeypatch.chdir(tmp_path)  # Colab's /content: the notebook is not a file there
    report = check_notebook(f"{NAME}.ipynb", cell_timeout=60)
    assert report.exit_code == 0 and len(report.cells) == 4


def test_the_release_is_found_next_to_the_notebook_not_where_course_lib_lives(tmp_path):
    """A clone of the course (``exercises/``) or an nbgrader course folder (``release/``) at or above the
    notebook's folder; nothing when there is none, even though this course_lib sits in a checkout that has one."""
    from course_lib.grading.selfcheck import find_release

    clone, nbgrader_course, alone = tmp_path / "clone", tmp_path / "course", tmp_path / "alone"
    for root, kind in ((clone, "exercises"), (nbgrader_course, "release")):
        (root / kind / NAME).mkdir(parents=True)
        (root / kind / NAME / f"{NAME}.ipynb").write_text("{}")
    (clone / "my_work" / "week2").mkdir(parents=True)
    alone.mkdir()
    assert find_release(NAME, clone / "my_work" / "week2") == clone / "exercises" / NAME / f"{NAME}.ipynb"
    assert find_release(NAME, nbgrader_course) == nbgrader_course / "release" / NAME / f"{NAME}.ipynb"
    assert find_release(NAME, alone) is None
    assert find_release("02_batch_normalization", alone) is None  # the repository's own exercises/ is not looked at
