"""The API's operations, declared once: the Flask routes and the OpenAPI 3.1 document both read them.

Schemas come from pydantic (``models_json_schema``), which writes JSON Schema 2020-12, the
dialect OpenAPI 3.1 uses; nothing in the document is written by hand. No Flask here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from portal.api.schemas import Problem
from portal.core.markers import N_
from portal.core.vocabulary import StaffRole

PROBLEM_TITLES = {
    400: N_("Bad request"),
    401: N_("Not authenticated"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict with the current state"),
    413: N_("Too large"),
    422: N_("Invalid input"),
    429: N_("Too many requests"),
    503: N_("Service unavailable"),
}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PATH_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Operation:
    endpoint: str
    method: str
    rule: str  # Flask's form: /requests/<reference>
    summary: str
    description: str
    tag: str
    roles: tuple[StaffRole, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    # What the token must be allowed to do (its permissions), on top of its owner's role.
    permission: str = "staff_api"

    @property
    def writes(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def path(self) -> str:
        return _PATH_PARAMETER.sub(r"{\1}", self.rule)

    @property
    def path_parameters(self) -> list[str]:
        return _PATH_PARAMETER.findall(self.rule)

    @property
    def statuses(self) -> tuple[int, ...]:
        """Every status the operation may answer with, success first."""
        common = {401, 403, 429} | ({400, 422} if self.writes or self.query else set())
        return (self.status, *sorted(common | set(self.errors)))


def _without_null(schema: dict) -> dict:
    # A query string has no null: an absent parameter is the default. Describe only real values.
    variants = [v for v in schema.get("anyOf", []) if v != {"type": "null"}]
    if not variants:
        return schema
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**rest, **variants[0]} if len(variants) == 1 else {**rest, "anyOf": variants}


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document(operations: list[Operation], *, title: str, version: str, server: str, description: str) -> dict:
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    for op in operations:
        models |= {(m, "validation") for m in (op.body, op.query) if m is not None}
        if op.response is not None:
            models.add((op.response, "serialization"))
    _, top = models_json_schema(
        sorted(models, key=lambda m: m[0].__name__), ref_template="#/components/schemas/{model}"
    )
    schemas = top.get("$defs", {})

    paths: dict[str, dict] = {}
    for op in operations:
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            }
            for name in op.path_parameters
        ]
        if op.query is not None:
            query_schema = schemas[op.query.__name__]
            required = set(query_schema.get("required", []))
            for name, field_schema in query_schema["properties"].items():
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "description": field_schema.get("description", ""),
                        "schema": _without_null(field_schema),
                    }
                )
        if op.writes:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Any unique string (a UUID): a repeated request with the same key gets the first "
                    "answer again instead of acting twice.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
                }
            )
        responses: dict[str, dict] = {}
        for status in op.statuses:
            if status == op.status:
                content = {"application/json": {"schema": _ref(op.response)}} if op.response else None
                responses[str(status)] = {"description": "Success", **({"content": content} if content else {})}
            else:
                responses[str(status)] = {
                    "description": PROBLEM_TITLES[status],
                    "content": {"application/problem+json": {"schema": _ref(Problem)}},
                }
        entry = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "description": op.description,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
            "security": [{"bearerToken": []}],
            "x-roles": [role.value for role in op.roles],
            "x-permission": op.permission,
        }
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    for query in {op.query for op in operations if op.query is not None}:
        schemas.pop(query.__name__, None)  # described as parameters instead

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A staff API token from `portal staff token EMAIL --name NAME`. It acts with "
                    "the role of its staff member.",
                }
            },
        },
    }


def describe(schema: dict) -> str:
    """A JSON Schema in a few words, for the reference page: "integer, 1 to 100, default 50"."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(describe(variant) for variant in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return f"exactly {schema['const']}"
    kind = schema.get("type", "any")
    if kind == "array":
        words = [f"list of {describe(schema.get('items', {}))}"]
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        words = [f"map of {describe(schema['additionalProperties'])}"]
    else:
        words = [f"{kind} ({schema['format']})" if "format" in schema else str(kind)]
    for low, high, unit in (
        ("minimum", "maximum", ""),
        ("minLength", "maxLength", " characters"),
        ("minItems", "maxItems", " items"),
    ):
        if low in schema and high in schema:
            words.append(f"{schema[low]} to {schema[high]}{unit}")
        elif high in schema:
            words.append(f"at most {schema[high]}{unit}")
        elif low in schema:
            words.append(f"at least {schema[low]}{unit}")
    if "pattern" in schema:
        words.append(f"matching {schema['pattern']}")
    if "default" in schema and schema["default"] not in (None, "", []):
        words.append(f"default {schema['default']}")
    return ", ".join(words)
