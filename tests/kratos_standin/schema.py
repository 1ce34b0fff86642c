"""Validate bodies against the schemas in Kratos' own OpenAPI document.

The document is OpenAPI 3.0, whose Schema Objects are draft-4 JSON Schema plus
``nullable``. ``nullable`` is rewritten into plain JSON Schema here, and two
places where the document disagrees with what Kratos' Go code puts on the wire
are corrected (see ``_apply_errata``) so that real Kratos answers validate.
"""

from __future__ import annotations

import copy
import functools
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

# The project's shared documents sit beside the checkout (../shared); KRATOS_SPEC_PATH points
# elsewhere when they do not.
SPEC_PATH = Path(
    os.environ.get("KRATOS_SPEC_PATH")
    or Path(__file__).resolve().parents[3] / "shared" / "kratos-spec" / "api.json"
)
_BASE_URI = "urn:kratos-spec:api.json"


class SchemaMismatchError(AssertionError):
    """A body does not match its Kratos schema (an AssertionError so pytest shows it plainly)."""


def _allow_null(node: Any) -> Any:
    if isinstance(node, list):
        return [_allow_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _allow_null(value) for key, value in node.items()}
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _apply_errata(schemas: dict[str, Any]) -> None:
    # herodot fills `details` with arbitrary keys (redirect_browser_to, docs, ...);
    # the generator turned Go's map[string]interface{} into "no properties allowed".
    schemas["genericError"]["properties"]["details"].pop("additionalProperties", None)
    # BrowserLocationChangeRequiredError embeds *herodot.DefaultError as "error",
    # i.e. a genericError, not an errorGeneric wrapper (selfservice/flow/error.go).
    schemas["errorBrowserLocationChangeRequired"]["properties"]["error"] = {
        "$ref": "#/components/schemas/genericError"
    }


@functools.cache
def _document() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(
            f"Kratos' OpenAPI document is not at {SPEC_PATH}: keep ../shared beside the "
            "checkout or set KRATOS_SPEC_PATH to kratos-spec/api.json"
        )
    raw = orjson.loads(SPEC_PATH.read_bytes())
    doc: dict[str, Any] = _allow_null(copy.deepcopy(raw))
    _apply_errata(doc["components"]["schemas"])
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(_document(), default_specification=DRAFT4)
    registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
    return registry


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@functools.cache
def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    checker.checks("uuid")(_is_uuid)
    return checker


@functools.cache
def _validator(schema_name: str) -> jsonschema.Draft4Validator:
    if schema_name not in _document()["components"]["schemas"]:
        raise KeyError(f"no schema named {schema_name!r} in {SPEC_PATH}")
    ref = {"$ref": f"{_BASE_URI}#/components/schemas/{schema_name}"}
    return jsonschema.Draft4Validator(ref, registry=_registry(), format_checker=_format_checker())


def validate(schema_name: str, body: object) -> None:
    """Raise SchemaMismatchError unless ``body`` matches ``components/schemas/<schema_name>``."""
    errors = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]
        ]
        raise SchemaMismatchError(f"body does not match {schema_name}:\n" + "\n".join(lines))
