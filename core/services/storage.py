"""Confine sources to the storage roots and place outputs under OUTPUT_DIR."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import project_path
from .errors import InputError


def storage_roots(settings: dict) -> list[Path]:
    """Real paths of the configured roots (uploads included), existing ones only."""
    roots = []
    for raw in [*settings["STORAGE_ROOTS"], settings["UPLOAD_DIR"]]:
        real = Path(os.path.realpath(project_path(raw)))
        if real.is_dir() and real not in roots:
            roots.append(real)
    return roots


def root_of(path: Path, roots: list[Path]) -> Path | None:
    for root in roots:
        if path == root or root in path.parents:
            return root
    return None


def resolve_source(raw: object, settings: dict) -> Path:
    """The real path of ``raw`` if it lies inside a storage root; InputError otherwise.

    Symlinks are resolved first, so a link pointing outside the roots is refused.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InputError(raw, "path must be a non-empty string")
    if "\x00" in raw:
        raise InputError(raw.replace("\x00", "\\0"), "path contains a NUL byte")
    if not os.path.isabs(raw):
        raise InputError(raw, "path must be absolute (a file under a storage root)")
    real = Path(os.path.realpath(raw))
    if root_of(real, storage_roots(settings)) is None:
        raise InputError(raw, "is outside the storage roots")
    return real


def output_dir_for(source: Path, settings: dict) -> Path:
    """OUTPUT_DIR/<root name>/<path of the source's folder under its root>."""
    roots = storage_roots(settings)
    root = root_of(source, roots)
    base = project_path(settings["OUTPUT_DIR"])
    if root is None:
        return base / "_other"
    names = [r.name or "root" for r in roots]
    name = root.name or "root"
    if names.count(name) > 1:
        name = f"{name}-{roots.index(root) + 1}"
    return base / name / source.parent.relative_to(root)


class SourceHandle:
    """The queued source, opened once and checked: every reader uses ``read_path``.

    ``read_path`` is ``/proc/<pid>/fd/<n>``: FFmpeg and PyAV open the very file
    that was checked, whatever happens to its name afterwards.
    """

    def __init__(self, source: str, fd: int):
        self.source, self.fd = source, fd
        self.read_path = f"/proc/{os.getpid()}/fd/{fd}"

    def stat(self) -> dict:
        st = os.fstat(self.fd)
        return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "SourceHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


CHANGED = "source changed since it was queued"


def open_queued(source: str, recorded: dict | None, settings: dict) -> SourceHandle:
    """Open ``source`` again where it is read; InputError if it is no longer the file that was queued.

    It must still resolve to itself inside the storage roots and be the same
    file (device and inode) that was probed at submission.
    """
    real = os.path.realpath(source)
    if real != source:
        raise InputError(source, f"{CHANGED} (it now resolves to {real})")
    if root_of(Path(real), storage_roots(settings)) is None:
        raise InputError(source, f"{CHANGED} (it is now outside the storage roots)")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(source, f"{CHANGED} (it was removed)") from None
    except OSError as err:
        raise InputError(source, f"{CHANGED} ({err.strerror or err})") from None
    handle = SourceHandle(source, fd)
    now = handle.stat()
    if recorded and (now["dev"], now["ino"]) != (recorded["dev"], recorded["ino"]):
        handle.close()
        raise InputError(source, f"{CHANGED} (another file now has its name)")
    return handle


def wait_until_settled(handle: SourceHandle, recorded: dict | None, queued_at: float, settle_seconds: float,
                       on_wait=lambda: None, clock=time.time, sleep=time.sleep) -> dict:
    """Wait until the file has not changed for ``settle_seconds``; its settled stat.

    A file still being written when it was queued may grow meanwhile; a file
    that had settled when it was queued and changed since is refused.
    """
    current = handle.stat()
    if recorded and (current["size"], current["mtime_ns"]) != (recorded["size"], recorded["mtime_ns"]):
        settled_when_queued = queued_at - recorded["mtime_ns"] / 1e9 >= settle_seconds
        if settled_when_queued:
            raise InputError(handle.source, f"{CHANGED} (it was modified after it was queued)")
    while True:
        age = clock() - current["mtime_ns"] / 1e9
        if age >= settle_seconds:
            return current
        on_wait()
        sleep(min(1.0, max(0.05, settle_seconds - age)))
        current = handle.stat()


def check_unchanged(handle: SourceHandle, settled: dict) -> None:
    """Refuse to publish captions of a file that changed while it was read."""
    now = handle.stat()
    if (now["size"], now["mtime_ns"]) != (settled["size"], settled["mtime_ns"]):
        raise InputError(handle.source, "source changed while it was being processed; nothing was published")
