"""Browse the storage roots: folders first, sort, filter, server-side pages.

A folder of 10,000 files lists in one scandir pass; only the visible page is
joined to the job store for existing captions (by the route), and durations are probed on request for the
rows a browser shows (cached by path, size and mtime).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import media, storage
from .errors import CaptionError, InputError

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mxf", ".mkv", ".avi", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".m4v",
                    ".webm", ".wmv", ".flv", ".3gp", ".wav", ".mp3", ".m4a", ".aac", ".flac"}
SORT_KEYS = ("name", "size", "mtime")

_durations: OrderedDict[tuple, float | None] = OrderedDict()
_durations_lock = threading.Lock()


def roots(settings: dict) -> list[dict]:
    return [{"name": r.name or str(r), "path": str(r)} for r in storage.storage_roots(settings)]


def _folder(raw: str, settings: dict) -> tuple[Path, Path]:
    if not isinstance(raw, str) or not raw:
        raise InputError(raw, "path must be a folder under a storage root")
    real = storage.resolve_source(raw, settings)
    root = storage.root_of(real, storage.storage_roots(settings))
    try:
        is_dir = real.is_dir()
    except OSError as err:      # a name too long, a loop of links: the same answer a batch gives
        raise InputError(raw, err.strerror or str(err)) from None
    if not is_dir:
        raise InputError(raw, "is not a folder")
    return real, root


def _scan(folder: Path, raw: str):
    try:
        return os.scandir(folder)
    except OSError as err:
        raise InputError(raw, err.strerror or str(err)) from None


def listing(raw: str, settings: dict, *, sort: str = "name", order: str = "asc", filter_text: str = "",
            page: int = 1, page_size: int = 200, videos_only: bool = False) -> dict:
    folder, root = _folder(raw, settings)
    if sort not in SORT_KEYS:
        raise InputError(sort, f"sort must be one of {', '.join(SORT_KEYS)}")
    needle = filter_text.lower()
    folders, files = [], []
    with _scan(folder, raw) as entries:
        for entry in entries:
            if entry.name.startswith(".") or (needle and needle not in entry.name.lower()):
                continue
            try:
                is_dir = entry.is_dir()
                st = entry.stat()
            except OSError:
                continue
            item = {"name": entry.name, "path": os.path.join(folder, entry.name), "size": st.st_size,
                    "mtime": int(st.st_mtime), "is_dir": is_dir,
                    "is_video": not is_dir and Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS}
            if is_dir:
                folders.append(item)
            elif item["is_video"] or not videos_only:
                files.append(item)
    reverse = order == "desc"
    key = (lambda e: e["name"].lower()) if sort == "name" else (lambda e: (e[sort], e["name"].lower()))
    folders.sort(key=lambda e: e["name"].lower(), reverse=reverse and sort == "name")
    files.sort(key=key, reverse=reverse)
    items = folders + files
    start = (page - 1) * page_size
    visible = items[start:start + page_size]
    for item in visible:
        if item["is_video"]:
            item["duration"] = _cached_duration(item)
    crumbs, here = [], folder
    while True:
        crumbs.append({"name": here.name or str(here), "path": str(here)})
        if here == root:
            break
        here = here.parent
    return {
        "path": str(folder), "root": str(root), "breadcrumbs": crumbs[::-1],
        "parent": str(folder.parent) if folder != root else None,
        "items": visible, "total": len(items), "folders": len(folders),
        "videos": sum(1 for f in files if f["is_video"]), "page": page, "page_size": page_size,
        "sort": sort, "order": order,
    }


def _key(item: dict) -> tuple:
    return item["path"], item["size"], item["mtime"]


def _cached_duration(item: dict):
    with _durations_lock:
        return _durations.get(_key(item))


def durations(paths: list, settings: dict) -> dict[str, float | None]:
    """Probe durations of up to 200 files (cached); unreadable files give None."""
    def one(raw):
        try:
            path = storage.resolve_source(raw, settings)
            st = path.stat()
        except (CaptionError, OSError):
            return raw, None
        key = (str(path), st.st_size, int(st.st_mtime))
        with _durations_lock:
            if key in _durations:
                return raw, _durations[key]
        try:
            value = round(media.probe(path).duration, 2)
        except CaptionError:
            value = None
        with _durations_lock:
            _durations[key] = value
            while len(_durations) > 50000:
                _durations.popitem(last=False)
        return raw, value

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, [p for p in paths[:200] if isinstance(p, str)]))
