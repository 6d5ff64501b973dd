"""Where the worker reads a source: the file that was queued, settled, unchanged while it is read.

At submission the job records the source's device, inode, size and mtime.
The worker opens the path again and refuses it if it now resolves elsewhere
(outside the storage roots, a swapped symlink) or is another file; it waits
while the file is still being written; and before publishing it checks that
the file did not change meanwhile.  Every reader uses ``/proc/<pid>/fd/<n>``
of the checked file, so FFmpeg and PyAV read that file whatever happens to
its name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .errors import InputError
from .storage import root_of, storage_roots

CHANGED = "source changed since it was queued"


class SourceHandle:
    """The queued source, opened once and checked: every reader uses ``read_path``."""

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


def open_queued(source: str, recorded: dict | None, settings: dict) -> SourceHandle:
    """Open ``source`` again; InputError if it is no longer the file that was queued."""
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
    that had settled when it was queued and changed since is refused.  A file
    whose mtime lies in the future (a share's clock ahead of ours) settles once
    it has stayed the same for ``settle_seconds`` while we watched.
    """
    current = handle.stat()
    if recorded and (current["size"], current["mtime_ns"]) != (recorded["size"], recorded["mtime_ns"]):
        if queued_at - recorded["mtime_ns"] / 1e9 >= settle_seconds:
            raise InputError(handle.source, f"{CHANGED} (it was modified after it was queued)")
    watched_since = clock()
    while True:
        now = clock()
        if now - current["mtime_ns"] / 1e9 >= settle_seconds or now - watched_since >= settle_seconds:
            return current
        on_wait()
        sleep(min(1.0, max(0.05, settle_seconds / 4)))
        latest = handle.stat()
        if (latest["size"], latest["mtime_ns"]) != (current["size"], current["mtime_ns"]):
            current, watched_since = latest, clock()


def check_unchanged(handle: SourceHandle, settled: dict) -> None:
    """Refuse to publish captions of a file that changed, was replaced or removed while it was read."""
    now = handle.stat()
    try:
        named = os.stat(handle.source)
    except OSError:
        raise InputError(handle.source, "source was removed while it was being processed; nothing was published") \
            from None
    if (named.st_dev, named.st_ino) != (now["dev"], now["ino"]):
        raise InputError(handle.source, "source was replaced while it was being processed; nothing was published")
    if (now["size"], now["mtime_ns"]) != (settled["size"], settled["mtime_ns"]):
        raise InputError(handle.source, "source changed while it was being processed; nothing was published")
