"""tools.book: the Colab cell installs course_lib only in Colab and never touches torch; the repository URL
is read from _config.yml."""

import re

from tools.book import REPO, colab_cell, repository_url


def test_colab_cell_does_nothing_outside_colab():
    namespace = {}
    exec(compile(colab_cell(), "<colab-cell>", "exec"), namespace)  # must not try to pip install here
    assert "subprocess" not in namespace


def test_colab_cell_never_pins_torch():
    install_line = next(ln for ln in colab_cell().splitlines() if "pip" in ln)
    assert "torch" not in install_line and "--upgrade" not in install_line and "-U" not in install_line.split()
    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    assert '"torch>=' in deps and "==" not in deps, "course_lib must declare ranges so Colab keeps its torch"


def test_repository_url_lives_in_config_only():
    url = repository_url()
    assert url.startswith("https://github.com/")
    for path in list(REPO.glob("course_lib/**/*.py")):
        assert url not in path.read_text(), f"{path.relative_to(REPO)} repeats the repository URL; read it from _config.yml"
