"""Dataset names -> loader classes, and what the loaders share beyond base.py.

Registry
--------
`DATASETS` is a `pretrain.registry.Registry`; the functions below wrap it.
`register(name, cls)` adds a loader; `cls` is a class or a lazy reference
"package.module:ClassName" (imported on first use, so `hands --help` and
`import finetune` stay light). `get(name)` returns the class; a name that is
not registered yet makes `get` import `finetune.datasets.<name>` (dashes become
underscores) once, so a loader module that calls `register` at import time is
found without editing this file. `names()` lists what is known.

Every loader class provides `check(root) -> list[str]`: it walks a dataset on
disk without training and returns report lines, each "KIND: text" with KIND
one of

    count    a number of samples / files found ("count: training: 32560 annotations")
    info     anything else worth printing
    problem  something a loader would fail on, naming the path and what was expected

`hands data check DATASET ROOT` prints them and exits 1 when any line is a
problem. A check may take `limit=N` (look at the first N samples per split).

Shared file readers
-------------------
`read_image`, `read_json`, `read_pickle` and `require_file` raise
`base.DatasetFormatError` naming the path and what was expected (a missing
file, a truncated or undecodable image, a wrong key, a wrong shape).
`make_sample` turns one full-resolution annotated image into base.py's sample
dictionary (crop, K of the crop, 2D keypoints projected from the 3D ones so
that `keypoints_2d == project(keypoints_3d, K)` holds by construction).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from pretrain.registry import Registry

from .base import CROP_SIZE, DatasetFormatError, project, warp_image

DATASETS = Registry("dataset", {
    "freihand": "finetune.datasets.freihand:FreiHANDDataset",
    "rhd": "finetune.datasets.rhd:RHDDataset",
    "ho3d": "finetune.datasets.ho3d:HO3DDataset",
    "stb": "finetune.datasets.stb:STBDataset",
    "dexycb": "finetune.datasets.dexycb:DexYCBDataset",
    "hanco": "finetune.datasets.hanco:HanCoDataset",
    "mobrecon_complement": "finetune.datasets.mobrecon_complement:MobReconComplementDataset",
    "complement": "finetune.datasets.complement:ComplementShardsDataset",
    "coco_hand": "finetune.datasets.coco_hand:CocoHandDataset",
}, discover="finetune.datasets.{}")


def register(name: str, cls) -> None:
    """Add (or replace) a loader: a Dataset class with `check(root) -> list[str]`, or 'module:Class'."""
    if not isinstance(cls, (str, type)):
        raise TypeError(f"register({name!r}, ...): expected a class or 'module:Class', got {type(cls).__name__}")
    DATASETS.register(name, cls)


def names() -> list:
    return DATASETS.names()


def get(name: str):
    """The loader class registered under `name` (case-insensitive)."""
    return DATASETS.get(name)


def create(name: str, root, **kwargs):
    """An instance of the loader `name` over `root`."""
    return get(name)(root, **kwargs)


# ---------------------------------------------------------------- file readers

def require_file(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"missing file {path} (expected {what})")
    return path


def read_image(path, what: str = "an image", mode: str | None = "RGB") -> np.ndarray:
    """Decode an image fully (a truncated file fails here, not later) -> uint8 array."""
    from PIL import Image

    path = require_file(path, what)
    try:
        with Image.open(path) as img:
            img.load()
            if mode is not None and img.mode != mode:
                img = img.convert(mode)
            return np.asarray(img).copy()
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetFormatError(f"{path}: cannot decode {what} (truncated or corrupt file?): {err}") from err


def read_json(path, what: str):
    path = require_file(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetFormatError(f"{path}: not valid JSON (expected {what}): {err}") from err


def read_pickle(path, what: str):
    """A pickle, trying latin1 for Python 2 pickles (RHD, HO3D) first as their own tools do."""
    path = require_file(path, what)
    data = path.read_bytes()
    errors = []
    for kwargs in ({"encoding": "latin1"}, {}):
        try:
            return pickle.loads(data, **kwargs)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
            errors.append(err)
    raise DatasetFormatError(f"{path}: cannot unpickle (expected {what}): {errors[0]}")


def as_array(value, shape: tuple, where: str, key: str) -> np.ndarray:
    """`value` as float64 of exactly `shape` (-1 = any), else DatasetFormatError naming where and key."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(f"{where}: '{key}' is not numeric (expected shape {shape}): {err}") from err
    if arr.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, arr.shape)):
        raise DatasetFormatError(f"{where}: '{key}' has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise DatasetFormatError(f"{where}: '{key}' holds non-finite values")
    return arr


def check_image(path, what: str, problems: list) -> bool:
    """Append a problem line when `path` is missing or does not decode; True when it is fine."""
    try:
        read_image(path, what, mode=None)
        return True
    except DatasetFormatError as err:
        problems.append(f"problem: {err}")
        return False


# ---------------------------------------------------------------- sample assembly

def make_sample(image: np.ndarray, A: np.ndarray, K: np.ndarray, keypoints_3d: np.ndarray, *,
                out_size: int = CROP_SIZE, mask: np.ndarray | None = None, vertices: np.ndarray | None = None,
                mano_pose=None, mano_betas=None, visibility=None, mirrored: bool = False,
                dataset: str = "", sample_id: str = "", topology: str = "mano") -> dict:
    """base.py's sample dict from a full image and the crop transform A (image px -> crop px).

    K is the (possibly mirrored) intrinsics of the full image; the crop's K is A @ K and
    keypoints_2d = project(keypoints_3d, A @ K). Camera-frame points are in metres.
    keypoints_3d None (an unlabelled evaluation image): zeros, with visibility all False.
    """
    import torch

    A = np.asarray(A, dtype=np.float64)
    Kc = A @ np.asarray(K, dtype=np.float64)
    labelled = keypoints_3d is not None
    kp3 = np.asarray(keypoints_3d, dtype=np.float64) if labelled else np.zeros((21, 3))
    kp2 = np.zeros((21, 2))
    known = kp3[:, 2] != 0  # rows of zeros are unlabelled keypoints (evaluation splits)
    kp2[known] = project(kp3[known], Kc)
    crop = warp_image(np.ascontiguousarray(image), A, out_size)
    if crop.ndim == 2:
        crop = np.repeat(crop[..., None], 3, axis=2)
    has_mask = mask is not None
    if has_mask:
        m = warp_image(np.ascontiguousarray(mask.astype(np.uint8) * 255), A, out_size, resample=0) > 127
    else:
        m = np.zeros((out_size, out_size), dtype=bool)
    has_vertices = vertices is not None
    verts = np.asarray(vertices, dtype=np.float64) if has_vertices else np.zeros((778, 3))
    has_mano = mano_pose is not None
    pose = np.asarray(mano_pose, dtype=np.float64).reshape(48) if has_mano else np.zeros(48)
    betas = np.asarray(mano_betas, dtype=np.float64).reshape(10) if mano_betas is not None else np.zeros(10)
    if visibility is None:
        vis = np.full(21, labelled)
    else:
        vis = np.asarray(visibility, dtype=bool).reshape(21)
    root = kp3[0]
    f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    return {
        "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).float() / 255.0,
        "mask": torch.from_numpy(m),
        "K": f32(Kc),
        "keypoints_2d": f32(kp2),
        "keypoints_3d": f32(kp3),
        "keypoints_3d_rel": f32(kp3 - root),
        "vertices": f32(verts),
        "vertices_rel": f32(verts - root) if has_vertices else f32(verts),
        "mano_pose": f32(pose),
        "mano_betas": f32(betas),
        "visibility": torch.from_numpy(vis.copy()),
        "has_mask": has_mask,
        "has_vertices": has_vertices,
        "has_mano": has_mano,
        "mirrored": bool(mirrored),
        "dataset": dataset,
        "sample_id": sample_id,
        "topology": topology,
    }

