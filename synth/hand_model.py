"""HandModel: one interface over smplx.MANO for every MANO-format model file.

forward(pose (B, 48), betas (B, 10)) -> vertices (B, 778, 3) and 21 keypoints
(B, 21, 3) in FreiHAND order (16 skinned joints + 5 fingertip vertices). Poses
are flat axis-angle (the hand's rest pose is pose 0); datasets whose MANO poses
are relative to the model's mean pose (FreiHAND) add `hands_mean` themselves
through `pose_from_mean_relative`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from .mano_io import load_mano_pickle

# MANO's 16 joints + 5 tips (thumb, index, middle, ring, little) -> FreiHAND order
MANO_TO_FREIHAND = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
FREIHAND_PARENTS = [-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19]
OPENHAND = "openhand"      # the default: OpenHand 2, MakeHuman's sculpted hand (synth/openhand2)
BUNDLED = {"openhand": "openhand2.pkl", "openhand2": "openhand2.pkl",
           "openhand1": "openhand1.pkl"}   # OpenHand 1: the procedural hand (synth/openhand)
ASSETS = Path(__file__).resolve().parent / "assets"


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """'openhand' (the default, = 'openhand2') or 'openhand1' -> a bundled asset; 'mano' -> $MANO_MODEL_PATH;
    else a path."""
    if model is None or str(model).lower() in BUNDLED:
        return ASSETS / BUNDLED[str(model or OPENHAND).lower()]
    if str(model).lower() == "mano":
        env = os.environ.get("MANO_MODEL_PATH")
        if not env:
            raise ValueError("hand model 'mano' needs MANO_MODEL_PATH=/path/to/MANO_RIGHT.pkl "
                             "(the licensed file from the MANO website)")
        model = env
    path = Path(os.path.expanduser(str(model)))
    if path.is_dir():
        path = path / "MANO_RIGHT.pkl"
    return path


def resolve_hand_model(model):
    """None, a HandModel (returned as it is), or anything HandModel() accepts ('mano', 'openhand', a path)."""
    if model is None or isinstance(model, HandModel):
        return model
    return HandModel(model)


def topology_tag(name: str, template_hash: str) -> str:
    """'mano' for a model named MANO, else its template hash (a dataset.json records both)."""
    return "mano" if str(name).upper() == "MANO" else str(template_hash)


class HandModel(torch.nn.Module):
    def __init__(self, model: str | os.PathLike | None = OPENHAND, dtype=torch.float32):
        super().__init__()
        import smplx
        from smplx.utils import Struct

        self.path = resolve_model_path(model)
        data = load_mano_pickle(self.path)
        self.name = str(data.get("model_name", "MANO"))
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note on the 10 betas
            self.layer = smplx.MANO(model_path=str(self.path), data_struct=Struct(**data), is_rhand=True,
                                    use_pca=False, flat_hand_mean=True, batch_size=1, dtype=dtype,
                                    create_global_orient=False, create_hand_pose=False,
                                    create_betas=False, create_transl=False)
        self.faces = np.asarray(data["f"], dtype=np.int64)
        self.template = np.asarray(data["v_template"], dtype=np.float64)
        self.hands_mean = np.asarray(data["hands_mean"], dtype=np.float64).reshape(45)
        self.tip_vertex_ids = np.asarray(data["tip_vertex_ids"], dtype=np.int64)
        j16 = np.asarray(data["J_regressor"].todense() if hasattr(data["J_regressor"], "todense")
                         else data["J_regressor"], dtype=np.float64)
        tips = np.zeros((5, j16.shape[1]))
        tips[np.arange(5), self.tip_vertex_ids] = 1.0
        self.joint_regressor = np.vstack([j16, tips])[MANO_TO_FREIHAND]  # (21, V)
        self.parents = np.asarray(data["kintree_table"][0], dtype=np.int64).copy()
        self.parents[0] = -1
        # OpenHand 2 carries the sculpted mesh it is rendered as and the body's arm (synth/openhand2)
        self.render_data = data.get("render_mesh")
        self.arm_data = data.get("arm")
        self.template_hash = hashlib.sha256(
            np.round(self.template, 6).astype(np.float32).tobytes() + self.faces.astype(np.int32).tobytes()
        ).hexdigest()[:16]

    @property
    def num_vertices(self) -> int:
        return len(self.template)

    @property
    def topology(self) -> str:
        """The tag a mesh of this model carries: 'mano' for MANO, else the template hash (DESIGN.md's
        topology guard: vertex i of one model is not vertex i of another)."""
        return topology_tag(self.name, self.template_hash)

    def forward(self, pose: torch.Tensor, betas: torch.Tensor | None = None):
        """Vertices (B, V, 3) and keypoints (B, 21, 3), metres, in the model frame."""
        pose = torch.as_tensor(pose, dtype=self.layer.shapedirs.dtype)
        if pose.ndim != 2 or pose.shape[1] != 48:
            raise ValueError(f"pose must have shape (B, 48), got {tuple(pose.shape)}")
        if betas is None:
            betas = torch.zeros(pose.shape[0], 10, dtype=pose.dtype)
        betas = torch.as_tensor(betas, dtype=pose.dtype)
        if betas.shape != (pose.shape[0], 10):
            raise ValueError(f"betas must have shape ({pose.shape[0]}, 10), got {tuple(betas.shape)}")
        out = self.layer(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas)
        verts = out.vertices
        tips = verts[:, torch.as_tensor(self.tip_vertex_ids)]
        keypoints = torch.cat([out.joints, tips], dim=1)[:, MANO_TO_FREIHAND]
        return verts, keypoints

    def pose_from_mean_relative(self, pose: np.ndarray) -> np.ndarray:
        """Flat pose from one given relative to the model's mean hand pose (FreiHAND's convention)."""
        pose = np.array(pose, dtype=np.float64, copy=True)
        pose[..., 3:] += self.hands_mean
        return pose

    def rest_joints(self, betas=None) -> np.ndarray:
        """The 16 MANO joints of the (shaped) rest pose, in the model frame."""
        v = self.template if betas is None else self.shaped_template(betas)
        return self.joint_regressor[[0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3]] @ v

    def shaped_template(self, betas) -> np.ndarray:
        dirs = self.layer.shapedirs.detach().double().numpy()
        return self.template + dirs @ np.asarray(betas, dtype=np.float64)
