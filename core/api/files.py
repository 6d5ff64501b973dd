"""Files sent to browsers (sources for the preview, a job's outputs): never as HTML.

A source is served inline only as audio or video (its media type from its name), anything else as an
``application/octet-stream`` attachment; outputs carry their caption types.  Every file answer has a
sandboxing CSP, and a Content-Disposition that holds any legal name (newlines, quotes, bytes that are
not UTF-8): an ASCII ``filename`` and the whole name in RFC 5987 ``filename*``.
"""

from __future__ import annotations

import mimetypes
import os
import re
import unicodedata
import zlib
from pathlib import Path
from urllib.parse import quote

from flask import send_file

OUTPUT_TYPES = {"scc": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt",
                "dfxp": "application/ttml+xml", "json": "application/json", "video": "video/mp4"}
INLINE_MEDIA = ("audio/", "video/")
FILE_CSP = "default-src 'none'; media-src 'self'; sandbox"
_ATTR_CHAR = "!#$&+-.^_`|~"          # RFC 5987 attr-char besides letters and digits


def _text(name: str) -> str:
    """``name`` as valid Unicode: bytes that are not UTF-8 (surrogate escapes) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape" if _escapes_only(name) else "replace").decode("utf-8", "replace")


def _escapes_only(name: str) -> bool:
    try:
        name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def content_disposition(name: str, inline: bool) -> str:
    text = _text(name)
    fallback = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r'[^\x20-\x7e]|["\\%]', "_", fallback).strip() or "download"
    return (f'{"inline" if inline else "attachment"}; filename="{fallback}"; '
            f"filename*=UTF-8''{quote(text, safe=_ATTR_CHAR)}")


def _send(path: Path, mimetype: str, inline: bool, name: str):
    st = os.stat(path)
    etag = f"{st.st_mtime_ns:x}-{st.st_size:x}-{zlib.adler32(str(path).encode('utf-8', 'surrogatepass')):x}"
    resp = send_file(path, mimetype=mimetype, download_name="download", conditional=True, etag=etag)
    resp.headers["Content-Disposition"] = content_disposition(name, inline)
    resp.headers["Content-Security-Policy"] = FILE_CSP
    return resp


def send_source(path: Path):
    """A job's source for the preview player: audio or video inline, anything else as a download."""
    guessed, _ = mimetypes.guess_type(_text(path.name), strict=False)
    if guessed and guessed.startswith(INLINE_MEDIA):
        return _send(path, guessed, True, path.name)
    return _send(path, "application/octet-stream", False, path.name)


def send_output(path: Path, kind: str, inline: bool):
    """A job's output of ``kind``, as a download or (``inline``) for the player's track and video."""
    return _send(path, OUTPUT_TYPES.get(kind, "application/octet-stream"), inline, path.name)
