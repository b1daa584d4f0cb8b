"""MobRecon's released complement data (Chen et al., CVPR 2022), read as its own loader reads it.

Re-derived from MobRecon's released code (SeanChenxy/HandMesh,
`mobrecon/datasets/comphand.py`, class CompHand) and `complement_data.md`
(downloads base_pose, trans_pose_batch1..3). The layout that code expects:

    ROOT/K256.npy                    (3, 3) intrinsics of the 256x256 renders, shared by every image
    ROOT/j_reg.npy                   (21, 778) joint regressor, MANO order + 5 tips (16 J_regressor rows
                                     and one-hot tip rows); keypoints are mano_to_mpii(j_reg @ verts),
                                     mano_to_mpii = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11,
                                     12, 19, 7, 8, 9, 20] (= MANO+tips -> FreiHAND order)
    ROOT/t.npy                       loaded by MobRecon but never used (not needed here)
    ROOT/data/**/pic256/**/*.png     the images, found by this recursive glob; for an image
                                     <P>/pic256/<V>/<name>.png with name = '<a>.<n>.<b>' split at dots,
                                     n = int(second field) selects the annotation:
    <P>/model_mano/<n>.obj           the MANO-topology mesh (778 vertices, metres) in the CAMERA frame
                                     of that image (MobRecon projects it with K256 directly)
    <P>/mask256/<n>.png              the hand mask (MobRecon uses channel 0 of cv2's BGR = blue, > 0)

So the mesh and mask depend on <P> (a pose folder, e.g. data/base_pose/0001) and
n (the view: 0..215 of the 216-view rig), while <V> (a subfolder under pic256)
only changes the appearance (background / lighting) of the same geometry.
MobRecon drops every image whose file name contains '215'; here that is
`exclude_views=(215,)` (by view number rather than by substring, so a name
like 'x.1215.png' is not dropped by accident).

The renders are LEFT hands: MobRecon flips every image left-right, negates
the mesh's x and sets cx to 256 - cx. Here each sample is mirrored with
base.mirror_sample, i.e. cx -> (W - 1) - cx = 255 - cx: MobRecon's 256 - cx is
one pixel off in the pixel-centre convention the project uses (a point at u
moves to W - 1 - u when the columns are reversed), so keypoint projections
here sit one pixel (before cropping) to the left of MobRecon's.

What could not be confirmed without the files: the exact pose folder depth
under data/ (hence the recursive glob, and sample ids built from the relative
path), the file-name prefix of the images (only the second dot-separated field
is used, as MobRecon does), and whether j_reg.npy is MANO's regressor (the
released code treats it as MANO order + tips). Every such name is a
constructor setting: `image_glob`, `k_file`, `jreg_file`, `image_dir_name`,
`mesh_dir_name`, `mask_dir_name`, `exclude_views`, and `joint_regressor` (an
array or .npy path replacing ROOT/j_reg.npy).

Samples: vertices (MANO topology, topology 'mano'), keypoints regressed from
them, masks; no MANO parameters (has_mano False). `visibility` is True for
keypoints projecting inside the image.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .base import CROP_SCALE, CROP_SIZE, DatasetFormatError, box_crop, mirror_sample, project

MANO_TO_FREIHAND = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
NUM_VERTICES = 778


def view_of(name: str) -> int:
    """MobRecon's rule: the view number is the second '.'-separated field of the image file name."""
    parts = name.split(".")
    if len(parts) < 3 or not re.fullmatch(r"\d+", parts[1]):
        raise ValueError(f"image name {name!r} is not '<prefix>.<view>.png'")
    return int(parts[1])


def read_obj_vertices(path: Path) -> np.ndarray:
    """The 'v x y z' lines of a Wavefront OBJ as (N, 3) float64."""
    from .registry import require_file

    require_file(path, f"a MANO-topology mesh (.obj with {NUM_VERTICES} vertices)")
    verts = []
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("v "):
                    verts.append([float(x) for x in line.split()[1:4]])
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetFormatError(f"{path}: unreadable OBJ vertex line (expected 'v x y z'): {err}") from err
    verts = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    if len(verts) != NUM_VERTICES:
        raise DatasetFormatError(f"{path}: {len(verts)} vertices, expected {NUM_VERTICES} (MANO topology)")
    if not np.all(np.isfinite(verts)):
        raise DatasetFormatError(f"{path}: non-finite vertex coordinates")
    return verts


def _load_npy(path: Path, shape: tuple, what: str) -> np.ndarray:
    from .registry import as_array, require_file

    require_file(path, what)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DatasetFormatError(f"{path}: not a readable .npy (expected {what}): {err}") from err
    return as_array(arr, shape, str(path), path.stem)


class MobReconComplementDataset(Dataset):
    """MobRecon's complement renders in base.py's dictionary (mirrored to right hands).

    MobReconComplementDataset(root, crop_size=128, crop_scale=1.5, image_glob='data/**/pic256/**/*.png',
        k_file='K256.npy', jreg_file='j_reg.npy', joint_regressor=None, image_dir_name='pic256',
        mesh_dir_name='model_mano', mask_dir_name='mask256', exclude_views=(215,))
    """

    name = "mobrecon_complement"

    def __init__(self, root, crop_size: int = CROP_SIZE, crop_scale: float = CROP_SCALE,
                 image_glob: str = "data/**/pic256/**/*.png", k_file: str = "K256.npy",
                 jreg_file: str = "j_reg.npy", joint_regressor=None, image_dir_name: str = "pic256",
                 mesh_dir_name: str = "model_mano", mask_dir_name: str = "mask256", exclude_views=(215,)):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(f"{self.root}: MobRecon complement root not found "
                                     f"(expected {k_file}, {jreg_file} and {image_glob})")
        self.crop_size, self.crop_scale = int(crop_size), float(crop_scale)
        self.dirs = (image_dir_name, mesh_dir_name, mask_dir_name)
        self.K = _load_npy(self.root / k_file, (3, 3), "the (3, 3) intrinsics of the 256x256 renders")
        if joint_regressor is None or isinstance(joint_regressor, (str, Path)):
            path = self.root / jreg_file if joint_regressor is None else Path(joint_regressor)
            self.j_reg = _load_npy(path, (21, NUM_VERTICES), "the (21, 778) joint regressor, MANO order + tips")
        else:
            self.j_reg = np.asarray(joint_regressor, dtype=np.float64)
            if self.j_reg.shape != (21, NUM_VERTICES):
                raise ValueError(f"joint_regressor has shape {self.j_reg.shape}, expected (21, {NUM_VERTICES})")
        excluded = {int(v) for v in exclude_views}
        samples = []
        for path in sorted(self.root.glob(image_glob)):
            try:
                view = view_of(path.name)
            except ValueError as err:
                raise DatasetFormatError(f"{path}: {err} (MobRecon reads the view from the second field)") \
                    from None
            if view not in excluded:
                samples.append((path, view))
        if not samples:
            raise DatasetFormatError(f"{self.root}: no images match {image_glob!r} (expected the released "
                                     "complement data: data/<pose>/pic256/<variant>/<name>.<view>.png)")
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def annotation_paths(self, image_path: Path, view: int) -> tuple:
        """(mesh, mask) of an image: <P>/<image_dir>/<V>/<name> -> <P>/<mesh_dir>/<view>.obj and
        <P>/<mask_dir>/<view>.png."""
        pose_dir = image_path.parent.parent
        if pose_dir.name != self.dirs[0]:
            raise DatasetFormatError(f"{image_path}: expected <pose>/{self.dirs[0]}/<variant>/<name>.png")
        base = pose_dir.parent
        return base / self.dirs[1] / f"{view}.obj", base / self.dirs[2] / f"{view}.png"

    def sample_id(self, index: int) -> str:
        return self.samples[index][0].relative_to(self.root).as_posix()

    def __getitem__(self, index: int) -> dict:
        from .registry import make_sample, read_image

        path, view = self.samples[index]
        mesh_path, mask_path = self.annotation_paths(path, view)
        image = read_image(path, "a 256x256 complement render (PNG)")
        verts = read_obj_vertices(mesh_path)
        m = read_image(mask_path, "a complement hand mask (PNG)", mode=None)
        if m.shape[:2] != image.shape[:2]:
            raise DatasetFormatError(f"{mask_path}: mask is {m.shape[:2]}, image {path} is {image.shape[:2]}")
        mask = (m[..., 2] if m.ndim == 3 else m) > 0     # cv2's BGR channel 0 = blue
        kp3 = (self.j_reg @ verts)[MANO_TO_FREIHAND]
        h, w = image.shape[:2]
        uv = project(kp3, self.K)
        visible = (kp3[:, 2] > 0) & np.all((uv >= -0.5) & (uv <= np.array([w, h]) - 0.5), axis=1)
        image, K, (kp3, verts) = mirror_sample(image, self.K, [kp3, verts])
        mask = mask[:, ::-1].copy()
        A = box_crop(project(kp3, K), self.crop_size, self.crop_scale)
        return make_sample(image, A, K, kp3, out_size=self.crop_size, mask=mask, vertices=verts,
                           visibility=visible, mirrored=True, dataset=self.name, sample_id=self.sample_id(index),
                           topology="mano")

    @classmethod
    def check(cls, root, limit: int | None = None, **kwargs) -> list:
        """Counts of images / pose folders and problems (missing meshes, masks, unreadable files)."""
        from .registry import check_image

        try:
            ds = cls(root, **kwargs)
        except DatasetFormatError as err:
            return [f"problem: {err}"]
        lines, problems = [], []
        poses = {p.parent.parent.parent for p, _ in ds.samples}
        lines.append(f"count: {len(ds)} images in {len(poses)} pose folders")
        seen = set()
        for i, (path, view) in enumerate(ds.samples if limit is None else ds.samples[:int(limit)]):
            check_image(path, "a complement render", problems)
            try:
                mesh, mask = ds.annotation_paths(path, view)
            except DatasetFormatError as err:
                problems.append(f"problem: {err}")
                continue
            if (mesh, mask) in seen:
                continue
            seen.add((mesh, mask))
            try:
                read_obj_vertices(mesh)
            except DatasetFormatError as err:
                problems.append(f"problem: {err}")
            check_image(mask, "a complement hand mask", problems)
        lines.append(f"count: {len(seen)} distinct meshes / masks checked")
        return lines + list(dict.fromkeys(problems))
