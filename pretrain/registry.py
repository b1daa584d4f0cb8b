"""One registry for every "name -> thing" table of the project (encoders, tasks, models, datasets, stages).

    ENCODERS = Registry("encoder", {"densestack": "pretrain.encoders.densestack:DenseStack"})
    ENCODERS.register("tiny", TinyEncoder)          # an object, or a lazy "module:attr" reference
    @ENCODERS.decorator("other")                     # the same, as a class or function decorator
    ENCODERS.get("densestack")                       # imports the module on first use, then keeps the object

A lazy entry costs nothing until it is asked for, so `hands --help` and `import finetune` stay light
and a lower layer can list a higher layer's entries only when the higher layer registers them itself
(the dependency rule, README "Architecture"). `discover="package.{}"` imports that module once for a
name not registered yet, so a module that registers itself at import time is found without editing
the table. Names are looked up after `normalise` (lower case by default). `base=OTHER` also offers
OTHER's entries (looked up after its own, listed with them): run-time additions (tests, experiments)
kept apart from a layer's own table. This module imports nothing heavy: any layer may import it.
"""
from __future__ import annotations

import importlib


def resolve(ref):
    """The object a "module:attr" reference names (other values are returned as they are)."""
    if isinstance(ref, str):
        module, sep, attr = ref.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"lazy reference {ref!r}: expected 'module:attr'")
        return getattr(importlib.import_module(module), attr)
    return ref


def _lower(name) -> str:
    return str(name).strip().lower()


class Registry:
    """name -> object, entries given as "module:attr" strings imported on first access.

    `error` is the exception class of an unknown name (ValueError by default); its message is
    "unknown <kind> 'name'; <plural>: a, b, c"."""

    def __init__(self, kind: str, entries: dict | None = None, *, normalise=_lower, discover: str | None = None,
                 error=ValueError, plural: str | None = None, base: Registry | None = None):
        self.kind, self.normalise, self.discover, self.error = kind, normalise, discover, error
        self.plural = plural or f"{kind}s"
        self.base = base
        self._entries: dict = {}
        self._tried: set = set()
        for name, ref in (entries or {}).items():
            self.register(name, ref)

    def register(self, name: str, ref) -> None:
        """Add or replace an entry: the object itself, or a lazy "module:attr" reference."""
        if isinstance(ref, str) and ":" not in ref:
            raise ValueError(f"register {self.kind} {name!r}: {ref!r} is not a 'module:attr' reference")
        self._entries[self.normalise(name)] = ref

    def decorator(self, name: str):
        """`@REGISTRY.decorator(name)` registers the decorated class or function under `name`."""
        def deco(obj):
            self.register(name, obj)
            return obj
        return deco

    def _find(self, name):
        """(registry holding `name`, its key), or None: this one (discovering once), then `base`."""
        key = self.normalise(name)
        if key not in self._entries and self.discover and key not in self._tried:
            self._tried.add(key)
            module = self.discover.format(key.replace("-", "_"))
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                if err.name != module:
                    raise
        if key in self._entries:
            return self, key
        return self.base._find(name) if self.base is not None else None

    def _entry(self, name):
        found = self._find(name)
        if found is None:
            raise self.error(f"unknown {self.kind} {name!r}; {self.plural}: {', '.join(self.names())}")
        return found

    def __contains__(self, name) -> bool:
        return self._find(name) is not None

    def get(self, name):
        """The object registered under `name` (imported now if it was a lazy reference)."""
        owner, key = self._entry(name)
        value = owner._entries[key]
        if isinstance(value, str):
            value = owner._entries[key] = resolve(value)
        return value

    __getitem__ = get

    def _keys(self) -> list:
        """Every name in registration order (`base`'s first)."""
        keys = self.base._keys() if self.base is not None else []
        return keys + [k for k in self._entries if k not in keys]

    def names(self) -> list:
        """Every name, sorted (what error messages list)."""
        return sorted(self._keys())

    def __iter__(self):
        """Names in registration order, as a dict's keys."""
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def items(self) -> list:
        """(name, object) in registration order; imports every lazy entry."""
        return [(k, self.get(k)) for k in self._keys()]

    def reference(self, name) -> object:
        """The entry as registered (a "module:attr" string stays unimported), for listings."""
        owner, key = self._entry(name)
        return owner._entries[key]
