"""Write a deliberately broken copy of an OpenAPI document, for scripts/api-tools.sh to prove that
the optic breaking-change check fails on a breaking change.

Usage: python3 break_openapi.py MUTATION IN.json OUT.json
  drop-response-property   the `Customer` schema loses `email` (every response that shows a customer)
  require-query-parameter  `GET /vN/customers` gets a new required query parameter
"""

from __future__ import annotations

import json
import sys


def drop_response_property(document: dict) -> None:
    customer = document["components"]["schemas"]["Customer"]
    del customer["properties"]["email"]
    customer["required"] = [name for name in customer.get("required", []) if name != "email"]


def require_query_parameter(document: dict) -> None:
    (path,) = [path for path in document["paths"] if path.endswith("/customers")]
    operation = document["paths"][path]["get"]
    operation.setdefault("parameters", []).append(
        {"name": "breaking_probe", "in": "query", "required": True, "schema": {"type": "string"}}
    )


MUTATIONS = {
    "drop-response-property": drop_response_property,
    "require-query-parameter": require_query_parameter,
}


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in MUTATIONS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(MUTATIONS)}}} IN.json OUT.json")
    mutation, source, target = sys.argv[1:]
    with open(source, encoding="utf-8") as file:
        document = json.load(file)
    MUTATIONS[mutation](document)
    with open(target, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)


if __name__ == "__main__":
    main()
