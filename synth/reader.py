"""PyTorch access to a rendered complement dataset (the format of synth/shards.py).

`ComplementDataset` indexes the complete shards through their manifests and
reads a sample by seeking to its members' recorded offsets inside the tar: no
extraction, one read per sample. File handles are opened lazily, per process
(a DataLoader worker forked from a parent that already read reopens its own),
and at most MAX_OPEN_SHARDS stay open at a time.

`MultiViewSampler` yields groups of views of one pose (SiMA's multi-view
batches) and `collate_multiview` stacks such a group with a leading view axis.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .shards import MASK_VALUES, check_shard, parse_key, sample_members, shard_paths
from .tables import load_tables

MAX_OPEN_SHARDS = 64
HDRI_SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class SampleRef:
    pose_id: int
    view_id: int
    key: str
    start: int        # byte range of the sample's members in the tar
    stop: int
    members: tuple    # ((kind, offset, size), ...) with kind in rgb, depth, mask, json


def _pread(f, offset: int, size: int) -> bytes:
    if hasattr(os, "pread"):  # positional: no shared file offset to race on
        return os.pread(f.fileno(), size, offset)
    f.seek(offset)
    return f.read(size)


class ComplementDataset(Dataset):
    def __init__(self, root, poses=None, views=None, hdri_split: str | None = None, verify: bool = False):
        self.root = Path(root)
        tables = load_tables(self.root)
        self.info = tables.dataset
        if hdri_split not in (None,) + HDRI_SPLITS:
            raise ValueError(f"hdri_split must be None, 'train' or 'heldout', got {hdri_split!r}")
        pose_index = tables.pose_index()
        pose_ids = self._select("pose", poses, pose_index)
        view_index = tables.view_index()
        view_ids = set(self._select("view", views, view_index))
        hdri_filter = None  # (ids of the wanted split, every catalog id)
        if hdri_split is not None:
            hdri_filter = ({str(e["id"]) for e in tables.hdris if e.get("split") == hdri_split and "id" in e},
                           {str(e.get("id")) for e in tables.hdris})

        expected_hash = self.info.get("config_hash")  # optional: a dataset may record the hash of its config
        samples, skipped = [], {"missing": [], "incomplete": []}
        for pid in pose_ids:
            check = check_shard(self.root, pid, config_hash=expected_hash, verify=verify)
            if check.status != "complete":
                skipped[check.status].append((pid, check.reason))
                continue
            samples += self._index_shard(pid, check.manifest, view_ids, hdri_filter)
        self.skipped = skipped
        n_sel = len(pose_ids)
        if skipped["incomplete"]:
            pid, reason = skipped["incomplete"][0]
            warnings.warn(f"{self.root}: skipping {len(skipped['incomplete'])} incomplete shard(s) of {n_sel} "
                          f"selected pose(s) (first: pose {pid}: {reason})", stacklevel=2)
        if skipped["missing"]:
            warnings.warn(f"{self.root}: {len(skipped['missing'])} of {n_sel} selected pose(s) have no shard yet "
                          f"(first: pose {skipped['missing'][0][0]})", stacklevel=2)
        if not samples:
            raise ValueError(f"{self.root}: no samples match (poses={_brief(poses)}, views={_brief(views)}, "
                             f"hdri_split={hdri_split!r}); {n_sel - sum(map(len, skipped.values()))} complete, "
                             f"{len(skipped['incomplete'])} incomplete, {len(skipped['missing'])} missing shard(s)")
        self.samples = samples
        self.sample_pose_ids = np.array([s.pose_id for s in samples], dtype=np.int64)
        # only what __getitem__ needs stays in memory (workers started by spawn get a pickled copy)
        rows = [pose_index[p] for p in sorted({s.pose_id for s in samples})]
        self._vertex_row = {int(tables.poses["pose_ids"][r]): i for i, r in enumerate(rows)}
        self._vertices = np.ascontiguousarray(tables.poses["vertices"][rows], dtype=np.float32)
        self._handles: OrderedDict = OrderedDict()
        self._owner = os.getpid()

    # -- indexing
    @staticmethod
    def _select(kind: str, wanted, index: dict) -> list:
        if wanted is None:
            return sorted(index)
        wanted = sorted({int(w) for w in wanted})
        unknown = [w for w in wanted if w not in index]
        if unknown:
            raise ValueError(f"unknown {kind} id(s) {unknown[:10]}; the dataset has {len(index)} {kind}s "
                             f"({min(index)}..{max(index)})")
        return wanted

    def _index_shard(self, pid: int, manifest: dict, view_ids: set, hdri_filter) -> list:
        tar_path = shard_paths(self.root, pid)[0]
        hdri_of = manifest.get("hdri_ids") if isinstance(manifest.get("hdri_ids"), dict) else {}
        out, tar = [], None
        try:
            for key in manifest["samples"]:
                ref, tar = self._index_sample(pid, key, manifest, view_ids, hdri_filter, hdri_of, tar_path, tar)
                if ref is not None:
                    out.append(ref)
        finally:
            if tar is not None:
                tar.close()
        return out

    def _index_sample(self, pid, key, manifest, view_ids, hdri_filter, hdri_of, tar_path, tar):
        _, view_id = parse_key(key)
        if view_id not in view_ids:
            return None, tar
        names = sample_members(manifest, key)
        members = tuple((kind, manifest["members"][n]["offset"], manifest["members"][n]["size"])
                        for kind, n in names.items())
        if hdri_filter is not None:
            wanted, catalog = hdri_filter
            hdri = hdri_of.get(key)
            if hdri is None:  # a manifest without the index: the id is in the sample's annotation
                if tar is None:
                    tar = open(tar_path, "rb")
                _, off, size = next(m for m in members if m[0] == "json")
                ann = self._annotation(_pread(tar, off, size), tar_path, names["json"])
                hdri = ann["hdri"].get("id") if isinstance(ann.get("hdri"), dict) else None
            if hdri is None or str(hdri) not in catalog:
                raise ValueError(f"{tar_path}: sample {key} uses HDRI {hdri!r}, which is not in "
                                 f"{self.root / 'hdris.json'}; cannot tell its split")
            if str(hdri) not in wanted:
                return None, tar
        start = min(o for _, o, _ in members)
        stop = max(o + s for _, o, s in members)
        return SampleRef(pid, view_id, key, start, stop, members), tar

    def __len__(self) -> int:
        return len(self.samples)

    # -- file handles, per process
    def _handle(self, pose_id: int):
        if os.getpid() != self._owner:  # forked worker: never share the parent's descriptors
            self._handles = OrderedDict()
            self._owner = os.getpid()
        f = self._handles.get(pose_id)
        if f is None:
            if len(self._handles) >= MAX_OPEN_SHARDS:
                self._handles.popitem(last=False)[1].close()
            f = open(shard_paths(self.root, pose_id)[0], "rb", buffering=0)
            self._handles[pose_id] = f
        else:
            self._handles.move_to_end(pose_id)
        return f

    def close(self) -> None:
        if os.getpid() == self._owner:
            for f in self._handles.values():
                f.close()
        self._handles = OrderedDict()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._owner = os.getpid()

    # -- samples
    @staticmethod
    def _annotation(data: bytes, tar_path, member: str) -> dict:
        try:
            ann = json.loads(data)
        except ValueError as e:
            raise ValueError(f"{tar_path}:{member}: not valid JSON ({e})") from None
        if not isinstance(ann, dict):
            raise ValueError(f"{tar_path}:{member}: expected a JSON object")
        return ann

    def read_raw(self, index: int) -> dict:
        """The sample's member bytes {'rgb', 'depth', 'mask', 'json'} as stored."""
        ref = self.samples[index]
        blob = _pread(self._handle(ref.pose_id), ref.start, ref.stop - ref.start)
        if len(blob) != ref.stop - ref.start:
            raise OSError(f"{shard_paths(self.root, ref.pose_id)[0]}: short read for sample {ref.key} "
                          "(the shard changed after indexing?)")
        return {kind: blob[off - ref.start: off - ref.start + size] for kind, off, size in ref.members}

    def __getitem__(self, index: int) -> dict:
        from PIL import Image

        ref = self.samples[index]
        tar_path = shard_paths(self.root, ref.pose_id)[0]
        raw = self.read_raw(index)
        ann = self._annotation(raw["json"], tar_path, f"{ref.key}.json")

        def image(kind, mode):
            try:
                im = Image.open(io.BytesIO(raw[kind]))
                return np.asarray(im if mode is None else im.convert(mode))
            except Exception as e:
                raise ValueError(f"{tar_path}: cannot decode {kind} image of sample {ref.key} ({e})") from None

        rgb = image("rgb", "RGB")
        depth = image("depth", None)
        mask = image("mask", "L")
        h, w = rgb.shape[:2]
        if depth.shape != (h, w) or mask.shape != (h, w):
            raise ValueError(f"{tar_path}: sample {ref.key} has rgb {rgb.shape[:2]}, depth {depth.shape}, "
                             f"mask {mask.shape}; expected one size")

        def field(name, shape, dtype=torch.float32):
            if name not in ann:
                raise ValueError(f"{tar_path}:{ref.key}.json: annotation lacks {name!r}")
            a = np.asarray(ann[name])
            if a.shape != shape:
                raise ValueError(f"{tar_path}:{ref.key}.json: {name} has shape {a.shape}, expected {shape}")
            return torch.as_tensor(a.astype(np.float64 if dtype == torch.float32 else bool)).to(dtype)

        R = field("R", (3, 3))
        t = field("t", (3,))
        verts = self._vertices[self._vertex_row[ref.pose_id]].astype(np.float64)
        verts_cam = verts @ R.double().numpy().T + t.double().numpy()
        hdri = ann.get("hdri")
        return {
            "image": torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0),
            "mask": torch.from_numpy(mask > 191),              # the hand (255; older files: 0/255)
            "segmentation": torch.from_numpy(segmentation(mask)),
            "depth": torch.from_numpy(depth.astype(np.float32) / 1000.0),
            "K": field("K", (3, 3)),
            "R": R,
            "t": t,
            "keypoints_2d": field("keypoints_2d", (21, 2)),
            "keypoints_3d": field("keypoints_3d", (21, 3)),
            "vertices": torch.from_numpy(verts_cam.astype(np.float32)),
            "visibility": field("visibility", (21,), torch.bool),
            "pose_id": ref.pose_id,
            "view_id": ref.view_id,
            "hdri_id": str(hdri.get("id", "")) if isinstance(hdri, dict) else "",
            "key": ref.key,
        }


SEGMENTATION_LABELS = ("background", "hand", "arm", "occluder")


def segmentation(mask_png: np.ndarray) -> np.ndarray:
    """KEY.mask.png values (shards.MASK_VALUES) -> uint8 ids into SEGMENTATION_LABELS."""
    out = np.zeros(mask_png.shape, dtype=np.uint8)
    for i, name in enumerate(SEGMENTATION_LABELS[1:], start=1):
        out[mask_png == MASK_VALUES[name]] = i
    return out


def _brief(ids) -> str:
    if ids is None:
        return "all"
    ids = list(ids)
    return str(ids if len(ids) <= 6 else ids[:6] + ["..."])


class MultiViewSampler(Sampler):
    """Groups of `num_views` different views of one pose, as lists of dataset indices.

    Each pose's views are shuffled and cut into groups; with drop_last=False the
    last, short group of a pose is filled up with other views of the same pose
    (so every sample appears at least once per epoch and every group has
    num_views distinct views), with drop_last=True it is dropped. Group order is
    shuffled too. `poses_per_batch` > 1 concatenates that many groups per yielded
    list (pose-major; collate with num_views to get (B, V, ...)). The order
    depends only on (seed, epoch); call set_epoch for a new one each epoch.

    `source` is a ComplementDataset or any sequence with the pose id of every index.
    """

    def __init__(self, source, num_views: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, poses_per_batch: int = 1):
        pose_ids = getattr(source, "sample_pose_ids", source)
        pose_ids = np.asarray(pose_ids, dtype=np.int64)
        if num_views < 1 or poses_per_batch < 1:
            raise ValueError(f"num_views and poses_per_batch must be >= 1, got {num_views}, {poses_per_batch}")
        self.num_views, self.shuffle, self.seed = int(num_views), bool(shuffle), int(seed)
        self.drop_last, self.poses_per_batch = bool(drop_last), int(poses_per_batch)
        self.epoch = 0
        self.by_pose = {int(p): np.flatnonzero(pose_ids == p) for p in np.unique(pose_ids)}
        short = [p for p, idx in self.by_pose.items() if len(idx) < self.num_views]
        if short and not drop_last:
            raise ValueError(f"pose(s) {short[:10]} have fewer than num_views={num_views} views "
                             f"(pose {short[0]}: {len(self.by_pose[short[0]])}); use drop_last=True to skip them")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _groups(self) -> list:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = []
        for p in sorted(self.by_pose):
            idx = self.by_pose[p]
            if self.shuffle:
                idx = rng.permutation(idx)
            full = len(idx) // self.num_views * self.num_views
            groups += [idx[i:i + self.num_views].tolist() for i in range(0, full, self.num_views)]
            rest = idx[full:]
            if len(rest) and not self.drop_last:
                others = idx[:full]
                fill = rng.choice(others, self.num_views - len(rest), replace=False) if self.shuffle \
                    else others[:self.num_views - len(rest)]
                groups.append(rest.tolist() + list(map(int, fill)))
        if self.shuffle:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        n = self.poses_per_batch
        if n > 1:
            cut = len(groups) // n * n if self.drop_last else len(groups)
            groups = [sum(groups[i:i + n], []) for i in range(0, cut, n)]
        return groups

    def __iter__(self):
        return iter(self._groups())

    def __len__(self) -> int:
        per_pose = [len(i) // self.num_views + (0 if self.drop_last or len(i) % self.num_views == 0 else 1)
                    for i in self.by_pose.values()]
        groups = sum(per_pose)
        n = self.poses_per_batch
        return groups // n if self.drop_last else -(-groups // n)


def collate_multiview(samples: list, num_views: int | None = None) -> dict:
    """Stack sample dicts: tensors -> (V, ...) (or (B, V, ...) with num_views), ints -> int64
    tensors of the same leading shape, strings -> lists (nested per pose with num_views)."""
    if not samples:
        raise ValueError("collate_multiview got no samples")
    if num_views is not None and len(samples) % num_views:
        raise ValueError(f"{len(samples)} samples do not split into groups of num_views={num_views}")
    lead = (len(samples),) if num_views is None else (len(samples) // num_views, num_views)
    out = {}
    for k, v in samples[0].items():
        vals = [s[k] for s in samples]
        if isinstance(v, torch.Tensor):
            out[k] = torch.stack(vals).reshape(lead + tuple(v.shape))
        elif isinstance(v, (int, np.integer)):
            out[k] = torch.as_tensor(vals, dtype=torch.int64).reshape(lead)
        elif isinstance(v, (float, np.floating)):
            out[k] = torch.as_tensor(vals, dtype=torch.float32).reshape(lead)
        elif num_views is None:
            out[k] = vals
        else:
            out[k] = [vals[i:i + num_views] for i in range(0, len(vals), num_views)]
    return out
