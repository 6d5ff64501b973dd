"""Listing a watch folder, and the content fingerprint that recognises a file seen before."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

# Our own outputs (artifacts.file_name: clip.mp4.scc, clip.mp4.2.srt, clip.mp4.r2.captioned.mp4,
# clip.mp4.608.mov, ...) and the partial names copy tools give a file while they write it.
OUTPUT_SUFFIXES = (".scc", ".srt", ".vtt", ".dfxp", ".json", ".captioned.mp4", ".608.mov")
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".filepart", ".download", "~")


def ignored(name: str) -> bool:
    """Hidden files (rsync's and our staging names start with a dot), our outputs, files still being copied."""
    low = name.lower()
    return (name.startswith(".") or name.startswith("~$") or ".partial-" in low
            or low.endswith(OUTPUT_SUFFIXES) or low.endswith(PARTIAL_SUFFIXES))


def list_files(folder: Path, skip: frozenset[Path] = frozenset()) -> dict[str, os.stat_result]:
    """Every regular file under ``folder`` that may be a source, by path, with its stat.

    Subfolders are walked (not hidden ones, nor ``skip``: our outputs, nested watch folders).  Symlinks
    are left alone: a drop is a file, and a link's job would caption its target, not the dropped path.
    A file that vanishes while listed is simply not there; an unreadable folder raises OSError.
    """
    found: dict[str, os.stat_result] = {}
    pending = [folder]
    while pending:
        current = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if Path(entry.path) not in skip:
                        pending.append(Path(entry.path))
                elif stat.S_ISREG(st.st_mode) and not ignored(entry.name):
                    found[entry.path] = st
    return found


# Content fingerprint.  Hashing all of a 50 GB file takes minutes (several on a 1 GbE share) and would hold
# the queueing of every other dropped file, so files up to FULL_HASH_LIMIT are hashed whole and larger ones
# by their size plus SAMPLES evenly spread blocks of SAMPLE_BYTES, first and last included.  Media
# containers put per-export identifiers and indexes in their first and last megabytes, so two different
# programmes of one size (CBR MXF of equal duration) still differ there; a re-export that changes only the
# middle is caught by the spread samples unless every change falls between them.  Reading 8 MiB takes well
# under a second even over a share.
FULL_HASH_LIMIT = 64 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024
SAMPLES = 8
CHUNK = 1024 * 1024


def fingerprint(path: str | Path) -> str:
    """``full:<sha256>`` for small files, ``sampled:<sha256 of size and samples>`` for large ones."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
            return f"full:{digest.hexdigest()}"
        digest.update(str(size).encode())
        step = (size - SAMPLE_BYTES) // (SAMPLES - 1)
        for index in range(SAMPLES):
            fh.seek(index * step)
            digest.update(fh.read(SAMPLE_BYTES))
    return f"sampled:{digest.hexdigest()}"
