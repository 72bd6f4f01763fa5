"""The course's nbgrader settings (course_lib.grading.nbgrader_settings, ``nbgrader_config.py``) and what git keeps
out of the repository in an nbgrader course folder."""

from __future__ import annotations

import shutil
import subprocess

from tests.helpers.grading import (
    REPO,
)


def test_nbgrader_config_takes_the_course_root_from_the_folder_it_runs_in(tmp_path, monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    shutil.copy(REPO / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    monkeypatch.chdir(tmp_path)  # a second clone: nbgrader runs here, course_lib is installed elsewhere
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    assert config.CourseDirectory.root == str(tmp_path)
    assert config.CourseDirectory.db_url == f"sqlite:///{tmp_path / 'gradebook.db'}"


def test_student_work_and_scores_are_ignored_by_git():
    paths = ["submitted/ana/02_batch_normalization/02_batch_normalization.ipynb",
             "autograded/ana/02_batch_normalization/02_batch_normalization.ipynb",
             "feedback/ana/02_batch_normalization/02_batch_normalization.html", "02_batch_normalization_scores.csv",
             "02_batch_normalization_graded.jsonl", "gradebook.db"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.split() == paths
    kept = subprocess.run(["git", "check-ignore", "--no-index", "solutions/02_batch_normalization/02_batch_normalization.ipynb"],
                          cwd=REPO, capture_output=True, text=True)
    assert kept.stdout == ""
