"""The dependency rule over the source (DESIGN.md, README "Architecture"): hdri <- synth <- pretrain <- finetune
<- hands. No module imports a layer above its own, at the top of a file or inside a function, and no module
names one in a lazy "module:attr" string (a registry entry or an import by name), which is an import too."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["hdri", "synth", "pretrain", "finetune", "hands"]
MODULE_STRING = re.compile(r"^(%s)(\.\w+)+(:\w+)?$" % "|".join(LAYERS))


def references(path: Path) -> list:
    """(line, top-level package) of every absolute import and every "package.module[:attr]" string."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            found.append((node.lineno, node.value.split(".")[0]))
    return found


def upward_references() -> list:
    bad = []
    for layer, package in enumerate(LAYERS):
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, target in references(path):
                if target in LAYERS and LAYERS.index(target) > layer:
                    bad.append(f"{path.relative_to(ROOT)}:{line} ({package}) -> {target}")
    return bad


def test_no_module_reaches_a_layer_above_its_own():
    assert upward_references() == []


def test_the_check_sees_function_level_imports_and_lazy_strings(tmp_path):
    """The rule's own check, on a hand-written module: both kinds of upward reference are found, a
    same-layer and a downward one are not."""
    src = tmp_path / "m.py"
    src.write_text('import numpy\nfrom synth import poses\n\n\ndef f():\n    from finetune.models import build_model\n'
                   '    return build_model\n\n\nTABLE = {"mesh": "finetune.task_mesh:MeshTask", "x": "pretrain.task2d"}\n'
                   'DOC = "see finetune/task_mesh.py"\n')
    refs = references(src)
    assert (6, "finetune") in refs and (10, "finetune") in refs and (10, "pretrain") in refs
    assert (2, "synth") in refs and not any(line == 11 for line, _ in refs)
