"""Check OCSF / ECS documents against the schema definitions shipped in ``schemas/siem/``.

Why a small checker instead of a generic JSON Schema: the shipped files are copies of the published
OCSF and ECS definitions in their own shape (OCSF attribute types/requirements/enums, ECS flat field
list), so a reviewer can diff them against the upstream sources. The checks:

* every emitted field exists in the definitions (no invented fields);
* its value has the defined type (OCSF ``integer_t``/``string_t``/``timestamp_t``/objects/arrays,
  ECS ``keyword``/``date``/``long``/``float``/``object``...), integers in range;
* enum / allowed values are respected;
* OCSF ``required`` attributes and ``at_least_one`` constraints are present.

Returns a list of problems (empty = valid); never raises on a bad document. Needs PyYAML (dev extra).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from importlib import resources
from typing import Any

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


@functools.cache
def ocsf_definitions() -> dict[str, Any]:
    return json.loads(resources.files("schemas").joinpath("siem/ocsf_detection_finding.json").read_bytes())


@functools.cache
def ecs_definitions() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(resources.files("schemas").joinpath("siem/ecs_fields.yml").read_text())


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_ocsf_scalar(path: str, type_name: str, value: Any, defs: dict[str, Any]) -> list[str]:
    kind = defs["types"].get(type_name)
    if kind is None:
        return [f"{path}: type {type_name} is not in the shipped definitions"]
    if kind == "any":
        return []
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "integer":
        lo, hi = INT32 if type_name == "integer_t" else INT64
        ok = _is_int(value) and lo <= value <= hi
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    else:  # "object": free-form JSON object (e.g. unmapped)
        ok = isinstance(value, dict)
    return [] if ok else [f"{path}: {value!r} is not a valid {type_name}"]


def _check_ocsf_object(path: str, doc: Any, spec: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    if not isinstance(doc, dict):
        return [f"{path or '<root>'}: expected an object"]
    problems: list[str] = []
    attrs = spec["attributes"]
    for name, a in attrs.items():
        if a.get("requirement") == "required" and name not in doc:
            problems.append(f"{path}{name}: required attribute missing")
    group = spec.get("constraints", {}).get("at_least_one")
    if group and not any(k in doc for k in group):
        problems.append(f"{path or '<root>'}: needs at least one of {', '.join(group)}")
    for name, value in doc.items():
        a = attrs.get(name)
        where = f"{path}{name}"
        if a is None:
            problems.append(f"{where}: not an attribute of this class/object")
            continue
        values = value if a.get("is_array") else [value]
        if a.get("is_array") and not isinstance(value, list):
            problems.append(f"{where}: expected an array")
            continue
        for i, v in enumerate(values):
            at = f"{where}[{i}]" if a.get("is_array") else where
            if a["type"] in defs["objects"]:
                problems += _check_ocsf_object(at + ".", v, defs["objects"][a["type"]], defs)
            elif a["type"] in defs["types"]:
                problems += _check_ocsf_scalar(at, a["type"], v, defs)
                if "enum" in a and str(v) not in a["enum"]:
                    problems.append(f"{at}: {v!r} not in the enum {sorted(a['enum'])}")
            else:
                problems.append(f"{at}: object type {a['type']} is not shipped in schemas/siem/")
    return problems


def validate_ocsf(doc: dict[str, Any]) -> list[str]:
    """Problems of an OCSF Detection Finding against the shipped class definition ([] = valid)."""
    defs = ocsf_definitions()
    problems = _check_ocsf_object("", doc, defs["class"], defs)
    if doc.get("type_uid") != doc.get("class_uid", 0) * 100 + doc.get("activity_id", -1):
        problems.append("type_uid: must be class_uid * 100 + activity_id")
    if doc.get("metadata", {}).get("version") != defs["version"]:
        problems.append(f"metadata.version: must be the shipped OCSF version {defs['version']}")
    return problems


def flatten(doc: dict[str, Any], prefix: str = "", stop: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Nested ECS document -> ``{dotted.name: value}``; ``stop`` names object fields kept whole."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and name not in stop:
            out.update(flatten(v, name + ".", stop))
        else:
            out[name] = v
    return out


def _date_ok(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        return datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


ECS_TYPES = {
    "keyword": lambda v: isinstance(v, str),
    "wildcard": lambda v: isinstance(v, str),
    "match_only_text": lambda v: isinstance(v, str),
    "text": lambda v: isinstance(v, str),
    "date": _date_ok,
    "long": lambda v: _is_int(v) and INT64[0] <= v <= INT64[1],
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "ip": lambda v: isinstance(v, str),
    "flattened": lambda v: isinstance(v, dict),
}


def validate_ecs(doc: dict[str, Any]) -> list[str]:
    """Problems of an ECS document against the shipped field definitions ([] = valid)."""
    fields: dict[str, dict[str, Any]] = ecs_definitions()["fields"]
    objects = frozenset(n for n, f in fields.items() if f["type"] == "object")
    flat = flatten(doc, stop=objects)
    problems = [f"{n}: required field missing" for n, f in fields.items() if f.get("required") and n not in flat]
    for name, value in flat.items():
        f = fields.get(name)
        if f is None:
            problems.append(f"{name}: not an ECS field in the shipped definitions")
            continue
        if f["type"] == "object":
            check = ECS_TYPES[f.get("object_type", "keyword")]
            if not isinstance(value, dict) or not all(check(v) for v in value.values()):
                problems.append(f"{name}: expected an object of {f.get('object_type')} values")
            continue
        # Any ECS field may hold an array of its type (Elasticsearch has no separate array type).
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not ECS_TYPES[f["type"]](v):
                problems.append(f"{name}: {v!r} is not a valid {f['type']}")
            elif "allowed_values" in f and v not in f["allowed_values"]:
                problems.append(f"{name}: {v!r} not in the allowed values {f['allowed_values']}")
    return problems
