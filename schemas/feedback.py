"""Analyst verdicts checked against ``feedback.schema.json``: one rule for the CLI that sends them, the workers
that apply them and ``distillguard detect --feedback``, so a record one of them refuses is refused by all."""

from __future__ import annotations

from typing import Any

from schemas.codec import load_schema


def feedback_problems(record: Any) -> list[str]:
    """What is wrong with a feedback record (empty when it is valid): required fields, label enum, types, lengths."""
    schema = load_schema("feedback")
    if not isinstance(record, dict):
        return ["not a JSON object"]
    out = [f"{name} is missing" if record.get(name) is None else f"{name} is empty"
           for name in schema["required"] if record.get(name) in (None, "")]
    for name, spec in schema["properties"].items():
        value = record.get(name)
        if value is None or value == "":
            continue
        if "enum" in spec and value not in spec["enum"]:
            out.append(f"{name} must be one of {', '.join(spec['enum'])}")
        elif "enum" not in spec and not isinstance(value, str):
            out.append(f"{name} must be a string")
        elif isinstance(value, str) and len(value) > spec.get("maxLength", len(value)):
            out.append(f"{name} is longer than {spec['maxLength']} characters")
    return out
