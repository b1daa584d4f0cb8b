"""Predictions in each benchmark's submission format, and readers for them.

- FreiHAND `pred.json`: `[xyz_list, verts_list]`, per sample 21x3 keypoints and
  Vx3 vertices, metres, OpenCV camera frame, FreiHAND order (the format of
  freihand's `pred.py` `dump`; zip it for the CodaLab server).
- HO3D v2/v3 `pred.json`: the same two lists, but joints in **HO3D order**
  (MANO + tips, see `finetune.metrics.conventions`) and in the **OpenGL** camera
  frame (y and z negated: the hand has negative z), metres. HO3D's `pred.py`
  refuses a sample whose points all have z > 0, and so does the writer here.
- Dex-YCB HPE result `.txt`: one line per sample, 64 comma-separated numbers:
  the sample's index in the toolkit's split, then x1, y1, z1, ..., x21, y21, z21
  in **millimetres**, camera frame, Dex-YCB joint order (= FreiHAND order);
  `hpe_eval.py` rejects lines of another length.

Writers take the project's conventions (metres, OpenCV, FreiHAND order) and
convert; readers convert back, so `read(write(x)) == x` (floats are written
with repr, which round-trips exactly; the mm scaling of Dex-YCB costs at most
an ulp).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from finetune.metrics.conventions import freihand_to_ho3d, ho3d_to_freihand, opencv_to_opengl, opengl_to_opencv


class SubmissionFormatError(ValueError):
    """A prediction file is not in the benchmark's format (the message names the file and what is wrong)."""


def _keypoints(xyz, what: str) -> np.ndarray:
    a = np.asarray(xyz, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (21, 3):
        raise ValueError(f"{what}: expected (N, 21, 3) keypoints, got shape {a.shape}")
    return a


def _meshes(verts, n: int, what: str) -> list:
    if verts is None:
        raise ValueError(f"{what}: the format needs one mesh per sample, got none")
    out = [np.asarray(v, dtype=np.float64) for v in verts]
    if len(out) != n:
        raise ValueError(f"{what}: {len(out)} meshes for {n} keypoint sets")
    for i, v in enumerate(out):
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"{what}: mesh {i} has shape {v.shape}, expected (V, 3)")
    return out


def _write_json_pair(path, xyz, verts) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fo:
        json.dump([[x.tolist() for x in xyz], [v.tolist() for v in verts]], fo)
    return path


def read_json_pair(path) -> tuple[np.ndarray, list]:
    """A `[xyz_list, verts_list]` file as written by FreiHAND's and HO3D's pred.py, unconverted."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SubmissionFormatError(f"{path}: not a JSON file ({err})") from err
    if not isinstance(data, list) or len(data) != 2:
        what = f"a list of {len(data)}" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SubmissionFormatError(f"{path}: expected a JSON list [xyz_list, verts_list], got {what}")
    xyz_list, verts_list = data
    if len(xyz_list) != len(verts_list):
        raise SubmissionFormatError(f"{path}: {len(xyz_list)} keypoint sets but {len(verts_list)} meshes")
    try:
        xyz = np.array(xyz_list, dtype=np.float64)
    except ValueError as err:
        raise SubmissionFormatError(f"{path}: keypoint lists are not all 21x3 ({err})") from err
    if xyz.ndim != 3 or xyz.shape[1:] != (21, 3):
        if len(xyz_list) == 0:
            xyz = xyz.reshape(0, 21, 3)
        else:
            raise SubmissionFormatError(f"{path}: keypoints have shape {xyz.shape}, expected (N, 21, 3)")
    verts = []
    for i, v in enumerate(verts_list):
        a = np.array(v, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 3:
            raise SubmissionFormatError(f"{path}: mesh {i} has shape {a.shape}, expected (V, 3)")
        verts.append(a)
    return xyz, verts


def write_freihand_pred(path, xyz, verts) -> Path:
    """FreiHAND pred.json from (N, 21, 3) keypoints and N meshes (V, 3), metres, OpenCV frame."""
    xyz = _keypoints(xyz, "FreiHAND export")
    return _write_json_pair(path, xyz, _meshes(verts, len(xyz), "FreiHAND export"))


def read_freihand_pred(path) -> tuple[np.ndarray, list]:
    """(xyz (N, 21, 3), [verts (V, 3)] * N) of a FreiHAND pred.json, metres."""
    return read_json_pair(path)


def write_ho3d_pred(path, xyz, verts) -> Path:
    """HO3D pred.json from project-convention arrays: reorders to HO3D's joints and flips to OpenGL."""
    xyz = _keypoints(xyz, "HO3D export")
    verts = _meshes(verts, len(xyz), "HO3D export")
    xyz_gl = opencv_to_opengl(freihand_to_ho3d(xyz))
    verts_gl = [opencv_to_opengl(v) for v in verts]
    for i, (x, v) in enumerate(zip(xyz_gl, verts_gl)):
        # HO3D's pred.py refuses a sample whose points all lie in front of an OpenGL camera
        if np.all(x[:, 2] > 0) or (len(v) and np.all(v[:, 2] > 0)):
            raise ValueError(f"HO3D export: sample {i} has all its points at z < 0 in the OpenCV frame; "
                             "write_ho3d_pred takes camera-frame OpenCV coordinates (z forward) and flips them "
                             "itself; were these already in OpenGL?")
    return _write_json_pair(path, xyz_gl, verts_gl)


def read_ho3d_pred(path, convention: str = "project") -> tuple[np.ndarray, list]:
    """A HO3D pred.json; convention 'project' converts back to FreiHAND order and OpenCV, 'ho3d' leaves it."""
    xyz, verts = read_json_pair(path)
    if convention == "ho3d":
        return xyz, verts
    if convention != "project":
        raise ValueError(f"convention must be 'project' or 'ho3d', got {convention!r}")
    return ho3d_to_freihand(opengl_to_opencv(xyz)), [opengl_to_opencv(v) for v in verts]


def write_dexycb_results(path, xyz, ids=None) -> Path:
    """Dex-YCB HPE result file: 'index,x1,y1,z1,...,z21' per sample, mm.

    ids are the samples' indices in the toolkit's dataset split (default 0..N-1);
    xyz (N, 21, 3) in metres, camera frame.
    """
    xyz = _keypoints(xyz, "Dex-YCB export") * 1000.0
    ids = np.arange(len(xyz)) if ids is None else np.asarray(ids)
    if ids.shape != (len(xyz),):
        raise ValueError(f"Dex-YCB export: {ids.shape} ids for {len(xyz)} samples")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("Dex-YCB export: sample indices repeat")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fo:
        for i, joints in zip(ids, xyz):
            fo.write(",".join([str(int(i))] + [repr(float(v)) for v in joints.ravel()]) + "\n")
    return path


def read_dexycb_results(path) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,), xyz (N, 21, 3) metres) of a Dex-YCB HPE result file."""
    path = Path(path)
    ids, rows = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            elems = line.split(",")
            if len(elems) != 64:
                raise SubmissionFormatError(f"{path}:{n}: a line needs 64 comma-separated values "
                                            f"(index + 21 x 3 joints in mm), got {len(elems)}")
            try:
                ids.append(int(elems[0]))
                rows.append(np.array(elems[1:], dtype=np.float64))
            except ValueError as err:
                raise SubmissionFormatError(f"{path}:{n}: not a number ({err})") from err
    ids = np.array(ids, dtype=np.int64)
    seen, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise SubmissionFormatError(f"{path}: sample index {int(seen[counts > 1][0])} appears more than once")
    xyz = np.array(rows, dtype=np.float64).reshape(-1, 21, 3) / 1000.0
    return ids, xyz
