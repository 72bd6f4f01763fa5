"""The assignment's journal (``<assignment>_graded.jsonl``): one line per saved verdict, so that an
interrupted batch resumes where it stopped, and what a saved verdict depends on (notebook, source, settings)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from ._processes import venv_on_path

__all__ = ["JOURNAL_SUFFIX", "Journal", "sha256", "settings_digest", "still_valid"]


JOURNAL_SUFFIX = "_graded.jsonl"


class Journal:
    """An append-only record of the verdicts saved in the gradebook, one JSON line each, written after the
    gradebook commit (so a line always means a saved verdict; a line torn by a kill is ignored)."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, dict]:
        entries: dict[str, dict] = {}
        if not self.path.is_file():
            return entries
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # the end of a line whose write was interrupted
                continue
            if isinstance(entry, dict) and isinstance(entry.get("student"), str) and isinstance(entry.get("result"), dict):
                entries[entry["student"]] = entry  # the last line of a student wins
        return entries

    def append(self, entry: dict) -> None:
        line = json.dumps(entry, default=str).encode() + b"\n"
        with open(self.path, "ab") as fh:
            if fh.tell() and self._last_byte() != b"\n":
                line = b"\n" + line  # after a torn line: start a fresh one
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _last_byte(self) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settings_digest(source: Path, *settings) -> str:
    """What a verdict depends on besides the notebook: the source folder's files and the grading settings."""
    h = hashlib.sha256(json.dumps([str(s) for s in settings]).encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        h.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def still_valid(entries: dict[str, dict], settings: str, gradebook: Path, course: Path,
                 assignment: str) -> dict[str, dict]:
    """The journal entries whose verdict is still in the gradebook and on disk, for the same source/settings."""
    entries = {s: e for s, e in entries.items() if e.get("settings") == settings
               and (course / "feedback" / s / assignment / f"{assignment}.html").is_file()}
    if not entries or not gradebook.is_file():
        return {}
    from nbgrader.api import Gradebook, MissingEntry

    with venv_on_path(), warnings.catch_warnings(), Gradebook(f"sqlite:///{gradebook}") as gb:
        warnings.simplefilter("ignore")
        try:
            recorded = {sub.student.id for sub in gb.assignment_submissions(assignment)}
        except MissingEntry:
            return {}
    return {s: e for s, e in entries.items() if s in recorded}
