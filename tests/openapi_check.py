"""Checks an answer against the OpenAPI description: its status code is described for the operation, and
its JSON body matches the described schema (OAS 3.1 schema objects: JSON Schema 2020-12 with the OAS
vocabulary, by openapi-schema-validator, with every ``$ref`` resolved in the whole description)."""

from __future__ import annotations

from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

BASE_URI = "urn:captioning-openapi"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Checker:
    def __init__(self, doc: dict):
        self.doc = doc
        self.registry = Registry().with_resource(BASE_URI, DRAFT202012.create_resource(doc))
        self.checked: set[tuple[str, str, int]] = set()

    def _at(self, pointer: str):
        node = self.doc
        for token in pointer.strip("/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    def _follow(self, pointer: str) -> str:
        """The pointer of the object itself, past any $ref to components."""
        while "$ref" in self._at(pointer):
            pointer = self._at(pointer)["$ref"].removeprefix("#")
        return pointer

    def response_pointer(self, method: str, template: str, status: int) -> str:
        item = self.doc["paths"].get(template)
        assert item is not None, f"{template} is not described"
        op = item.get(method.lower())
        assert op is not None, f"{method} {template} is not described"
        codes = op["responses"]
        code = next((c for c in (str(status), f"{str(status)[0]}XX", "default") if c in codes), None)
        assert code is not None, f"{method} {template} answered {status}, which the description does not list " \
                                 f"({', '.join(codes)})"
        return self._follow(f"/paths/{_escape(template)}/{method.lower()}/responses/{code}")

    def check(self, method: str, template: str, status: int, body, content_type: str = "application/json") -> None:
        """AssertionError naming every mismatch if ``body`` (parsed JSON) is not what is described."""
        pointer = self.response_pointer(method, template, status)
        content = self._at(pointer).get("content") or {}
        media = content_type.split(";")[0].strip()
        assert media in content, f"{method} {template} {status}: {media} is not described ({', '.join(content)})"
        schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
        validator = OAS31Validator({"$ref": f"{BASE_URI}#{schema_pointer}"}, registry=self.registry,
                                   format_checker=oas31_format_checker)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{method} {template} {status} does not match its schema:\n" + "\n".join(
            f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:10])
        self.checked.add((method.upper(), template, status))

    def check_response(self, resp, method: str, template: str, expected: int | None = None):
        """A Flask test-client answer: its status (``expected`` if given) and JSON body.  The JSON is returned."""
        if expected is not None:
            assert resp.status_code == expected, f"{method} {template}: {resp.status_code} {resp.get_data(True)[:500]}"
        body = resp.get_json()
        self.check(method, template, resp.status_code, body, resp.content_type)
        return body
