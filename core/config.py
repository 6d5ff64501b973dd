"""Settings: config.example.py defaults, then config.py, then environment variables."""

from __future__ import annotations

import copy
import functools
import os
import runpy
import stat
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_COMMA_LISTS = {"VOCABULARY"}       # names may hold a colon ("Star Trek: Picard"), never a comma


def _coerce(name: str, raw: str, default: Any) -> Any:
    """Parse an environment value into the type of its default."""
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, (list, tuple)):
        if name in _COMMA_LISTS:
            return [part.strip() for part in raw.split(",") if part.strip()]
        return [part for part in raw.split(":") if part]
    return raw


def _module_settings(path: Path) -> dict[str, Any]:
    """The upper-case names a settings file defines (parsed again only when it changes)."""
    try:
        st = path.stat()
    except OSError:
        return {}
    return copy.deepcopy(_run_module(str(path), st.st_mtime_ns)) if stat.S_ISREG(st.st_mode) else {}


@functools.lru_cache(maxsize=8)
def _run_module(path: str, stamp: int) -> dict[str, Any]:
    return {k: v for k, v in runpy.run_path(path).items() if k.isupper()}


def load_settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return every setting as a dict (defaults < config.py < environment)."""
    environ = os.environ if environ is None else environ
    settings = _module_settings(PROJECT_ROOT / "config.example.py")
    config_file = Path(environ.get("CAPTION_CONFIG", PROJECT_ROOT / "config.py"))
    settings.update(_module_settings(config_file))
    for name, default in list(settings.items()):
        if name in environ:
            settings[name] = _coerce(name, environ[name], default)
    return settings


@functools.lru_cache(maxsize=1)
def process_settings() -> dict[str, Any]:
    """Settings read once per process (workers, the CLI); the dashboard passes its own down."""
    return load_settings()


def project_path(value: str | os.PathLike) -> Path:
    """Resolve a configured path relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
