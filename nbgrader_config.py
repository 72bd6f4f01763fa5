# nbgrader configuration: solutions/ is the instructor source, exercises/ the student release.
# The settings live in course_lib.grading.nbgrader_settings so that `make exercises`, the tests and the nbgrader
# command line all use the same ones. The course root is the folder nbgrader runs in (where this file is
# found), never the folder course_lib was installed from: from a second clone, nbgrader grades that clone.
import os

from course_lib.grading.nbgrader_settings import configure

c = get_config()  # noqa: F821 (provided by nbgrader)
configure(c, root=os.getcwd())
