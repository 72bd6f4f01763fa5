"""course_lib.pose: every name the package exports exists."""

from __future__ import annotations

from course_lib import pose


def test_module_exports_exist():
    for name in pose.__all__:
        assert hasattr(pose, name), name
