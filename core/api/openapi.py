"""The OpenAPI 3.1 description of the REST API (``/api/openapi.json``) and its documentation page (``/api/docs``).

The description lives in YAML files in ``core/api/spec/``: ``base.yaml`` (openapi version, info, servers,
security schemes, shared components) and one file per area, each with a top-level ``paths:`` mapping and
optionally ``components:``.  They are merged once per process; the same path and method, or the same
component name, in two files is an error naming both files.  What every route answers because of the
app's own hooks (a refused Host, a cross-site write, a missing token, a body over the upload limit, a
server fault) is added here to each operation that does not describe it itself, so the area files only
describe what their routes do.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import yaml
from flask import Blueprint, current_app, jsonify, render_template, url_for

from .. import __version__

SPEC_DIR = Path(__file__).resolve().parent / "spec"
BASE_FILE = "base.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
READS = ("get", "head", "options")

bp = Blueprint("openapi", __name__)
_lock = threading.Lock()
_cache: dict[Path, dict] = {}


class SpecError(ValueError):
    """The spec files cannot be merged (a clash, a file that is not a mapping)."""


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as err:
        raise SpecError(f"{path.name}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path.name}: must be a mapping with 'paths:' (and optionally 'components:')")
    return data


def merge(base: dict, parts: list[tuple[str, dict]]) -> dict:
    """``base`` with every part's paths and components added; a duplicate is a SpecError naming both files."""
    doc = copy.deepcopy(base)
    doc.setdefault("paths", {})
    owner: dict[tuple, str] = {}
    for section, entries in (doc.get("components") or {}).items():
        for name in entries or {}:
            owner[("component", section, name)] = BASE_FILE
    for path, item in doc["paths"].items():
        for method in item or {}:
            owner[("op", path, method)] = BASE_FILE
    for file_name, part in parts:
        unknown = set(part) - {"paths", "components"}
        if unknown:
            raise SpecError(f"{file_name}: only 'paths' and 'components' belong in an area file, not "
                            f"{', '.join(sorted(unknown))}")
        for path, item in (part.get("paths") or {}).items():
            target = doc["paths"].setdefault(path, {})
            for key, value in (item or {}).items():
                if key in METHODS:
                    clash = owner.get(("op", path, key))
                    if clash:
                        raise SpecError(f"{key.upper()} {path} is described in both {clash} and {file_name}")
                    owner[("op", path, key)] = file_name
                elif key in target and target[key] != value:
                    raise SpecError(f"{path}: '{key}' differs between files ({file_name})")
                target[key] = value
        for section, entries in (part.get("components") or {}).items():
            into = doc.setdefault("components", {}).setdefault(section, {})
            for name, value in (entries or {}).items():
                clash = owner.get(("component", section, name))
                if clash:
                    raise SpecError(f"components.{section}.{name} is defined in both {clash} and {file_name}")
                owner[("component", section, name)] = file_name
                into[name] = value
    return doc


def _add_app_answers(doc: dict) -> None:
    """What the app's hooks answer on any route, where the operation does not say it itself."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            answers = op.setdefault("responses", {})
            added = {"400": "BadRequest", "500": "ServerFault"}
            if method not in READS:
                added["403"] = "CrossSite"
            if "requestBody" in op:
                added["413"] = "TooLarge"
            if path.startswith("/api/"):
                added.update({"401": "Unauthorized", "429": "TooManyTries"})
            for code, name in added.items():
                answers.setdefault(code, {"$ref": f"#/components/responses/{name}"})


def build(folder: Path = SPEC_DIR) -> dict:
    """The merged description from the YAML files in ``folder`` (no cache)."""
    base = _read(folder / BASE_FILE)
    parts = [(p.name, _read(p)) for p in sorted(folder.glob("*.yaml")) if p.name != BASE_FILE]
    doc = merge(base, parts)
    doc.setdefault("info", {})["version"] = __version__
    _add_app_answers(doc)
    doc["paths"] = dict(sorted(doc["paths"].items()))
    return doc


def document(folder: Path = SPEC_DIR) -> dict:
    """The merged description, built once per process."""
    with _lock:
        if folder not in _cache:
            _cache[folder] = build(folder)
        return _cache[folder]


def flask_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/api/jobs/<job_id>`` and ``<path:x>`` become ``{job_id}``, ``{x}``."""
    out, rest = [], rule
    while "<" in rest:
        head, _, tail = rest.partition("<")
        variable, _, rest = tail.partition(">")
        out += [head, "{", variable.rpartition(":")[2], "}"]
    return "".join(out) + rest


def undescribed(app, doc: dict) -> list[str]:
    """Every "METHOD /path" the app serves (but static files, HEAD and OPTIONS) that ``doc`` leaves out."""
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        item = doc["paths"].get(flask_path(rule.rule), {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in item:
                missing.append(f"{method} {flask_path(rule.rule)}")
    return missing


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())


@bp.get("/docs")
def docs():
    """Swagger UI (vendored in static/vendor/swagger-ui) on this dashboard's own description."""
    return render_template("api_docs.html", spec_url=url_for("openapi.openapi_json"),
                           token_required=bool(current_app.config["CAPTION_SETTINGS"]["API_TOKEN"]))
