"""Declared record contracts: one field table gives the validator and the JSON Schema.

The interaction event has a hand-tuned validator on the hot path (``events/schema.py``). The
other records of the project (user profiles, the item catalog, recommendation requests) are
declared here as a tuple of :class:`Field`: :func:`validate` checks a decoded record against
it and names the reason of every refusal, and :func:`json_schema` writes the same rules as a
JSON Schema (committed next to this module, written by ``python -m events.contract``; a
contract test keeps file and table equal, and checks that validator and schema agree on
generated records).

>>> FIELDS = (Field("user_id", "str"), Field("age", "int", minimum=18, maximum=70),
...           Field("gender", "enum", choices=("M", "F", "O")))
>>> validate({"user_id": "u1", "age": 30, "gender": "F"}, FIELDS) is None
True
>>> validate({"user_id": "u1", "age": 17, "gender": "F"}, FIELDS).detail
'age must be an integer from 18 to 70, got 17'
>>> validate({"user_id": "u1", "age": 30}, FIELDS).detail
"missing field 'gender'"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from events.schema import Rejection

MAX_ID_LEN = 128
Kind = Literal["str", "int", "float", "enum", "object"]


@dataclass(frozen=True)
class Field:
    """One field of a record: its kind, bounds, and whether it may be missing or null."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    minimum: float | None = None  # int/float: inclusive lower bound
    maximum: float | None = None  # int/float: inclusive upper bound
    exclusive_minimum: float | None = None  # float: strict lower bound
    choices: tuple[str, ...] = ()  # enum: the allowed strings
    const: int | None = None  # int: the only allowed value (schema_version)
    description: str = ""
    fields: tuple[Field, ...] = ()  # object: its fields (all optional ones may be missing)

    def requirement(self) -> str:
        """What a value must be, in words (used in rejection details)."""
        if self.kind == "str":
            return f"a non-empty string of at most {MAX_ID_LEN} characters"
        if self.kind == "enum":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "object":
            return "a JSON object"
        if self.const is not None:
            return f"{self.const}"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.exclusive_minimum is not None:
            bound = f" > {self.exclusive_minimum:g}" + (f" and <= {self.maximum:g}" if self.maximum is not None else "")
        elif self.minimum is not None and self.maximum is not None:
            bound = f" from {self.minimum:g} to {self.maximum:g}"
        elif self.minimum is not None:
            bound = f" >= {self.minimum:g}"
        else:
            bound = ""
        return noun + bound


def _ok(value: Any, f: Field) -> bool:
    if f.kind == "str":
        return type(value) is str and 0 < len(value) <= MAX_ID_LEN
    if f.kind == "enum":
        return type(value) is str and value in f.choices
    if f.kind == "object":
        return type(value) is dict
    if f.kind == "int":
        if type(value) is not int:  # bool is not a number here, nor is 3.0 an integer
            return False
        if f.const is not None:
            return value == f.const
    elif not (type(value) is float or type(value) is int) or (type(value) is float and math.isnan(value)):
        return False
    if f.exclusive_minimum is not None and not value > f.exclusive_minimum:
        return False
    if f.minimum is not None and value < f.minimum:
        return False
    return not (f.maximum is not None and value > f.maximum)


def validate(obj: Any, fields: Sequence[Field], where: str = "") -> Rejection | None:
    """None when ``obj`` satisfies ``fields``, else a ``schema`` Rejection naming the field.

    Extra fields are allowed (forward compatibility). ``where`` prefixes nested field names.
    """
    if type(obj) is not dict:
        return Rejection("unparseable", f"expected a JSON object{' at ' + where if where else ''}, "
                                        f"got {type(obj).__name__}")
    for f in fields:
        name = where + f.name
        if f.name not in obj:
            if f.required:
                return Rejection("schema", f"missing field {name!r}")
            continue
        value = obj[f.name]
        if value is None and f.nullable:
            continue
        if not _ok(value, f):
            if f.const is not None:
                return Rejection("unsupported_schema_version", f"{name} {value!r}; this reader knows {f.const}")
            return Rejection("schema", f"{name} must be {f.requirement()}, got {value!r}")
        if f.kind == "object" and f.fields:
            nested = validate(value, f.fields, name + ".")
            if nested is not None:
                return nested
    return None


def _schema_of(f: Field) -> dict[str, Any]:
    out: dict[str, Any]
    if f.kind == "str":
        out = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN}
    elif f.kind == "enum":
        out = {"enum": list(f.choices)}
    elif f.kind == "object":
        out = {"type": "object", "properties": {g.name: _schema_of(g) for g in f.fields},
               "required": [g.name for g in f.fields if g.required]}
    elif f.const is not None:
        out = {"const": f.const}
    else:
        out = {"type": "integer" if f.kind == "int" else "number"}
        for key, value in (("minimum", f.minimum), ("maximum", f.maximum), ("exclusiveMinimum", f.exclusive_minimum)):
            if value is not None:
                out[key] = value
    if f.nullable:
        out = {"anyOf": [out, {"type": "null"}]}
    if f.description:
        out["description"] = f.description
    return out


def json_schema(name: str, title: str, description: str, fields: Sequence[Field]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a declared record."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://example.org/recstream/{name}.schema.json",
        "title": title,
        "description": description,
        "type": "object",
        "required": [f.name for f in fields if f.required],
        "properties": {f.name: _schema_of(f) for f in fields},
    }


def write_schemas() -> list[str]:
    """Write every declared record's JSON Schema file into events/ (profiles, requests); return the paths."""
    import json
    from pathlib import Path

    from events import profiles, requests

    written = []
    for name, (title, description, fields) in {**profiles.SCHEMAS, **requests.SCHEMAS}.items():
        path = Path(__file__).with_name(name)
        schema = json_schema(name.removesuffix(".schema.json"), title, description, fields)
        path.write_text(json.dumps(schema, indent=2) + "\n")
        written.append(str(path))
    return written


if __name__ == "__main__":
    print("\n".join(write_schemas()))
