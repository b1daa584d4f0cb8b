"""pretrain.registry.Registry, the one helper behind every name table: lazy references are imported only when
asked for, a module of the name is discovered once, a base registry is searched after its own entries, and an
unknown name is an error listing the known ones."""
from __future__ import annotations

import sys

import pytest

from pretrain.registry import Registry, resolve


def test_a_lazy_entry_is_imported_on_first_use_and_then_kept():
    sys.modules.pop("json.tool", None)
    reg = Registry("thing", {"tool": "json.tool:main", "dumps": "json:dumps"})
    assert "json.tool" not in sys.modules and reg.reference("tool") == "json.tool:main"
    import json

    assert reg.get("dumps") is json.dumps and reg["DUMPS"] is json.dumps      # names are lower-cased
    assert reg.get("tool") is sys.modules["json.tool"].main and reg.reference("tool") is reg.get("tool")


def test_unknown_names_list_the_known_ones_in_the_registrys_error():
    class Missing(KeyError):
        pass

    reg = Registry("widget", {"b": "json:dumps", "a": "json:loads"}, error=Missing)
    with pytest.raises(Missing, match="unknown widget 'c'; widgets: a, b"):
        reg.get("c")
    assert "c" not in reg and reg.names() == ["a", "b"] and list(reg) == ["b", "a"]    # iteration: registration order
    with pytest.raises(ValueError, match="not a 'module:attr' reference"):
        reg.register("d", "json.dumps")
    with pytest.raises(ValueError, match="expected 'module:attr'"):
        resolve("json:")


def test_discovery_imports_the_module_of_an_unknown_name_once(tmp_path, monkeypatch):
    pkg = tmp_path / "regpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "extra_thing.py").write_text("from regdemo import REG\nCOUNT = 1\nREG.register('extra-thing', 'json:dumps')\n")
    (tmp_path / "regdemo.py").write_text("from pretrain.registry import Registry\n"
                                         "REG = Registry('thing', discover='regpkg.{}')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import regdemo

    assert "extra-thing" in regdemo.REG                       # regpkg.extra_thing imported, and it registered
    assert "nothing" not in regdemo.REG and "nothing" not in regdemo.REG   # a missing module is no error, tried once


def test_a_base_registry_is_searched_after_the_registrys_own_entries():
    base = Registry("encoder", {"a": "json:dumps"})
    top = Registry("encoder", {"b": "json:loads"}, base=base)
    top.register("a", len)
    assert top.get("a") is len and base.get("a").__name__ == "dumps" and top.names() == ["a", "b"]
    assert "b" not in base
