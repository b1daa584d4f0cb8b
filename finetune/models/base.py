"""What every reconstruction model shares: the hand model's mesh constants and the output contract.

`MeshModel` holds, from the hand model it is built for (OpenHand by default, MANO by name or
path): the faces (for the normal and edge losses), the 21x778 joint regressor (keypoints from
vertices, FreiHAND order), the topology tag the trainer's guard compares with each sample's, and
the mesh hierarchy and spirals of `finetune.mesh` (cached on disk by the template's hash).

Vertices are predicted in units of VERTEX_SCALE (0.2 m, the normalisation of the authors'
released loaders, about a hand's length) and returned in metres, so losses on normalised units
keep the paper's magnitudes whatever the unit of the data.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

VERTEX_SCALE = 0.2   # metres per decoder unit
NUM_JOINTS = 21


class MeshModel(nn.Module):
    """Base of the reconstruction models: mesh constants of a hand model, root-relative outputs."""

    needs_camera = False   # True: forward(images, K) (models that predict the root in camera space)
    # True: loss_terms reads 3D keypoint labels (keypoints_3d / _rel), so 2D-only samples (coco_hand) would
    # supervise it with zeros; training_data.check_keypoints_3d refuses them to such a model
    reads_keypoints_3d = True

    def __init__(self, hand_model="openhand", input_size: int = 128):
        super().__init__()
        from synth.hand_model import resolve_hand_model

        hm = resolve_hand_model("openhand" if hand_model is None else hand_model)
        self.hand_model_name = hm.name
        self.topology = hm.topology
        self.input_size = int(input_size)
        self.num_vertices = int(hm.num_vertices)
        self.register_buffer("faces", torch.as_tensor(hm.faces, dtype=torch.long), persistent=False)
        self.register_buffer("joint_regressor", torch.as_tensor(hm.joint_regressor, dtype=torch.float32),
                             persistent=False)
        self.__dict__["_hand_model"] = hm   # not a submodule: its buffers are not this model's weights

    def mesh_hierarchy(self, factors=(2, 2, 2, 2)):
        from finetune.mesh.hierarchy import hierarchy_for

        return hierarchy_for(self._hand_model, factors)

    def joints_from_vertices(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, 21, 3) keypoints of a root-relative mesh, through the model's regressor."""
        return torch.einsum("jv,bvc->bjc", self.joint_regressor.to(vertices.dtype), vertices)

    def root_relative(self, vertices: torch.Tensor) -> tuple:
        """(vertices, keypoints) both minus the regressed wrist, so the wrist keypoint is exactly 0."""
        joints = self.joints_from_vertices(vertices)
        root = joints[:, :1]
        return vertices - root, joints - root


    def mesh_outputs(self, decoded: torch.Tensor, two_d: dict, keypoints_2d: torch.Tensor) -> dict:
        """The output contract from decoder units (VERTEX_SCALE), the 2D branch's dict and its pixels.

        'decoded' is the decoder's mesh in metres before the shift to its regressed wrist: the release
        (mobrecon_ds.py loss) supervises that one against the wrist-relative truth."""
        decoded = decoded * VERTEX_SCALE
        vertices, keypoints = self.root_relative(decoded)
        return {"vertices": vertices, "keypoints_3d": keypoints, "keypoints_2d": keypoints_2d, "decoded": decoded,
                **two_d}


def unwrap(model):
    """The model inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def run_model(model, images: torch.Tensor, K: torch.Tensor | None = None) -> dict:
    """The model's forward (through any DDP / compile wrapper), with the crop intrinsics if it uses them."""
    return model(images, K) if getattr(unwrap(model), "needs_camera", False) else model(images)


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
