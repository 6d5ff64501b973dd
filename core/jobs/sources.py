"""Checking the files a request names: resolve each inside the storage roots, stat it, probe it.

This is file-system and FFmpeg work, so it runs in real OS threads: under eventlet the server's threads
are green, and one probe of a 2-hour file (~70 ms in PyAV's C code) would stall every other request.
Paths that resolve to one file are probed once, and a file is probed again only when it changed: probes
are remembered by device, inode, size and times.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..services import artifacts, media, storage
from ..services.errors import CaptionError, InputError

CHECK_THREADS = 8                  # side by side: PyAV opens files in C without the GIL; stat waits on storage
PROBE_CACHE_SIZE = 4096


# --- checking paths ----------------------------------------------------------------------------------

def source_stat(path: Path) -> dict:
    """What the worker compares before it reads the file: the same file, unchanged or still settling."""
    return _stat_record(os.stat(path))


def _stat_record(st: os.stat_result) -> dict:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass(frozen=True)
class Located:
    """A requested path, resolved inside the storage roots and stat'ed."""
    path: Path
    output_dir: Path
    stat: dict | None                 # None when it cannot be stat'ed: the probe then says why
    identity: tuple | None            # what the probe cache is keyed by


@dataclass(frozen=True)
class Checked:
    raw: object
    path: Path
    output_dir: Path
    info: media.MediaInfo
    stat: dict


def _locate(raw: object, settings: dict) -> Located:
    path = storage.resolve_source(raw, settings)
    output_dir = storage.output_dir_for(path, settings)
    try:
        st = os.stat(path)
    except OSError:
        return Located(path, output_dir, None, None)
    return Located(path, output_dir, _stat_record(st),
                   (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


def _probe(path: Path) -> media.MediaInfo | InputError:
    """What the probe finds, or the InputError that the file's content earns (as true next time as now);
    any other error (the storage failing to read) is raised, and not remembered."""
    try:
        return media.probe(path)
    except InputError as err:
        return err


_probes: dict[tuple, media.MediaInfo | str] = {}     # identity -> what the probe found, or why it refused


def _probe_all(located: list[Located]) -> dict[object, media.MediaInfo | str]:
    """Probe each file once, unless it was probed before and has not changed since: keyed by identity, or
    by path for a file that could not be stat'ed.  Each outcome is a MediaInfo or the reason."""
    paths = {loc.identity or loc.path: loc.path for loc in located}
    outcomes = {key: _probes[key] for key in paths if key in _probes}
    missing = [key for key in paths if key not in outcomes]
    found = _in_threads(lambda key: _try(_probe, paths[key]), missing)
    if len(_probes) > PROBE_CACHE_SIZE:
        _probes.clear()
    for key, (value, error) in zip(missing, found):
        if error is not None:
            outcomes[key] = error.removeprefix(f"{paths[key]}: ")
        else:
            outcomes[key] = value.reason if isinstance(value, InputError) else value
            if isinstance(key, tuple):
                _probes[key] = outcomes[key]
    return outcomes


def _accept(raw: object, loc: Located, outcome: media.MediaInfo | str, settings: dict,
            burn_in: bool, mov: bool = False) -> Checked:
    """The checked path, or InputError with why it cannot be queued with these options."""
    if isinstance(outcome, str):
        raise InputError(loc.path, outcome)
    if burn_in and not outcome.has_video:
        raise InputError(raw, "has no video stream to burn captions into (submit with burn_in false)")
    if mov and not outcome.has_video:
        raise InputError(raw, "has no video stream for a MOV deliverable (submit with mov false)")
    if burn_in:
        _check_render_size(raw, outcome, settings["MAX_RENDER_PIXELS"])
    _check_name_length(raw, loc.path)
    return Checked(raw, loc.path, loc.output_dir, outcome, loc.stat or source_stat(loc.path))


def _check_render_size(raw: object, info: media.MediaInfo, limit: int) -> None:
    """A picture larger than MAX_RENDER_PIXELS is not rendered (a 10,000×10,000 source drove FFmpeg to 3.5 GB)."""
    if info.width * info.height > limit:
        usual = " (4096×2160)" if limit == 4096 * 2160 else ""
        raise InputError(raw, f"is {info.width}×{info.height}; the captioned rendition is limited to "
                              f"MAX_RENDER_PIXELS = {limit:,} pixels{usual}; submit with burn_in false for "
                              "captions only")


def _check_name_length(raw: object, path: Path) -> None:
    """Output and staging names add to the source's name; refuse one whose outputs the file system cannot name."""
    longest = max(len(os.fsencode(artifacts.file_name(path.name, "video", run=999, revision=999))),
                  len(os.fsencode(f".{path.name}.partial-{'0' * 32}-{socket.gethostname()}-4194304-abcdefgh")))
    if longest > 255:
        raise InputError(raw, f"name is too long for its output files ({longest} bytes with the outputs' suffixes; "
                              "the file system allows 255): rename the file")


def check_paths(raws: list, settings: dict, burn_in: bool, mov: bool = False) -> list[tuple[Checked | None, str | None]]:
    """For each requested path (in order): (Checked, None) if it can be queued, else (None, reason)."""
    located = _in_threads(lambda raw: _try(_locate, raw, settings), raws)
    outcomes = _probe_all([loc for loc, error in located if error is None])
    return [(None, error) if error else
            _try(_accept, raw, loc, outcomes[loc.identity or loc.path], settings, burn_in, mov)
            for raw, (loc, error) in zip(raws, located)]


def _try(fn, raw, *args):
    """(fn's value, None), or (None, the reason) for whatever makes this one path unusable."""
    try:
        return fn(raw, *args), None
    except CaptionError as err:
        return None, str(err)
    except OSError as err:
        return None, f"{shown(raw)}: {err.strerror or err}"
    except Exception as err:  # noqa: BLE001 - one odd path (or file) must not fail the whole batch
        return None, f"{shown(raw)}: {err}"


def shown(raw: object) -> str:
    """``raw`` for a message, lone surrogates spelled as escapes."""
    return str(raw).encode("utf-8", "backslashreplace").decode("utf-8")


# --- real OS threads ---------------------------------------------------------------------------------

def _in_threads(fn, items: list, threads: int = CHECK_THREADS) -> list:
    """``[fn(item) for item in items]``, run in up to ``threads`` real OS threads, in chunks."""
    if not items:
        return []
    size = max(1, len(items) // (threads * 4))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    run = _os_thread(functools.partial(_each, fn))
    with ThreadPoolExecutor(max_workers=min(threads, len(chunks))) as pool:
        return [value for chunk in pool.map(run, chunks) for value in chunk]


def _each(fn, chunk: list) -> list:
    return [fn(item) for item in chunk]


def _os_thread(fn):
    """``fn`` as it must be called to run in a real OS thread.  Under eventlet's monkey patching the
    executor's threads are green threads of the server's one hub: hand the call to eventlet's pool of
    OS threads (tpool), whose callers wait without blocking the hub."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is None or not patcher.is_monkey_patched("thread"):
        return fn
    from eventlet import tpool

    return functools.partial(tpool.execute, fn)
