# nbgrader configuration: solutions/ is the instructor source, exercises/ the student release.
# The settings live in course_lib._exercises so that `make exercises`, the tests and the nbgrader
# command line all use the same ones.
from course_lib._exercises import configure

c = get_config()  # noqa: F821 (provided by nbgrader)
configure(c)
