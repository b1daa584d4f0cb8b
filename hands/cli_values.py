"""KEY=VALUE command-line options (`hands render --set`, `hands train --model-option / --task-option /
--eval`) as a dict, one parser for all of them."""
from __future__ import annotations


def key_values(items, flag: str, parse: bool = True) -> dict:
    """['KEY=VALUE', ...] given to `flag` -> {KEY: VALUE}, the value read as YAML unless `parse` is False."""
    import yaml

    out = {}
    for item in items or ():
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got '{item}'")
        out[key.strip()] = yaml.safe_load(value) if parse else value.strip()
    return out
