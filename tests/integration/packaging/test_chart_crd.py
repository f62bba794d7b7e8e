"""The BacklogScaler CRD: valid Kubernetes, its example, and field for field the
scaler's settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import TypeAdapter

from scaler.resources import parse as parse_backlog_scaler
from tests.integration.packaging.chart import (
    CHART,
    KUBERNETES,
)
from tidegate.settings import ScalerSettings
from tidegate.settings.route import ThrottleSettings

CRD = CHART / "files" / "backlogscalers.tidegate.io.yaml"

EXAMPLE = CHART / "examples" / "backlogscaler.yaml"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_the_crd_is_valid_kubernetes_with_status_and_columns() -> None:
    crd = yaml.safe_load(CRD.read_text())
    kubernetes_validate.validate(crd, KUBERNETES, strict=True)
    (version,) = crd["spec"]["versions"]
    assert crd["spec"]["group"] == "tidegate.io"
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Route", "Desired", "Lag", "Throttled"} <= columns


def test_the_crd_accepts_the_example_and_rejects_malformed_ones() -> None:
    # OpenAPI v3.0 schemas (boolean exclusiveMinimum) read as JSON Schema draft 4.
    validator = jsonschema.Draft4Validator(crd_schema())
    example = yaml.safe_load(EXAMPLE.read_text())
    validator.validate(example)
    for broken in (
        {"spec": {"target": {"name": "w"}}},  # no route
        {"spec": {"route": "Orders!", "target": {"name": "w"}}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "max_replicas": "many"}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "interval_s": 0}},
        {"spec": {"route": "orders", "target": {"kind": "local", "name": "w"}}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "throttle": {"status": 418}}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "partitions": 0}},
        {"spec": {"route": "orders", "target": {"name": "w"}, "partitions": 257}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(broken)


def test_the_crd_matches_the_scaler_settings() -> None:
    """Every spec key is a ScalerSettings field (or the route's name and
    partitions), and the scaler reads the example."""
    spec = crd_schema()["properties"]["spec"]["properties"]
    fields = {f.name for f in dataclasses.fields(ScalerSettings)}
    assert set(spec) - {"route", "partitions"} == fields
    example = yaml.safe_load(EXAMPLE.read_text())
    parsed = parse_backlog_scaler(example)
    assert parsed.error is None
    assert parsed.settings is not None
    assert parsed.settings.target.namespace == "shop"  # defaulted from the resource
    assert parsed.partitions is None  # the config's, else 1


def _openapi(field: dict[str, Any]) -> dict[str, Any]:
    """A settings field's JSON Schema (pydantic's) as the CRD states it:
    OpenAPI v3.0's boolean exclusive bounds, an optional value as its type."""
    for option in field.get("anyOf", []):
        if option.get("type") != "null":
            field = {**field, **option}
    out: dict[str, Any] = {
        k: field[k] for k in ("type", "minimum", "maximum", "enum") if k in field
    }
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in field:
            out[plain], out[bound] = field[bound], True
    return out


@pytest.mark.parametrize(
    ("model", "where"),
    [(ScalerSettings, ()), (ThrottleSettings, ("throttle",))],
    ids=["spec", "spec.throttle"],
)
def test_every_settings_field_is_in_the_crd_with_its_type_and_bounds(
    model: type, where: tuple[str, ...]
) -> None:
    """The API server drops what the schema does not name: each field of the
    model must be there, typed and bounded alike, its default (if stated) the
    model's. ``target`` has its own, narrower shape (the Deployment kind only)."""
    crd = crd_schema()["properties"]["spec"]
    for key in where:
        crd = crd["properties"][key]
    model_schema = TypeAdapter(model).json_schema()["properties"]
    assert set(model_schema) - {"target"} <= set(crd["properties"])
    for name, field in model_schema.items():
        if name == "target" or "$ref" in field:
            continue
        stated = crd["properties"][name]
        expected = _openapi(field)
        assert {k: stated[k] for k in expected if k in stated} == expected, name
        assert set(expected) <= set(stated), f"{name}: the CRD misses {set(expected) - set(stated)}"
        if "default" in stated:
            assert stated["default"] == field["default"], name


@pytest.mark.parametrize(
    ("partitions", "error"),
    [
        (3, None),
        (256, None),
        (0, "spec.partitions"),
        (257, "spec.partitions"),
        ("3", "spec.partitions"),
        (True, "spec.partitions"),
        (2.5, "spec.partitions"),
    ],
)
def test_the_scaler_reads_partitions_from_a_spec(partitions: object, error: str | None) -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    example["spec"]["partitions"] = partitions
    parsed = parse_backlog_scaler(example)
    if error is None:
        assert (parsed.error, parsed.partitions) == (None, partitions)
    else:
        assert parsed.error is not None
        assert parsed.error.startswith(error)
        assert parsed.settings is None
