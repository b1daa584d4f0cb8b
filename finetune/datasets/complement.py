"""Our own rendered complement data (synth/shards.py format) as base.py samples.

`ComplementShardsDataset` adapts `synth.reader.ComplementDataset` (random access
into the per-pose tar shards) to the sample dictionary every loader returns:

- image / mask: the full render cropped around the hand (base.box_crop on the
  projected keypoints, the same crop rule as every real benchmark), K moved by
  the crop's affine map, keypoints_2d = project(keypoints_3d, K_crop);
- keypoints_3d: the annotation's camera-frame keypoints (FreiHAND order);
  vertices: the pose's model-topology vertices in the camera frame;
  *_rel: minus the wrist;
- mano_pose: the pose's flat axis-angle parameters from poses.npz with the
  global rotation expressed in the camera frame (R_view @ R_global), so that
  model(mano_pose) minus its wrist equals vertices_rel; betas are zero (the
  complement poses use the model's mean shape);
- visibility: the render's own per-keypoint visibility (depth test);
- topology: 'mano' when the data were rendered with the MANO model, otherwise
  the hand model's template hash recorded in dataset.json
  (hand_model.template_hash), so the trainer's topology guard can tell
  OpenHand meshes from MANO ones (base.py's convention);
- dataset 'complement', sample_id the shard key '<pose:04d>_<view:03d>'.

Filters (poses, views, hdri_split, verify) are the reader's. Single-view mode
exposes `sample_pose_ids`, so synth.reader.MultiViewSampler groups its indices
by pose; `multiview=N` makes every item one pose with N of its views stacked
(multiview.stack_views), each view with its extra 'R', 't' (model frame -> camera)
and 'view_id'. The N views of an item are a random subset drawn from
(seed, epoch, pose) (`set_epoch`), or all of them when N is 'all'.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .base import CROP_SCALE, CROP_SIZE, DatasetFormatError, box_crop


class ComplementShardsDataset(Dataset):
    """ComplementShardsDataset(root, poses=None, views=None, hdri_split=None, crop_size=128, crop_scale=1.5,
                               multiview=None, seed=0, verify=False)"""

    name = "complement"

    def __init__(self, root, poses=None, views=None, hdri_split: str | None = None, crop_size: int = CROP_SIZE,
                 crop_scale: float = CROP_SCALE, multiview=None, seed: int = 0, verify: bool = False):
        from synth.reader import ComplementDataset

        self.root = Path(root)
        try:
            self.reader = ComplementDataset(self.root, poses=poses, views=views, hdri_split=hdri_split,
                                            verify=verify)
        except FileNotFoundError as err:
            raise DatasetFormatError(str(err)) from err
        self.crop_size, self.crop_scale = int(crop_size), float(crop_scale)
        hm = self.reader.info.get("hand_model") or {}
        if "template_hash" not in hm:
            raise DatasetFormatError(f"{self.root / 'dataset.json'}: hand_model lacks template_hash")
        self.hand_model_name = str(hm.get("name", ""))
        from synth.hand_model import topology_tag

        self.topology = topology_tag(self.hand_model_name, hm["template_hash"])
        self._params = self._load_params()
        self.sample_pose_ids = self.reader.sample_pose_ids
        self.seed, self.epoch = int(seed), 0
        self.multiview = multiview
        if multiview is not None:
            if multiview != "all" and (not isinstance(multiview, int) or multiview < 1):
                raise ValueError(f"multiview must be None, 'all' or a positive int, got {multiview!r}")
            self.pose_ids = sorted({int(p) for p in self.sample_pose_ids})
            self.by_pose = {p: np.flatnonzero(self.sample_pose_ids == p) for p in self.pose_ids}
            if multiview != "all":
                short = [p for p in self.pose_ids if len(self.by_pose[p]) < multiview]
                if short:
                    raise ValueError(f"pose(s) {short[:10]} have fewer than multiview={multiview} views "
                                     f"(pose {short[0]}: {len(self.by_pose[short[0]])})")

    def _load_params(self) -> dict:
        path = self.root / "poses.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, params = z["pose_ids"], z["params"]
        except (OSError, KeyError, ValueError) as err:
            raise DatasetFormatError(f"{path}: cannot read pose_ids / params ({err})") from err
        return {int(p): np.asarray(params[i], dtype=np.float64) for i, p in enumerate(ids)}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.reader) if self.multiview is None else len(self.pose_ids)

    def view_sample(self, index: int, extras: bool = False) -> dict:
        """The sample of one reader index (one view of one pose); extras adds 'R', 't', 'view_id'."""
        from .base import project
        from .hanco import matrix_to_rotvec, rotvec_to_matrix
        from .registry import make_sample

        item = self.reader[index]
        image = np.round(item["image"].numpy().transpose(1, 2, 0) * 255.0).astype(np.uint8)
        K = item["K"].double().numpy()
        R = item["R"].double().numpy()
        kp3 = item["keypoints_3d"].double().numpy()
        pid = int(item["pose_id"])
        if pid not in self._params:
            raise DatasetFormatError(f"{self.root / 'poses.npz'}: no params for pose {pid}")
        pose = self._params[pid].copy()
        pose[:3] = matrix_to_rotvec(R @ rotvec_to_matrix(pose[:3]))
        A = box_crop(project(kp3, K), self.crop_size, self.crop_scale)
        sample = make_sample(image, A, K, kp3, out_size=self.crop_size, mask=item["mask"].numpy(),
                             vertices=item["vertices"].double().numpy(), mano_pose=pose, mano_betas=np.zeros(10),
                             visibility=item["visibility"].numpy(), mirrored=False, dataset=self.name,
                             sample_id=item["key"], topology=self.topology)
        if extras:
            sample["R"] = item["R"]
            sample["t"] = item["t"]
            sample["view_id"] = int(item["view_id"])
        return sample

    def __getitem__(self, index: int) -> dict:
        if self.multiview is None:
            return self.view_sample(index)
        pid = self.pose_ids[index]
        idx = self.by_pose[pid]
        if self.multiview != "all":
            rng = np.random.default_rng([self.seed, self.epoch, pid])
            idx = np.sort(rng.choice(idx, self.multiview, replace=False))
        from .multiview import stack_views

        return stack_views([self.view_sample(int(i), extras=True) for i in idx])

    @classmethod
    def check(cls, root, limit: int | None = None) -> list:
        """Shard counts (complete / incomplete / missing / partial) and problems, against the dataset's own
        plan (dataset.json's pose_ids x view_ids, as the tables hold them): every shard's manifest, tar layout
        and member checksums (reads every byte; `limit` checks the first N poses); a missing shard (a failed
        or unfinished render) and a partial one (fewer views than the plan's, or others) are problems."""
        from synth.shards import check_shard, parse_key
        from synth.tables import load_tables

        def _brief_ids(ids: list) -> str:
            return ", ".join(map(str, ids[:8])) + (f" ... ({len(ids)} in all)" if len(ids) > 8 else "")

        root = Path(root)
        try:
            tables = load_tables(root)
        except (FileNotFoundError, ValueError) as err:
            return [f"problem: {err}"]
        hm = tables.dataset.get("hand_model", {})
        plan_views = [int(v) for v in tables.views["view_ids"]]
        lines = [f"info: hand model {hm.get('name')} (template {hm.get('template_hash')})",
                 f"count: {len(tables.poses['pose_ids'])} poses x {len(plan_views)} views in the tables"]
        problems, status = [], {"complete": 0, "incomplete": 0, "missing": 0, "partial": 0}
        samples = 0
        pose_ids = [int(p) for p in tables.poses["pose_ids"]]
        for pid in pose_ids if limit is None else pose_ids[:int(limit)]:
            c = check_shard(root, pid, config_hash=tables.dataset.get("config_hash"), verify=True)
            status[c.status] += 1
            if c.status == "complete":
                samples += len(c.manifest["samples"])
                views = {parse_key(k)[1] for k in c.manifest["samples"]}
                lacking, others = sorted(set(plan_views) - views), sorted(views - set(plan_views))
                if lacking or others:
                    status["partial"] += 1
                    what = []
                    if lacking:
                        what.append(f"holds {len(set(plan_views) & views)} of the plan's {len(plan_views)} views "
                                    f"(lacks {_brief_ids(lacking)})")
                    if others:
                        what.append(f"holds views the plan lacks ({_brief_ids(others)})")
                    problems.append(f"problem: shard of pose {pid} is partial: it {' and '.join(what)}; re-run "
                                    "the render to complete it")
            elif c.status == "incomplete":
                problems.append(f"problem: shard of pose {pid} is incomplete: {c.reason}")
            else:
                problems.append(f"problem: shard of pose {pid} is missing ({root / 'shards' / f'{pid:04d}.tar'}): "
                                "the plan (dataset.json) has it; re-run the render to make it")
        lines.append(f"count: shards: {status['complete']} complete ({samples} samples), "
                     f"{status['incomplete']} incomplete, {status['missing']} missing")
        lines.append(f"count: {status['partial']} of the complete shards partial (fewer views than the plan's, "
                     "or others)")
        return lines + problems
