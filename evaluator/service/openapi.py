"""The OpenAPI document: FastAPI's, with our request schema (we parse that body ourselves),
nullable embed blocks, and bearer security on every non-service operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from imagejury.core.schema import EvaluationRequest

_NULLABLE_BLOCKS = ("judges", "gate_failures")


def _add_request_schema(schema: dict[str, Any]) -> None:
    req = EvaluationRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in req.pop("$defs", {}).items():
        comps.setdefault(name, sub)
    comps["EvaluationRequest"] = req


def _nullable_embed_blocks(schema: dict[str, Any]) -> None:
    """?embed= leaves the blocks it does not name null: say so in the document."""
    props = schema["components"]["schemas"].get("Evaluation", {}).get("properties", {})
    for block in _NULLABLE_BLOCKS:
        if block in props and "anyOf" not in props[block]:
            orig = props[block]
            props[block] = {
                "anyOf": [{k: v for k, v in orig.items() if k not in ("title", "description")}, {"type": "null"}],
                "title": orig.get("title", block),
                "description": "null when ?embed= does not name it",
            }


def _bearer_everywhere(schema: dict[str, Any]) -> None:
    for path in schema.get("paths", {}).values():
        for op in path.values():
            if isinstance(op, dict) and "security" not in op and op.get("tags") != ["service"]:
                op.setdefault("security", [{"HTTPBearer": []}])


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the builder of our document (built once, then cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _add_request_schema(schema)
        _nullable_embed_blocks(schema)
        _bearer_everywhere(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
