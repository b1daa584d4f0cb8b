"""A rendered complement dataset's global tables: dataset.json, poses, views, mapping, HDRIs.

The per-pose shards are synth/shards.py's; this module writes and reads what
they share (see the layout in synth/shards.py's docstring). Every file is
written atomically (temporary name, then os.replace).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .shards import (FORMAT, FORMAT_VERSION, READABLE_FORMATS, SHARDS_DIR, _atomic_write_json, atomic_write,
                     _jsonable)

POSE_ARRAYS = ("pose_ids", "params", "vertices", "keypoints", "dense")
POSE_DTYPES = {"pose_ids": np.int64, "params": np.float64, "vertices": np.float32,
               "keypoints": np.float32, "dense": np.float32}
VIEW_ARRAYS = ("view_ids", "K", "R", "t", "longitude", "latitude")
MAPPING_ARRAYS = ("M_data", "M_indices", "M_indptr", "M_shape",
                  "S_data", "S_indices", "S_indptr", "S_shape", "faces", "dense_faces")

@dataclass
class Tables:
    dataset: dict     # dataset.json
    poses: dict       # arrays of poses.npz
    views: dict       # arrays of views.npz
    mapping: dict     # M, S (scipy CSR), faces, dense_faces
    hdris: list       # entries of hdris.json

    def pose_index(self) -> dict:
        return {int(p): i for i, p in enumerate(self.poses["pose_ids"])}

    def view_index(self) -> dict:
        return {int(v): i for i, v in enumerate(self.views["view_ids"])}


def _check_arrays(name: str, arrays: dict, required: tuple) -> dict:
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{name}: missing arrays {missing}; expected {list(required)}")
    return {k: np.asarray(v) for k, v in arrays.items()}


def _check_pose_shapes(where: str, poses: dict) -> int:
    P = len(poses["pose_ids"])
    shapes = {"pose_ids": (P,), "params": (P, 48), "keypoints": (P, 21, 3)}
    for k, shape in shapes.items():
        if poses[k].shape != shape:
            raise ValueError(f"{where}: {k} has shape {poses[k].shape}, expected {shape}")
    for k in ("vertices", "dense"):
        if poses[k].ndim != 3 or poses[k].shape[0] != P or poses[k].shape[2] != 3:
            raise ValueError(f"{where}: {k} has shape {poses[k].shape}, expected ({P}, N, 3)")
    if len(np.unique(poses["pose_ids"])) != P:
        raise ValueError(f"{where}: pose_ids are not unique")
    return P


def _check_view_shapes(where: str, views: dict) -> int:
    V = len(views["view_ids"])
    shapes = {"view_ids": (V,), "K": (V, 3, 3), "R": (V, 3, 3), "t": (V, 3), "longitude": (V,), "latitude": (V,)}
    for k, shape in shapes.items():
        if views[k].shape != shape:
            raise ValueError(f"{where}: {k} has shape {views[k].shape}, expected {shape}")
    if len(np.unique(views["view_ids"])) != V:
        raise ValueError(f"{where}: view_ids are not unique")
    return V


def _mapping_arrays(mapping: dict) -> dict:
    """M and S (scipy sparse or dense) -> CSR parts; other entries stored as they are."""
    import scipy.sparse as sp

    out = {}
    for k, v in mapping.items():
        if k in ("M", "S"):
            csr = sp.csr_matrix(v)
            out.update({f"{k}_data": csr.data.astype(np.float64), f"{k}_indices": csr.indices.astype(np.int64),
                        f"{k}_indptr": csr.indptr.astype(np.int64), f"{k}_shape": np.asarray(csr.shape, np.int64)})
        else:
            out[k] = np.asarray(v)
    return _check_arrays("mapping", out, MAPPING_ARRAYS)


def write_tables(root, dataset_json: dict, poses: dict, views: dict, mapping: dict, hdris: list) -> dict:
    """Write dataset.json, poses.npz, views.npz, mapping.npz and hdris.json, each atomically.

    `format`, `counts`, `pose_ids` and `view_ids` of dataset.json are filled in
    from the arrays (a given value that disagrees is an error), and
    `versions["format"]` with FORMAT_VERSION. Returns the dataset.json that was
    written.
    """
    root = Path(root)
    poses = _check_arrays("poses", poses, POSE_ARRAYS)
    views = _check_arrays("views", views, VIEW_ARRAYS)
    P = _check_pose_shapes("poses", poses)
    V = _check_view_shapes("views", views)
    mapping = _mapping_arrays(mapping)
    poses = {k: v.astype(POSE_DTYPES[k]) if k in POSE_DTYPES else v for k, v in poses.items()}
    views = {k: v.astype(np.int64 if k == "view_ids" else np.float64) if k in VIEW_ARRAYS else v
             for k, v in views.items()}

    ds = dict(_jsonable(dataset_json))
    derived = {"format": FORMAT, "counts": {"poses": P, "views": V, "samples": P * V},
               "pose_ids": [int(p) for p in poses["pose_ids"]], "view_ids": [int(v) for v in views["view_ids"]]}
    for k, value in derived.items():
        if k in ds and ds[k] != value:
            raise ValueError(f"dataset_json[{k!r}] = {str(ds[k])[:80]} disagrees with the tables ({str(value)[:80]})")
        ds[k] = value
    ds["versions"] = {**(ds.get("versions") or {}), "format": FORMAT_VERSION}
    hm = ds.get("hand_model")
    if not isinstance(hm, dict) or not {"name", "template_hash", "num_vertices"} <= set(hm):
        raise ValueError("dataset_json['hand_model'] must give name, template_hash and num_vertices")
    if int(hm["num_vertices"]) != poses["vertices"].shape[1]:
        raise ValueError(f"hand_model num_vertices {hm['num_vertices']} != poses vertices "
                         f"{poses['vertices'].shape[1]}")
    if not isinstance(hdris, (list, tuple)) or not all(isinstance(e, dict) for e in hdris):
        raise ValueError("hdris must be a list of dicts (catalog entries with 'id' and 'split')")

    root.mkdir(parents=True, exist_ok=True)
    (root / SHARDS_DIR).mkdir(exist_ok=True)
    for name, arrays in (("poses.npz", poses), ("views.npz", views), ("mapping.npz", mapping)):
        atomic_write(root / name, lambda f, a=arrays: np.savez(f, **a))
    _atomic_write_json(root / "hdris.json", {"entries": list(hdris)})
    _atomic_write_json(root / "dataset.json", ds)
    return ds


def _load_json(path: Path, what: str):
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; expected {what} (is {path.parent} a rendered dataset?)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not readable JSON ({e}); expected {what}") from None


def _load_npz(path: Path, required: tuple) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; expected an .npz with {list(required)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz ({type(e).__name__}: {e}); "
                         f"expected arrays {list(required)}") from None
    return _check_arrays(str(path), arrays, required)


def load_tables(root) -> Tables:
    """Read the global tables back; errors name the missing or broken file."""
    import scipy.sparse as sp

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset directory not found")
    expected = f"{READABLE_FORMATS[0]!r} .. {FORMAT!r}"
    ds = _load_json(root / "dataset.json", f"a dataset description with format {expected}")
    if not isinstance(ds, dict) or ds.get("format") not in READABLE_FORMATS:
        fmt = ds.get("format") if isinstance(ds, dict) else None
        raise ValueError(f"{root / 'dataset.json'}: format {fmt!r}, expected {expected}")
    poses = _load_npz(root / "poses.npz", POSE_ARRAYS)
    P = _check_pose_shapes(str(root / "poses.npz"), poses)
    views = _load_npz(root / "views.npz", VIEW_ARRAYS)
    V = _check_view_shapes(str(root / "views.npz"), views)
    counts = ds.get("counts", {})
    if counts.get("poses") != P or counts.get("views") != V:
        raise ValueError(f"{root / 'dataset.json'}: counts {counts} disagree with poses.npz ({P} poses) "
                         f"and views.npz ({V} views)")
    raw = _load_npz(root / "mapping.npz", MAPPING_ARRAYS)
    try:
        mapping = {k: sp.csr_matrix((raw[f"{k}_data"], raw[f"{k}_indices"], raw[f"{k}_indptr"]),
                                    shape=tuple(int(s) for s in raw[f"{k}_shape"])) for k in ("M", "S")}
    except (ValueError, TypeError) as e:
        raise ValueError(f"{root / 'mapping.npz'}: inconsistent CSR parts ({e})") from None
    mapping.update({k: v for k, v in raw.items() if not k.startswith(("M_", "S_"))})
    hd = _load_json(root / "hdris.json", 'an HDRI catalog {"entries": [...]}')
    if not isinstance(hd, dict) or not isinstance(hd.get("entries"), list):
        raise ValueError(f"{root / 'hdris.json'}: expected an object with a list 'entries'")
    return Tables(ds, poses, views, mapping, hd["entries"])
