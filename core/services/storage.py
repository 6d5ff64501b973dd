"""Confine sources to the storage roots and place outputs under OUTPUT_DIR."""

from __future__ import annotations

import os
import re
import unicodedata
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
    if not is_file_name_text(raw):
        raise InputError(printable(raw), "path is not valid UTF-8 text (a lone surrogate, or a name in another "
                                         "encoding: rename the file)")
    if not os.path.isabs(raw):
        raise InputError(raw, "path must be absolute (a file under a storage root)")
    real = Path(os.path.realpath(raw))
    if root_of(real, storage_roots(settings)) is None:
        raise InputError(raw, "is outside the storage roots")
    return real


def is_file_name_text(text: str) -> bool:
    """Whether ``text`` is valid UTF-8 text.  A lone surrogate names nothing, and a name read from disk
    that is not UTF-8 (Python spells its bytes U+DC80-U+DCFF) cannot be kept in the job store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with lone surrogates spelled as escapes (for messages and logs)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


UPLOAD_NAME_BYTES = 150    # leaves room for the outputs' suffixes and staging names within 255 bytes
_NAME_PUNCTUATION = "._-+()[]@,=~"


def safe_file_name(name: str, fallback: str = "upload") -> str:
    """A file name to store an upload under: the last component of ``name`` (``/`` and ``\\`` both
    separate), letters and digits of any script kept with their extension, whitespace, controls and
    other punctuation as ``_``, no leading dot or dash, at most UPLOAD_NAME_BYTES bytes of UTF-8."""
    name = unicodedata.normalize("NFC", name.encode("utf-8", "replace").decode("utf-8"))
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c if c.isalnum() or c in _NAME_PUNCTUATION or unicodedata.category(c).startswith("M")
                   else "_" for c in name)
    stem, dot, ext = name.rpartition(".")
    if not dot or not ext.isalnum() or len(ext) > 10:
        stem, ext = name, ""
    ext = f".{ext}" if ext else ""
    stem = stem.lstrip("._-").rstrip(".")
    while stem and len((stem + ext).encode()) > UPLOAD_NAME_BYTES:
        stem = stem[:-1].rstrip(".")
    return (stem or fallback) + ext


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

