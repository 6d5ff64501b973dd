"""Confine sources to the storage roots and place outputs under OUTPUT_DIR."""

from __future__ import annotations

import os
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
