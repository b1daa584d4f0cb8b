"""Read MANO-format pickles without chumpy, and write plain-numpy copies.

The licensed MANO_RIGHT.pkl was written by Python 2 with chumpy objects inside
(shapedirs, J, ...). chumpy does not import on current Python, so the
unpickler below stands in for every chumpy class and keeps the array each
object wraps (its 'x' state), and maps the old scipy.sparse module paths.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

REQUIRED_KEYS = ("v_template", "f", "weights", "kintree_table", "J_regressor", "shapedirs", "posedirs")
MANO_TIP_VERTEX_IDS = (745, 317, 444, 556, 673)  # thumb, index, middle, ring, little


class ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling."""

    chumpy_class = "?"

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        self._state = state


class _ChumpyFreeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        if module.startswith("scipy.sparse") and name.endswith("_matrix"):
            return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def _plain(value, key: str, path: Path):
    if isinstance(value, ChumpyStandIn):
        state = getattr(value, "_state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise ValueError(f"{path}: key '{key}' holds a chumpy {value.chumpy_class} object "
                         f"that wraps no array ('x'); cannot convert it without chumpy")
    return value


def load_mano_pickle(path) -> dict:
    """A MANO-format model file as a dict of numpy arrays (chumpy objects unwrapped)."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file not found: {path} (set MANO_MODEL_PATH or pass a path)")
    try:
        with open(path, "rb") as fh:
            data = _ChumpyFreeUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as err:
        raise ValueError(f"{path}: not a readable MANO-format pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of model arrays, found {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: not a MANO-format model, missing keys {missing}")
    data = {k: _plain(v, k, path) for k, v in data.items()}
    if "hands_components" not in data:
        data["hands_components"] = np.eye(45)
    if "hands_mean" not in data:
        data["hands_mean"] = np.zeros(45)
    if "tip_vertex_ids" not in data:
        if len(data["v_template"]) != 778:
            raise ValueError(f"{path}: {len(data['v_template'])} vertices and no 'tip_vertex_ids'; "
                             "the fingertip vertices are only known for MANO's 778-vertex topology")
        data["tip_vertex_ids"] = np.array(MANO_TIP_VERTEX_IDS)
    return data


def convert_to_plain(src, dst) -> Path:
    """Write a copy of a MANO pickle with only numpy/scipy objects (no chumpy needed to read it)."""
    data = load_mano_pickle(src)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as fh:
        pickle.dump(data, fh, protocol=4)
    return dst
