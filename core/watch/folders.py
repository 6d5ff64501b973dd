"""WATCH_FOLDERS: each entry a folder inside the storage roots with its own job options.

In config.py an entry is a path (the configured defaults apply) or a dict with "path" and any of the
batch options plus "priority"::

    WATCH_FOLDERS = ["/mnt/news/incoming",
                     {"path": "/mnt/promos/drop", "model": "base", "language": "auto", "burn_in": False,
                      "rows": 3, "priority": "high", "qc_profile": "netflix-like"}]

The environment variable is a ':'-separated list of paths with the default options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import project_path
from ..jobs.errors import JobError
from ..jobs.submission import OPTION_KEYS, clean_options, clean_priority
from ..services import storage


@dataclass(frozen=True)
class WatchFolder:
    path: Path                   # real path, inside a storage root
    options: dict = field(hash=False)    # the batch options every job from this folder gets (checked)
    priority: str = "normal"

    @property
    def key(self) -> str:
        return str(self.path)


class WatchConfigError(ValueError):
    """One or more WATCH_FOLDERS entries cannot be used; the message names each and why."""


def _entry(raw: object) -> tuple[object, dict]:
    if isinstance(raw, (str, os.PathLike)):
        return os.fspath(raw), {}
    if isinstance(raw, dict):
        options = dict(raw)
        return options.pop("path", None), options
    return raw, {}


def _excluded_trees(settings: dict) -> list[Path]:
    """Folders whose files are ours, never sources: the outputs and the uploads."""
    return [Path(os.path.realpath(project_path(settings[name]))) for name in ("OUTPUT_DIR", "UPLOAD_DIR")]


def parse(settings: dict) -> tuple[list[WatchFolder], list[str]]:
    """The usable watch folders and a problem message for each entry that is not."""
    raw_entries = settings.get("WATCH_FOLDERS") or []
    if isinstance(raw_entries, (str, dict)):
        raw_entries = [raw_entries]
    roots = storage.storage_roots(settings)
    excluded = _excluded_trees(settings)
    folders: list[WatchFolder] = []
    problems: list[str] = []
    for raw in raw_entries:
        path, options = _entry(raw)
        shown = path if isinstance(path, str) else repr(raw)
        if not isinstance(path, str) or not path.strip():
            problems.append(f"WATCH_FOLDERS entry {shown}: give a folder path (a string, or a dict with \"path\")")
            continue
        if not os.path.isabs(path):
            problems.append(f"WATCH_FOLDERS entry {shown}: the path must be absolute")
            continue
        real = Path(os.path.realpath(path))
        if storage.root_of(real, roots) is None:
            problems.append(f"WATCH_FOLDERS entry {shown}: outside the storage roots "
                            f"({', '.join(map(str, roots)) or 'none is mounted'}); watch folders must lie inside "
                            "STORAGE_ROOTS")
            continue
        inside = [tree for tree in excluded if real == tree or tree in real.parents]
        if inside:
            problems.append(f"WATCH_FOLDERS entry {shown}: inside {inside[0]}, where the dashboard writes its own "
                            "files (OUTPUT_DIR / UPLOAD_DIR)")
            continue
        if any(f.path == real for f in folders):
            problems.append(f"WATCH_FOLDERS entry {shown}: listed more than once")
            continue
        priority = options.pop("priority", None)
        unknown = set(options) - set(OPTION_KEYS)
        if unknown:
            problems.append(f"WATCH_FOLDERS entry {shown}: unknown option(s) {', '.join(sorted(map(str, unknown)))}"
                            f" (use {', '.join(OPTION_KEYS)}, priority)")
            continue
        try:
            folders.append(WatchFolder(real, clean_options(options, settings), clean_priority(priority)))
        except JobError as err:
            problems.append(f"WATCH_FOLDERS entry {shown}: {err}")
    return folders, problems


def load(settings: dict) -> list[WatchFolder]:
    """The configured watch folders; WatchConfigError naming every bad entry."""
    folders, problems = parse(settings)
    if problems:
        raise WatchConfigError("; ".join(problems))
    return folders


def owner_of(path: Path, folders: list[WatchFolder]) -> WatchFolder | None:
    """The innermost watch folder holding ``path`` (nested folders: the deeper one's options apply)."""
    best = None
    for folder in folders:
        if folder.path in path.parents and (best is None or best.path in folder.path.parents):
            best = folder
    return best
