"""Repository tooling, not part of the installable ``course_lib`` package: book checks (``python -m
tools.bookcheck``), the nbgrader release pipeline (``python -m tools.exercises generate``) and the paths and
Colab cell they share (:mod:`tools.book`). Run from the repository root."""
