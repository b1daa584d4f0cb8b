"""COCO-format 2D hand keypoints: parse a COCO keypoint file into hand records, and a 2D-pose Dataset of them.

Files read (`parse_coco_hand`):

- any COCO keypoint file with a category of 21 keypoints (COCO-WholeBody-Hand, OneHand10K, CMU
  Panoptic hand in mmpose's form, shared/realhands/asl/coco_hand.json): each annotation of such a
  category with `keypoints` [x, y, v] x 21 is one hand; `lefthand` (or `is_left`) true, or
  `hand_type` / `handedness` 'left', marks a left hand (absent: a right hand);
- COCO-WholeBody person annotations: `lefthand_kpts` / `righthand_kpts` (63 numbers each) are one
  hand each, unless `lefthand_valid` / `righthand_valid` is false; `lefthand_box` /
  `righthand_box` are kept in the record (`box`, COCO [x, y, w, h] in the unmirrored image).

Images are `file_name` relative to `image_root` (default: the JSON file's folder).

Conventions:

- Pixels: the COCO x, y are taken as pixel coordinates with the *centre* of the top-left pixel at
  (0, 0), the project's convention (the shared set is written so; for a set annotated with the
  top-left *corner* at (0, 0) this is half a pixel off, well below its labelling noise).
- Visibility: v > 0 is a labelled keypoint (`labelled`), v == 2 a visible one (`visible`); v == 0
  is unlabelled (its x, y, usually 0, are meaningless) and counts neither in the crop box nor in
  any error or loss. Hands with fewer than `min_keypoints` (default 6) labelled keypoints are
  skipped and counted (`CocoHandFile.skipped`).
- Keypoint order: FreiHAND's (0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP, tip;
  then middle, ring, little). When every one of the category's 21 names is recognised
  (`freihand_order`: 'wrist'; a finger - thumb, index / forefinger, middle, ring, pinky / little -
  followed by 1-4 counted from the palm, as COCO-WholeBody, OneHand10K and Panoptic write them,
  or by the joint: thumb cmc/mcp/ip/tip, fingers mcp/pip/dip/tip, as MediaPipe writes them) the
  keypoints are put in that order (COCO-WholeBody's own order already is FreiHAND's: no change).
  When no name is recognised the stored order is taken to be FreiHAND's (`order` says which);
  some recognised and some not is an error. COCO-WholeBody's hand arrays are in FreiHAND order.
- Left hands become right hands on load (`load_hand`): image flipped left-right and
  x -> (W - 1) - x, as the project's other loaders do (finetune/datasets/base.py mirror_sample).

`CocoHand2D` returns the item of `pretrain.data2d.Pose2DSamples` (image (3, S, S) in [0, 1],
keypoints_2d (21, 2) crop pixels, visibility (21,) bool, key, pose_id -1, hdri_id ''), so it goes
wherever Pose2DSamples goes. Here `visibility` means *labelled* (`visibility_is_labels = True`),
not the render's occlusion flag; unlabelled keypoints are at (0, 0) in crop pixels. The crop is
Pose2DSamples' (data2d.crop_transform): the labelled keypoints' square box enlarged 1.5 times,
mapped to S x S, with the same augmentation stream SeedSequence([seed, epoch, index]).

`find_coco_json(root)` accepts the file or its folder; `open_coco_sets` opens the `coco_eval` /
`coco_train` sets of the pose2d task (pretrain/task2d.py), and `Mixed2D` joins render and COCO
training sets, adding the `labelled` mask the task's loss reads. The fine-tuning loader
(finetune/datasets/coco_hand.py, `coco_hand`) uses `parse_coco_hand` and `load_hand` from here.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset

from .data2d import CROP_SCALE, NUM_JOINTS, Augment2D, CropSet

# the augmentation stream of a COCO item: SeedSequence([seed, epoch, index, COCO_STREAM]), apart from a render
# item's [seed, epoch, index] (a mixed training set holds render item i and COCO item i together)
COCO_STREAM = 101

MIN_KEYPOINTS = 6

# ---------------------------------------------------------------- keypoint names -> FreiHAND order

_FINGER_BASE = {"thumb": 1, "index": 5, "forefinger": 5, "middle": 9, "ring": 13, "pinky": 17, "little": 17}
# the joints of each finger from the palm out, as names spell them
_JOINT_SEQUENCES = (("1", "2", "3", "4"), ("cmc", "mcp", "ip", "tip"), ("mcp", "pip", "dip", "tip"))
_SIDE_PREFIX = re.compile(r"^(left|right|l|r|hand)_")


def _parse_name(name) -> tuple | None:
    """('wrist', '') or (finger, joint token) of a keypoint name, None when not recognised."""
    n = re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")
    while _SIDE_PREFIX.match(n):
        n = _SIDE_PREFIX.sub("", n, count=1)
    if n in ("wrist", "root", "hand_root"):
        return ("wrist", "")
    n = n.replace("_finger", "")
    m = re.fullmatch(r"([a-z]+)_?([1-4])", n) or re.fullmatch(r"([a-z]+)_(cmc|mcp|ip|pip|dip|tip)", n)
    if m and m.group(1) in _FINGER_BASE:
        return (m.group(1), m.group(2))
    return None


def freihand_order(names) -> list | None:
    """perm with perm[j] = the position in `names` of FreiHAND keypoint j; None when no name is recognised.

    Raises ValueError when the names are partly recognised or do not make up one hand."""
    names = list(names)
    parsed = [_parse_name(n) for n in names]
    if all(p is None for p in parsed):
        return None
    bad = [n for n, p in zip(names, parsed) if p is None]
    if bad:
        raise ValueError(f"keypoint names {bad} are not recognised (the others are): cannot put them in "
                         "FreiHAND order")
    perm = [None] * NUM_JOINTS
    by_finger: dict = {}
    for i, (finger, joint) in enumerate(parsed):
        if finger == "wrist":
            if perm[0] is not None:
                raise ValueError(f"two wrist keypoints in {names}")
            perm[0] = i
        else:
            by_finger.setdefault(_FINGER_BASE[finger], []).append((joint, i))
    for base, joints in by_finger.items():
        tokens = tuple(sorted(j for j, _ in joints))
        seq = next((s for s in _JOINT_SEQUENCES if tuple(sorted(s)) == tokens), None)
        if seq is None:
            raise ValueError(f"the names of one finger ({[names[i] for _, i in joints]}) are not 4 distinct "
                             "joints 1-4, cmc/mcp/ip/tip or mcp/pip/dip/tip")
        for joint, i in joints:
            perm[base + seq.index(joint)] = i
    missing = [j for j, p in enumerate(perm) if p is None]
    if missing:
        raise ValueError(f"keypoint names {names} leave FreiHAND keypoint(s) {missing} without a name")
    return perm


# ---------------------------------------------------------------- records

@dataclass(frozen=True)
class HandRecord:
    """One annotated hand: keypoints as annotated (FreiHAND order, not mirrored), image pixels."""

    image: Path
    keypoints: np.ndarray          # (21, 2) float64
    labelled: np.ndarray           # (21,) bool, v > 0
    visible: np.ndarray            # (21,) bool, v == 2
    is_left: bool
    image_id: object
    annotation_id: object
    size: tuple | None = None      # (W, H) from the images entry, when given
    box: tuple | None = None       # COCO-WholeBody's hand box [x, y, w, h], when given
    key: str = ""


@dataclass
class CocoHandFile:
    path: Path
    records: list
    skipped: dict = field(default_factory=dict)    # reason -> count
    order: str = "names"            # 'names' (mapped by name), 'as stored' (taken as FreiHAND's), 'COCO-WholeBody'
    categories: list = field(default_factory=list)  # names of the 21-keypoint categories read

    def info(self) -> dict:
        return {"file": str(self.path), "hands": len(self.records),
                "left_hands_mirrored": int(sum(r.is_left for r in self.records)),
                "skipped": dict(self.skipped), "keypoint_order": self.order, "categories": list(self.categories)}


def find_coco_json(root) -> Path:
    """The COCO JSON file of `root`: the file itself, or a folder's one .json file (of several, the one
    whose name contains 'coco')."""
    root = Path(root).expanduser()
    if root.is_file():
        return root
    if root.is_dir():
        found = sorted(root.glob("*.json"))
        coco = [p for p in found if "coco" in p.name.lower()]
        if len(found) == 1 or len(coco) == 1:   # e.g. shared/realhands/asl: coco_hand.json beside labels.json
            return (coco or found)[0]
        if not found:
            raise ValueError(f"{root}: no .json file in this folder (expected a COCO keypoint file)")
        raise ValueError(f"{root}: {len(found)} .json files ({', '.join(p.name for p in found[:5])}); "
                         "name the COCO keypoint file itself")
    raise ValueError(f"{root}: no such file or folder (expected a COCO keypoint file)")


def _is_left(ann: dict) -> bool:
    for key in ("lefthand", "is_left"):
        if key in ann:
            return bool(ann[key])
    for key in ("hand_type", "handedness"):
        if isinstance(ann.get(key), str):
            return ann[key].strip().lower() == "left"
    return False


def _keypoints(values, where: str, perm) -> tuple:
    """(xy (21, 2), v (21,)) of a flat [x, y, v] x 21 list, in FreiHAND order."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: keypoints are not a list of numbers") from None
    if arr.ndim != 1 or arr.size != 3 * NUM_JOINTS:
        raise ValueError(f"{where}: {arr.size} keypoint numbers, expected 63 ([x, y, v] x 21)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: keypoints hold non-finite values (NaN or inf)")
    arr = arr.reshape(NUM_JOINTS, 3)
    if perm is not None:
        arr = arr[perm]
    return arr[:, :2].copy(), arr[:, 2].copy()


def parse_coco_hand(path, min_keypoints: int = MIN_KEYPOINTS, image_root=None) -> CocoHandFile:
    """The hands of a COCO keypoint file (see the module doc); ValueError naming the file and the problem."""
    path = Path(path).expanduser()
    if int(min_keypoints) < 2:
        raise ValueError(f"min_keypoints must be at least 2 (the crop box needs two points), got {min_keypoints}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected a COCO keypoint JSON)")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: not a COCO file (expected an object with 'images' and 'annotations' lists)")
    folder = Path(image_root).expanduser() if image_root is not None else path.parent
    images = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise ValueError(f"{path}: images[{i}] has no 'id' and 'file_name'")
        size = (int(img["width"]), int(img["height"])) if "width" in img and "height" in img else None
        images[img["id"]] = (folder / str(img["file_name"]), size)
    hand_cats, orders = {}, []
    for cat in data.get("categories") or []:
        names = cat.get("keypoints") if isinstance(cat, dict) else None
        if isinstance(names, list) and len(names) == NUM_JOINTS:
            try:
                perm = freihand_order(names)
            except ValueError as err:
                raise ValueError(f"{path}: category {cat.get('name', cat.get('id'))!r}: {err}") from None
            orders.append("names" if perm is not None else "as stored")
            hand_cats[cat.get("id")] = (perm, str(cat.get("name", cat.get("id"))))
    wholebody = any(isinstance(a, dict) and ("lefthand_kpts" in a or "righthand_kpts" in a)
                    for a in data["annotations"])
    if not hand_cats and not wholebody:
        cats = [(c.get("name"), len(c.get("keypoints") or [])) for c in data.get("categories") or []
                if isinstance(c, dict)]
        raise ValueError(f"{path}: no category with 21 keypoints (categories and keypoint counts: {cats}) "
                         "and no COCO-WholeBody lefthand_kpts / righthand_kpts")
    records, skipped = [], {}

    def add(ann, values, is_left, where, perm, box=None, suffix=""):
        if ann.get("image_id") not in images:
            raise ValueError(f"{where}: image_id {ann.get('image_id')!r} is not in the file's images")
        xy, v = _keypoints(values, where, perm)
        labelled = v > 0
        if labelled.sum() < int(min_keypoints):
            skipped["too_few_keypoints"] = skipped.get("too_few_keypoints", 0) + 1
            return
        image, size = images[ann["image_id"]]
        records.append(HandRecord(image, xy, labelled, v == 2, bool(is_left), ann["image_id"], ann.get("id"),
                                  size, None if box is None else tuple(float(b) for b in box),
                                  f"{ann['image_id']}/{ann.get('id')}{suffix}"))

    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotations[{i}] is not an object")
        where = f"{path}: annotation {ann.get('id', f'#{i}')}"
        if ann.get("category_id") in hand_cats and "keypoints" in ann:
            add(ann, ann["keypoints"], _is_left(ann), where, hand_cats[ann["category_id"]][0])
        for side in ("left", "right"):
            if f"{side}hand_kpts" not in ann:
                continue
            if not ann.get(f"{side}hand_valid", True):
                skipped["not_valid"] = skipped.get("not_valid", 0) + 1
                continue
            add(ann, ann[f"{side}hand_kpts"], side == "left", f"{where} ({side}hand_kpts)", None,
                ann.get(f"{side}hand_box"), f"/{side}")
    missing = sorted({str(r.image) for r in records if not r.image.is_file()})
    if missing:
        raise ValueError(f"{path}: {len(missing)} image file(s) missing, e.g. {missing[0]} (images are read "
                         f"relative to {folder})")
    cats = [name for _, name in hand_cats.values()] + (["COCO-WholeBody hands"] if wholebody else [])
    orders += ["COCO-WholeBody"] if wholebody else []
    return CocoHandFile(path, records, skipped, ", ".join(dict.fromkeys(orders)), cats)


def load_hand(record: HandRecord) -> tuple:
    """(image (H, W, 3) uint8, keypoints (21, 2)) of a record as a right hand: a left one is mirrored,
    image flipped left-right and x -> (W - 1) - x."""
    try:
        with Image.open(record.image) as img:
            image = np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{record.image}: cannot decode the image ({err})") from None
    h, w = image.shape[:2]
    if record.size is not None and tuple(record.size) != (w, h):
        raise ValueError(f"{record.image}: the image is {w}x{h} but its COCO entry says "
                         f"{record.size[0]}x{record.size[1]}")
    kp = record.keypoints.copy()
    if record.is_left:
        image = np.ascontiguousarray(image[:, ::-1])
        kp[:, 0] = (w - 1) - kp[:, 0]
    return image, kp


# ---------------------------------------------------------------- the 2D dataset

class CocoHand2D(CropSet):
    """Crops of a COCO keypoint file's hands with 2D labels, Pose2DSamples' item (see the module doc)."""

    visibility_is_labels = True   # 'visibility' marks labelled keypoints (renders: occlusion, all labelled)

    def __init__(self, source, input_size: int = 128, crop_scale: float = CROP_SCALE,
                 augment: Augment2D | None = None, seed: int = 0, name: str = "",
                 min_keypoints: int = MIN_KEYPOINTS, image_root=None):
        super().__init__(input_size, crop_scale, augment, seed, name)
        self.file = source if isinstance(source, CocoHandFile) else \
            parse_coco_hand(find_coco_json(source), min_keypoints, image_root)
        self.records = self.file.records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        image, kp = load_hand(rec)
        image, A = self.crop(image, kp[rec.labelled], index, (COCO_STREAM,))
        kp_crop = np.where(rec.labelled[:, None], kp @ A[:2, :2].T + A[:2, 2], 0.0)
        return {"image": image, "keypoints_2d": torch.as_tensor(kp_crop, dtype=torch.float32),
                "visibility": torch.from_numpy(rec.labelled.copy()), "key": rec.key, "pose_id": -1, "hdri_id": ""}


def open_coco_sets(sets, input_size: int, crop_scale: float = CROP_SCALE, augment=None, seed: int = 0,
                   min_keypoints: int = MIN_KEYPOINTS) -> dict:
    """{name: CocoHand2D} of `sets`: {name: source}, a source being a path (the JSON file or its folder) or
    {'path': ..., 'image_root': ..., 'min_keypoints': ...}."""
    out = {}
    for name, src in sets.items():
        opts = dict(src) if isinstance(src, dict) else {"path": src}
        unknown = sorted(set(opts) - {"path", "image_root", "min_keypoints"})
        if unknown or "path" not in opts:
            raise ValueError(f"COCO set {name!r}: expected a path or {{path, image_root, min_keypoints}}, "
                             f"got {src!r}")
        out[name] = CocoHand2D(opts["path"], input_size, crop_scale, augment, seed, name,
                               int(opts.get("min_keypoints", min_keypoints)), opts.get("image_root"))
    return out


class Mixed2D(ConcatDataset):
    """Training sets of 2D items as one (renders first, then COCO sets): `set_epoch` reaches every part, and
    every item gains `labelled` (21,) bool, the keypoints the loss may read: all of a render's (its labels
    are exact, occluded or not; its visibility is occlusion), the visibility of a set whose visibility
    marks the labelled keypoints (`visibility_is_labels`, CocoHand2D)."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        part = bisect.bisect_right(self.cumulative_sizes, index)
        local = index - (self.cumulative_sizes[part - 1] if part else 0)
        ds = self.datasets[part]
        item = ds[local]
        labels = getattr(ds, "visibility_is_labels", False)
        item["labelled"] = item["visibility"].clone() if labels else torch.ones(NUM_JOINTS, dtype=torch.bool)
        return item
