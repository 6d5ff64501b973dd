"""Output files that belong to one run: names, staging, publishing, the manifest.

Names come from the whole source name, so ``clip.mp4`` and ``clip.mov`` never
share one: ``clip.mp4.scc``, ``clip.mp4.srt``, ... ``clip.mp4.captioned.mp4``.
A file that exists and is not this run's is never overwritten: the run takes
the next free set (``clip.mp4.2.scc`` ...), or fails where the operator asked
for that (``OUTPUT_CONFLICT=fail``).  Files are written into a hidden staging
folder and linked into place without replacing anything, then recorded in a
manifest (kind, path, size, hash, time); removal deletes exactly the manifest's
files, and only while they are unchanged.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .errors import CaptionError, ProcessingError

SIDECAR_KINDS = ("scc", "srt", "vtt", "dfxp", "json")
KINDS = SIDECAR_KINDS + ("mov", "video")
MAX_RUNS = 1000


class OutputConflict(ProcessingError):
    """An output name is taken by a file this run did not write and the policy is ``fail``."""


def file_name(source_name: str, kind: str, run: int = 1, revision: int = 1) -> str:
    """``clip.mp4.scc``; run 2: ``clip.mp4.2.scc``; caption revision 3 of run 1: ``clip.mp4.r3.scc``."""
    base = source_name if run == 1 else f"{source_name}.{run}"
    if revision != 1:
        base = f"{base}.r{revision}"
    if kind == "video":
        return f"{base}.captioned.mp4"
    return f"{base}.608.mov" if kind == "mov" else f"{base}.{kind}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _link_no_replace(staged: Path, final: Path) -> None:
    """Put ``staged`` at ``final`` unless ``final`` exists (FileExistsError then)."""
    try:
        os.link(staged, final)
    except FileExistsError:
        raise
    except OSError as err:  # shares without hard links: reserve the name, then rename over our reservation
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        os.replace(staged, final)
        return
    os.unlink(staged)


def manifest_entry(kind: str, path: Path, digest: str) -> dict:
    st = path.stat()
    return {"kind": kind, "path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest,
            "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}


def unchanged(entry: dict) -> bool:
    """Whether the file is still exactly what the run published."""
    path = Path(entry["path"])
    try:
        st = path.lstat()
    except OSError:
        return False
    if not path.is_file() or st.st_size != entry["size"] or st.st_mtime_ns != entry["mtime_ns"]:
        return False
    return sha256(path) == entry["sha256"]


def remove(manifest: list[dict]) -> tuple[list[str], list[str]]:
    """Delete the manifest's files that are unchanged: (removed, kept because changed or gone)."""
    removed, kept = [], []
    for entry in manifest:
        if unchanged(entry):
            Path(entry["path"]).unlink(missing_ok=True)
            removed.append(entry["path"])
        else:
            kept.append(entry["path"])
    return removed, kept


class Staging:
    """A hidden folder beside the outputs, owned by one run (``owner``: a job id, or "cli")."""

    def __init__(self, out_dir: Path, source_name: str, owner: str):
        self.out_dir, self.source_name, self.owner = Path(out_dir), source_name, owner
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sweep_dead(self.out_dir, source_name)
        tag = f"{owner}-{socket.gethostname()}-{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix=f".{source_name}.partial-{tag}-", dir=self.out_dir))

    def path(self, kind: str) -> Path:
        return self.dir / file_name("out", kind)

    def publish(self, kinds: list[str], conflict: str = "rename", run: int | None = None,
                revision: int = 1) -> tuple[int, list[dict]]:
        """Move the staged ``kinds`` into place under one run number; (run, manifest entries).

        With ``run`` given (the render joining the captions published earlier)
        that number is tried first.  ``revision``: an edited caption revision's
        files (``clip.mp4.r2.scc`` ...), named apart from every other revision's.
        """
        digests = {kind: sha256(self.path(kind)) for kind in kinds}
        first = run or 1
        candidates = [first] + [n for n in range(1, MAX_RUNS + 1) if n != first]
        for number in candidates:
            finals = {kind: self.out_dir / file_name(self.source_name, kind, number, revision) for kind in kinds}
            taken = [p for p in finals.values() if os.path.lexists(p)]
            if taken and conflict == "fail":
                raise OutputConflict(taken[0], "exists and was not written by this job; not overwritten "
                                               "(OUTPUT_CONFLICT=fail)")
            if taken:
                continue
            placed: list[Path] = []
            try:
                for kind, final in finals.items():
                    _link_no_replace(self.path(kind), final)
                    placed.append(final)
            except FileExistsError:  # another run took the name meanwhile: undo ours, try the next
                for final, kind in zip(placed, finals):
                    os.replace(final, self.path(kind))
                if conflict == "fail":
                    raise OutputConflict(self.out_dir / self.source_name, "an output name was taken meanwhile "
                                                                          "(OUTPUT_CONFLICT=fail)") from None
                continue
            return number, [manifest_entry(kind, final, digests[kind]) for kind, final in finals.items()]
        raise ProcessingError(self.out_dir / self.source_name, f"no free output name after {MAX_RUNS} runs")

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def sweep_dead(out_dir: Path, source_name: str) -> None:
    """Remove staging folders left by killed runs of this host."""
    host = socket.gethostname()
    for old in out_dir.glob(f".{glob.escape(source_name)}.partial-*-{glob.escape(host)}-*"):
        try:
            pid = int(old.name.rsplit(f"-{host}-", 1)[1].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def discard_owned(out_dir: Path, source_name: str, owner: str) -> None:
    """Remove every staging folder of ``owner`` (a cancelled job's unfinished work)."""
    for staging in Path(out_dir).glob(f".{glob.escape(source_name)}.partial-{glob.escape(owner)}-*"):
        shutil.rmtree(staging, ignore_errors=True)


class writing:
    """``with writing(out_dir, source_name, owner) as staging``: OSErrors become ProcessingError; staging is discarded."""

    def __init__(self, out_dir: Path, source_name: str, owner: str):
        self.out_dir, self.source_name, self.owner = Path(out_dir), source_name, owner

    def __enter__(self) -> Staging:
        try:
            self.staging = Staging(self.out_dir, self.source_name, self.owner)
        except OSError as err:
            raise ProcessingError(self.out_dir / self.source_name,
                                  f"cannot write outputs to {self.out_dir}: {err.strerror or err}") from err
        return self.staging

    def __exit__(self, kind, err, tb):
        self.staging.discard()
        if isinstance(err, OSError) and not isinstance(err, CaptionError):
            raise ProcessingError(self.out_dir / self.source_name,
                                  f"cannot write outputs to {self.out_dir}: {err.strerror or err}") from err
        return False
