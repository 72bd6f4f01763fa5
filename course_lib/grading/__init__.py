"""Grading for students and instructors, on top of nbgrader.

Two entry points, each also a command (``python -m course_lib.grading --help``):

* :func:`self_check` (``python -m course_lib.grading check NOTEBOOK``): the student's check. It runs the
  notebook top to bottom in a fresh kernel with a time limit and prints one line per graded cell (passed or
  failed, points, and the message of the visible assertion); hidden tests are never run or shown. The exit
  code is 0 only when every visible test passed. The last cell of every exercise calls it on the notebook
  itself; it returns at once where it must not recurse (``COURSE_SELF_CHECK=0``, which it sets for its own
  kernel and which ``make test`` and class grading set too, or under nbgrader).
* :func:`grade_class` (``python -m course_lib.grading class SUBMISSIONS --assignment NAME --workers N``): the
  instructor's batch, configured by a :class:`GradingSettings` (course folder, workers or cluster, time and
  resource limits). Every submission is autograded by nbgrader in its own process against its own
  temporary gradebook, its kernel jailed by bubblewrap (no network, only its own files, limits on time, CPU,
  memory, processes, disk and output; ``--no-sandbox`` to do without); results are merged into the course's
  gradebook, with a scores CSV, per-student feedback HTML without hidden tests, a progress bar, and a
  summary of every submission that did not grade cleanly. On a cluster (``--scheduler tcp://HOST:PORT``,
  or ``--scheduler local`` to try it here) every submission is one ``dask.distributed`` task, rescheduled
  when its worker dies; a batch that is interrupted resumes where it stopped (``--regrade`` grades all).

Requirements. The self-check needs only ``nbformat``, ``nbclient`` and ``ipykernel``: all three ship with
Colab and Jupyter, so it works in Colab without nbgrader (there it checks the open notebook, which is not
a file, through Colab's ``get_ipynb`` request). Class grading needs nbgrader (``pip install
course-lib[grading]``) and ``psutil`` (an ipykernel dependency). Importing this package loads neither
nbformat nor nbgrader, so the self-check cell costs nothing where it is skipped.
"""

from .selfcheck import SELF_CHECK_ENV, CellResult, SelfCheckReport, check_notebook, self_check

_LAZY = {"ClassReport", "GradingInterrupted", "GradingJob", "GradingSettings", "Limits", "SubmissionResult", "grade_class",
         "grade_submission"}

__all__ = ["SELF_CHECK_ENV", "CellResult", "SelfCheckReport", "check_notebook", "self_check", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        from . import classgrade

        return getattr(classgrade, name)
    raise AttributeError(f"module 'course_lib.grading' has no attribute {name!r}")
