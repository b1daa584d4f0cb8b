"""Every setting's type checked in one place, before any work starts, whatever it came from (a flag, a
`--set`, a YAML file, a stage's settings, a model option).

    check_types(values, typed_fields(RenderConfig), "render setting")     # a dataclass's fields
    check_types(settings, signature_types(stage_fn), "render stage setting")  # a function's keywords

A type comes from the annotation (a string under `from __future__ import annotations`: 'int', 'float',
'str', 'bool', 'dict', 'list', 'tuple', unions of them with 'None'); a setting without one (e.g. a stage's
`heldout_poses`, a fraction or a list) is checked by its own code. YAML's and JSON's forms are accepted for what they mean: an integer for a float, a list
for a tuple. Anything else (an object, an annotation of another type) is not checked here; its own
code checks it. A wrong value is a ValueError naming the setting, the value and what it should be.
"""
from __future__ import annotations

import dataclasses
import inspect

_WHAT = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
         "dict": "a mapping (KEY: VALUE, ...)", "list": "a list", "tuple": "a list", "None": "null"}


def _accepts(kind: str, value) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "dict":
        return isinstance(value, dict)
    return isinstance(value, (list, tuple))          # list, tuple


def kinds_of(annotation) -> tuple | None:
    """The checked kinds an annotation allows; None: not checked (no annotation, or another type)."""
    if annotation in (None, inspect.Parameter.empty, dataclasses.MISSING) or annotation == "":
        return None
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", str(annotation))
    kinds = tuple(part.strip() for part in annotation.split("|"))
    return kinds if all(k in _WHAT for k in kinds) else None


def typed_fields(cls) -> dict:
    """{field name: kinds} of a dataclass."""
    return {f.name: kinds_of(f.type) for f in dataclasses.fields(cls)}


def signature_types(fn) -> dict:
    """{keyword: kinds} of a function's keyword-only parameters (a pipeline stage's settings)."""
    return {p.name: kinds_of(p.annotation) for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY}


def check_types(values: dict, types: dict, what: str) -> None:
    """ValueError naming every value of `values` whose type `types` (from typed_fields / signature_types)
    does not allow; names `types` lacks are left to the caller (unknown-setting checks)."""
    bad = []
    for name, value in values.items():
        kinds = types.get(name)
        if kinds and not any(_accepts(k, value) for k in kinds):
            bad.append(f"{name}={value!r} (expected {' or '.join(dict.fromkeys(_WHAT[k] for k in kinds))})")
    if bad:
        raise ValueError(f"invalid {what}{'s' if len(bad) > 1 else ''}: {'; '.join(bad)}")


def mapping_of(data, source: str) -> dict:
    """A settings file's content as a mapping (an empty file: {}); anything else names the file."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of settings (KEY: VALUE lines), got a "
                         f"{type(data).__name__}")
    return data
