"""Fine-tuning data: dataset specs -> a mixture with ratios -> augmented (paired) training samples.

A dataset spec names a registered loader (finetune/datasets/registry.py), its root, its share of
an epoch and the loader's own options:

    {"name": "freihand", "root": "~/data/FreiHAND", "ratio": 1.0, "options": {"split": "training"}}
    "complement:runs/demo/complement:0.5"          # the same as a string NAME:ROOT[:RATIO]

`MixedTrainingSet` draws each epoch's samples with `finetune.mixture.MixtureSampler` (ratios as
relative shares; "FreiHAND 1.0 + complement 0.5" is every FreiHAND sample once plus half as many
complement samples) and augments them (finetune/augment.py); with `paired=True` every item is two
augmentations of one sample with their relative transforms (MobRecon's consistency loss). Item i
of epoch e is drawn from SeedSequence([seed, e, i]): reproducible whatever the worker layout, and
the same after a resume.

The topology guard (DESIGN.md): a sample's mesh supervises the model only when its `topology`
equals the model's ('mano', or the hand model's template hash); otherwise `mesh_valid` is False
and only its keypoints supervise. With `mismatch='error'` (the default) a dataset whose meshes
have another topology is refused with an error that names both.

Multi-view items (SiMA-Hand): `open_multiview` opens a loader with its multi-view access and
`MultiViewSet` stacks N views of one hand per item, each view augmented from its own stream.

2D-only samples (`has_keypoints_3d` False, e.g. `coco_hand`): `keypoints_2d_valid` is their
visibility (the labelled keypoints), `keypoints_3d_valid` False, and `check_keypoints_3d` refuses
them to a model whose loss reads 3D keypoints (`reads_keypoints_3d`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# what the models' losses and evaluation read; the rest of a loader's sample stays behind
KEYS = ("image", "K", "keypoints_2d", "keypoints_3d", "keypoints_3d_rel", "vertices_rel", "has_vertices",
        "mask", "has_mask", "topology", "dataset", "sample_id")   # mask: CMR's silhouette loss


def parse_spec(spec) -> dict:
    """A dataset spec (dict or 'NAME:ROOT[:RATIO]') as {'name', 'root', 'ratio', 'options'}."""
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(f"dataset spec {spec!r}: expected NAME:ROOT[:RATIO], e.g. freihand:~/data/FreiHAND:1.0")
        ratio = 1.0
        if len(parts) > 2:
            try:
                ratio = float(parts[2])
            except ValueError:
                raise ValueError(f"dataset spec {spec!r}: ratio {parts[2]!r} is not a number") from None
        spec = {"name": parts[0], "root": parts[1], "ratio": ratio}
    if not isinstance(spec, dict) or "name" not in spec or "root" not in spec:
        raise ValueError(f"dataset spec {spec!r}: needs 'name' and 'root'")
    unknown = sorted(set(spec) - {"name", "root", "ratio", "options"})
    if unknown:
        raise ValueError(f"dataset spec {spec}: unknown key(s) {unknown}; keys: name, root, ratio, options")
    return {"name": str(spec["name"]), "root": str(Path(str(spec["root"])).expanduser()),
            "ratio": float(spec.get("ratio", 1.0)), "options": dict(spec.get("options") or {})}


def open_dataset(spec: dict, crop_size: int):
    from finetune.datasets.registry import get

    cls = get(spec["name"])
    return cls(spec["root"], crop_size=int(crop_size), **spec["options"])


def check_topology(datasets: dict, topology: str, mismatch: str = "error") -> dict:
    """{dataset name: its mesh topology or None}; raises on a mesh of another topology when mismatch='error'."""
    if mismatch not in ("error", "keypoints"):
        raise ValueError(f"mismatch must be 'error' or 'keypoints', got {mismatch!r}")
    found = {}
    for name, ds in datasets.items():
        if len(ds) == 0:
            found[name] = None
            continue
        first = ds[0]
        found[name] = str(first["topology"]) if bool(first["has_vertices"]) else None
        if found[name] is not None and found[name] != topology and mismatch == "error":
            raise ValueError(
                f"dataset {name!r} has meshes of topology {found[name]!r} but the model's hand model has "
                f"{topology!r}: one model's vertices cannot supervise another's mesh (vertex i is not the same "
                f"point). Render the complement data with the model's hand model, build the model for this "
                f"data's hand model, or set mismatch: keypoints to supervise only its keypoints.")
    return found


def training_sample(sample: dict, topology: str) -> dict:
    """The keys the losses read, plus mesh_valid (mesh of the model's topology), keypoints_2d_valid and
    keypoints_3d_valid (False for a 2D-only sample, has_keypoints_3d False: its 2D labels are the
    labelled keypoints, its 3D keypoints zeros)."""
    out = {k: sample[k] for k in KEYS}
    out["mesh_valid"] = bool(sample["has_vertices"]) and str(sample["topology"]) == topology
    has_3d = bool(sample.get("has_keypoints_3d", True))
    out["keypoints_3d_valid"] = has_3d
    if has_3d:
        out["keypoints_2d_valid"] = sample["keypoints_3d"][:, 2] != 0      # unlabelled keypoints are zeros
    else:
        out["keypoints_2d_valid"] = sample["visibility"].clone()
        out["keypoints_3d"] = torch.zeros_like(sample["keypoints_3d"])      # whatever as_rays put there
        out["keypoints_3d_rel"] = torch.zeros_like(sample["keypoints_3d_rel"])
    return out


def as_rays(sample: dict) -> dict:
    """A 2D-only sample (has_keypoints_3d False) with its labelled keypoints as the points at depth 1 on
    their rays through K, for augmentation: finetune.augment re-projects keypoints_3d to get the new 2D
    keypoints, so this carries the 2D labels with the image; training_sample puts zeros back. Other
    samples are returned as they are."""
    if sample.get("has_keypoints_3d", True):
        return sample
    K = sample["K"].double()
    uv1 = torch.cat([sample["keypoints_2d"].double(), torch.ones(len(sample["keypoints_2d"]), 1,
                                                                 dtype=torch.float64)], dim=1)
    rays = uv1 @ torch.linalg.inv(K).T
    rays = rays / rays[:, 2:3]
    kp3 = torch.where(sample["visibility"][:, None], rays, torch.zeros_like(rays)).float()
    return {**sample, "keypoints_3d": kp3, "keypoints_3d_rel": kp3 - kp3[0]}


def check_keypoints_3d(datasets: dict, reads_keypoints_3d: bool, model_name: str = "the model") -> None:
    """Refuse 2D-only datasets (has_keypoints_3d False) to a model whose loss reads 3D keypoints (the
    model's `reads_keypoints_3d`): their zeros would supervise it."""
    two_d = [name for name, ds in datasets.items() if not getattr(ds, "has_keypoints_3d", True)]
    if two_d and reads_keypoints_3d:
        raise ValueError(
            f"dataset(s) {two_d} have 2D labels only, but the loss of {model_name} reads 3D keypoints; "
            "train them with a model whose loss reads 2D keypoints only (MobRecon, cmr_baseline, or SMR with "
            "model option supervision=2d), or use them for evaluation")


class MixedTrainingSet(Dataset):
    """Epoch-indexed mixture of named datasets, augmented (optionally in pairs); see the module doc."""

    def __init__(self, datasets: dict, ratios: dict, topology: str, augment=None, paired: bool = False,
                 seed: int = 0, epoch_size: int | None = None):
        from finetune.mixture import MixtureDataset, MixtureSampler

        self.mixture = MixtureDataset(datasets)
        self.sampler = MixtureSampler(self.mixture, ratios, epoch_size=epoch_size, seed=seed)
        self.topology, self.augment, self.paired, self.seed = topology, augment, bool(paired), int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.indices = self.sampler.epoch_indices(self.epoch)

    def __len__(self) -> int:
        return self.sampler.epoch_size

    def __getitem__(self, i: int):
        from finetune.augment import AugmentConfig, augment, paired_views

        sample = as_rays(self.mixture[int(self.indices[i])])
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(i)]))
        config = self.augment if self.augment is not None else AugmentConfig.none()
        if self.paired:
            p = paired_views(sample, config, rng)
            return {"view1": training_sample(p["view1"], self.topology),
                    "view2": training_sample(p["view2"], self.topology), "T_12": p["T_12"], "R_12": p["R_12"]}
        return training_sample(augment(sample, config, rng)[0] if self.augment is not None else sample,
                               self.topology)


class EvalSet(Dataset):
    """A dataset's samples as training_sample dicts (no augmentation)."""

    def __init__(self, dataset, topology: str):
        self.dataset, self.topology = dataset, topology

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return training_sample(self.dataset[i], self.topology)


def concat_views(batch: dict) -> dict:
    """A paired batch as one batch of 2B samples (view 1 first), for one forward pass."""
    v1, v2 = batch["view1"], batch["view2"]
    out = {}
    for k, a in v1.items():
        b = v2[k]
        out[k] = torch.cat([a, b]) if isinstance(a, torch.Tensor) else list(a) + list(b)
    return out


# ---------------------------------------------------------------- multi-view items (SiMA-Hand)

MULTIVIEW_OPTION = {"complement": lambda n: n, "hanco": lambda n: True, "dexycb": lambda n: True}
# the stream of a multi-view item's view choice, SeedSequence([seed, epoch, i, VIEW_CHOICE_STREAM]); view k's
# augmentation draws from SeedSequence([seed, epoch, i, k]), so this number must be no view index (it was 7,
# which made the choice and view 7's augmentation one stream)
VIEW_CHOICE_STREAM = 1_000_003


def open_multiview(spec: dict, crop_size: int, views: int):
    """A loader of `spec` whose items stack several views of one hand."""
    name = spec["name"]
    if name not in MULTIVIEW_OPTION:
        raise ValueError(f"sima: dataset {name!r} has no multi-view access here (multi-view loaders: "
                         f"{', '.join(MULTIVIEW_OPTION)})")
    options = {"multiview": MULTIVIEW_OPTION[name](int(views)), **spec["options"]}
    ds = open_dataset({**spec, "options": options}, crop_size)
    fewest = getattr(ds, "min_views", None)
    if fewest is not None and len(ds) and fewest < int(views):
        raise ValueError(f"sima: {name} at {spec['root']} (options {spec['options']}) has items with only "
                         f"{fewest} views, fewer than views={views}")
    return ds


def unstack(item: dict, index: int) -> dict:
    return {k: v[index] for k, v in item.items()}


class MultiViewSet(Dataset):
    """Items of N views of one hand as stacked training samples ((N, ...) tensors, per-view string lists):
    the multi-view twin of MixedTrainingSet (training) and EvalSet (evaluation).

    Training: a mixture with ratios (finetune.mixture); an item with more views than N keeps N of them,
    drawn from `view_choice_seed`; each view is augmented independently from `view_seed`. Evaluation:
    one dataset, no augmentation."""

    def __init__(self, datasets: dict, topology: str, views: int, ratios: dict | None = None, augment=None,
                 seed: int = 0, epoch_size: int | None = None, on_epoch=None, train: bool = True):
        from finetune.mixture import MixtureDataset, MixtureSampler

        self.datasets = datasets
        self.mixture = MixtureDataset(datasets)
        self.train = bool(train)
        self.sampler = MixtureSampler(self.mixture, ratios or {k: 1.0 for k in datasets}, epoch_size=epoch_size,
                                      seed=seed) if self.train else None
        self.topology, self.augment, self.seed = topology, augment, int(seed)
        self.views = None if views is None else int(views)     # None: every view of an item
        self.on_epoch = on_epoch
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for ds in self.datasets.values():
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(self.epoch)
        if self.train:
            self.indices = self.sampler.epoch_indices(self.epoch)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)

    def __len__(self) -> int:
        return self.sampler.epoch_size if self.train else len(self.mixture)

    def view_choice_seed(self, i: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, self.epoch if self.train else 0, int(i), VIEW_CHOICE_STREAM])

    def view_seed(self, i: int, view: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, self.epoch, int(i), int(view)])

    def __getitem__(self, i: int) -> dict:
        from finetune.augment import augment
        from finetune.datasets.multiview import stack_views

        item = self.mixture[int(self.indices[i]) if self.train else int(i)]
        n = len(item["image"])
        views = n if self.views is None else self.views
        if n < views:
            raise ValueError(f"sima: an item has {n} views, fewer than views={views}")
        chosen = np.arange(n)
        if n > views:
            chosen = np.sort(np.random.default_rng(self.view_choice_seed(i)).choice(n, views, replace=False))
        out = []
        for k in chosen:
            s = unstack(item, int(k))
            if self.train and self.augment is not None:
                s = augment(s, self.augment, np.random.default_rng(self.view_seed(i, int(k))))[0]
            out.append(training_sample(s, self.topology))
        return stack_views(out)


def collate_views(items: list) -> dict:
    """(B, N, ...) tensors; string keys as lists of B lists of N."""
    return {k: torch.stack([it[k] for it in items]) if isinstance(items[0][k], torch.Tensor)
            else [it[k] for it in items] for k in items[0]}


def flatten_views(batch: dict) -> dict:
    """(B, N, ...) -> (B*N, ...), view-major within each hand; lists of lists -> one list."""
    return {k: v.reshape(-1, *v.shape[2:]) if isinstance(v, torch.Tensor) else [x for row in v for x in row]
            for k, v in batch.items()}


class FirstView:
    """A multi-view dataset seen through its items' first view (for check_topology)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return unstack(self.ds[i], 0)
