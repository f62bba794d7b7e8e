"""The JSON Schema of a route, for the Helm chart's ``values.schema.json``.

The chart takes ``routes`` exactly as the config file does; without a schema
a typo in a route key installs and then crash-loops (``tidegate`` refuses
the config at start). The schema is generated from the settings classes
themselves (pydantic), so it cannot drift from what the parts accept:
``python -m tidegate.settings.schema charts/tidegate/values.schema.json``
writes it into the chart, and a test fails when the chart's copy differs.
Only the shape is checked there; what needs code (a callback URL's form, a
secret's format, one setting against another) is left to ``tidegate check``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from tidegate.settings.route import RouteSettings


def _plain(node: Any) -> Any:
    """The schema without pydantic's titles and descriptions (docstrings): the
    chart's schema checks, docs/configuration.md documents."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k not in ("title", "description")}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def route_schema() -> dict[str, Any]:
    """``{"$defs": ..., "route": ...}``: a route's schema and the ones it uses."""
    schema = _plain(TypeAdapter(RouteSettings).json_schema(ref_template="#/$defs/{model}"))
    defs = schema.pop("$defs", {})
    return {"$defs": defs, "route": schema}


def with_routes(values_schema: dict[str, Any]) -> dict[str, Any]:
    """The chart's values schema with ``routes`` checked as routes."""
    generated = route_schema()
    out = dict(values_schema)
    out["$defs"] = {**generated["$defs"], "RouteSettings": generated["route"]}
    routes = dict(out["properties"]["routes"])
    routes["items"] = {"$ref": "#/$defs/RouteSettings"}
    out["properties"] = {**out["properties"], "routes": routes}
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "charts/tidegate/values.schema.json")
    schema = with_routes(json.loads(path.read_text()))
    path.write_text(json.dumps(schema, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
