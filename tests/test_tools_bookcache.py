"""tools.bookcache: the book's execution cache is emptied exactly when what the chapters import changes."""

from __future__ import annotations

from tools.bookcache import refresh


def test_cache_is_kept_while_inputs_stay_and_emptied_when_they_change(tmp_path):
    root = tmp_path / "repo"
    (root / "course_lib" / "__pycache__").mkdir(parents=True)
    module = root / "course_lib" / "m.py"
    module.write_text("x = 1\n")
    cache = tmp_path / "_build" / ".jupyter_cache"
    doctrees = tmp_path / "_build" / ".doctrees"
    (cache / "executed").mkdir(parents=True)
    assert refresh(cache, root)                        # no stamp yet: a cache of unknown inputs goes
    (cache / "executed").mkdir(parents=True)
    assert not refresh(cache, root)                    # same inputs: kept
    assert (cache / "executed").is_dir()
    (root / "course_lib" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    assert not refresh(cache, root)                    # bytecode is not an input
    doctrees.mkdir()
    module.write_text("x = 2\n")
    assert refresh(cache, root)                        # the library changed: emptied
    assert not cache.exists() and not doctrees.exists()  # Sphinx reads every page again
