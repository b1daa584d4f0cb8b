"""On-disk format of a rendered complement dataset: per-pose tar shards and global tables.

    (the global tables are synth/tables.py's)
    ROOT/dataset.json     format (FORMAT), config, config_hash, versions, counts, hand model, pose and
                          view ids
    ROOT/poses.npz        pose_ids, params (P,48), vertices (P,V,3), keypoints (P,21,3), dense (P,N,3)
    ROOT/views.npz        view_ids, K, R, t (world = model frame -> OpenCV camera), longitude, latitude
    ROOT/mapping.npz      M (V x N) and S (N x V) as CSR parts, faces, dense_faces
    ROOT/hdris.json       {"entries": [...]}: the HDRI catalog the render used
    ROOT/shards/NNNN.tar  one per pose; per sample KEY = f"{pose_id:04d}_{view_id:03d}":
                          KEY.rgb.png | KEY.rgb.jpg, KEY.depth.png (uint16 mm of planar z,
                          0 = background), KEY.mask.png (L: what each pixel shows, MASK_VALUES:
                          0 background, 64 occluder, 128 forearm, 255 hand), KEY.json (annotation)
    ROOT/shards/NNNN.json the shard's manifest: pose_id, samples, members {name: offset, size,
                          sha256}, config_hash, and hdri_ids {key: hdri id} (an index for readers)

A shard is complete only when its manifest exists and agrees with its tar: the
tar is written under a temporary name, renamed, and the manifest is written
last, so a crash at any point leaves either nothing or something `shard_status`
calls 'incomplete'. Same inputs give byte-identical shards (fixed tar headers,
PNGs without metadata), so a re-render can be compared with a checksum.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The format's one version: dataset.json's "format" and versions["format"] derive from it and every config
# hash includes it, so a dataset of an older version is another config (`hands render` refuses to continue
# it; --overwrite replaces it). 2: labelled masks, forearm, occluders, camera
# effects; 3: per-vertex skin detail; 4: camera effects on the linear render. Before 4, dataset.json said
# "hands-complement/1" whatever the version; readers take every version up to this one.
FORMAT_VERSION = 4
FORMAT_NAME = "hands-complement"
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
READABLE_FORMATS = tuple(f"{FORMAT_NAME}/{v}" for v in range(1, FORMAT_VERSION + 1))
SHARDS_DIR = "shards"
PARTIAL_SUFFIX = ".partial"
MAX_DEPTH_M = 65.535           # uint16 millimetres
PNG_COMPRESS_LEVEL = 4          # 256 px RGB: 3.8 ms and +5 % bytes against level 6's 8.2 ms (issue 25)
KEY_RE = re.compile(r"^(\d{4,})_(\d{3,})$")
SAMPLE_MEMBERS = ("depth.png", "mask.png", "json")   # besides one of RGB_MEMBERS
# KEY.mask.png's labels. Hand is 255 so that `mask > 127` (what readers of the older 0/255 masks did)
# still selects the hand alone; the grey levels keep the PNG readable to a person.
MASK_VALUES = {"background": 0, "occluder": 64, "arm": 128, "hand": 255}
RGB_MEMBERS = ("rgb.png", "rgb.jpg")



# ---------------------------------------------------------------- names and small helpers

def shard_name(pose_id: int) -> str:
    return f"{int(pose_id):04d}"


def sample_key(pose_id: int, view_id: int) -> str:
    return f"{int(pose_id):04d}_{int(view_id):03d}"


def parse_key(key: str) -> tuple:
    """'0012_105' -> (12, 105)."""
    m = KEY_RE.match(key)
    if not m:
        raise ValueError(f"sample key {key!r} is not of the form '<pose_id:04d>_<view_id:03d>'")
    return int(m.group(1)), int(m.group(2))


def shard_paths(root, pose_id: int) -> tuple:
    """(tar, manifest) paths of one pose's shard."""
    d = Path(root) / SHARDS_DIR
    return d / f"{shard_name(pose_id)}.tar", d / f"{shard_name(pose_id)}.json"


def config_hash(config) -> str:
    """A short, order-independent hash of a JSON-able config (what manifests record)."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(obj):
    """numpy arrays and scalars -> plain lists and numbers, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _temp_path(final: Path) -> Path:
    # unique per writer, so a retried task never writes into a stale attempt's file
    return final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    try:  # makes the renames durable; not every file system supports it
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file next to `path`, then rename it into place (file and folder
    synced): the former file, or none, until the new one is whole. The project's one such writer for
    tables, manifests and run files (pretrain.checkpoint.atomic_write_text)."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _atomic_write_json(path: Path, obj) -> None:
    data = (json.dumps(_jsonable(obj), indent=1, sort_keys=True) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


# ---------------------------------------------------------------- image encoding

def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes without metadata chunks: the same array always gives the same bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality), optimize=False)
    return buf.getvalue()


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Planar depth in metres (0 or inf = background) -> uint16 millimetres (0 = background)."""
    d = np.asarray(depth_m, dtype=np.float64)
    if np.isnan(d).any():
        raise ValueError(f"depth has {int(np.isnan(d).sum())} NaN pixel(s); use 0 or inf for background")
    if (d < 0).any():
        raise ValueError(f"depth has negative values (min {d.min():.4g} m); planar depth is >= 0")
    fg = (d > 0) & np.isfinite(d)
    if fg.any() and d[fg].max() > MAX_DEPTH_M:
        raise ValueError(f"foreground depth up to {d[fg].max():.4g} m exceeds {MAX_DEPTH_M} m, the range "
                         "of uint16 millimetres; set background pixels to 0 or inf (Blender's Z pass "
                         "writes a huge finite value such as 1e10 for the background)")
    mm = np.zeros(d.shape, dtype=np.uint16)
    mm[fg] = np.clip(np.round(d[fg] * 1000.0), 1, 65535).astype(np.uint16)
    return mm


# ---------------------------------------------------------------- the shard writer

@dataclass
class _Member:
    offset: int
    size: int
    sha256: str


class ShardWriter:
    """Writes one pose's shard; only a clean exit of the with-block makes it complete.

        with ShardWriter(root, pose_id, config_hash) as w:
            w.add(key, rgb=..., depth_m=..., mask=..., annotation={...})

    On an exception inside the block the temporary tar is removed and an
    existing shard of the same pose is left as it was.
    """

    def __init__(self, root, pose_id: int, config_hash: str):
        self.root = Path(root)
        self.pose_id = int(pose_id)
        self.config_hash = str(config_hash)
        self.tar_path, self.manifest_path = shard_paths(self.root, self.pose_id)
        self._tmp: Path | None = None
        self._file = None
        self._tar: tarfile.TarFile | None = None
        self.samples: list = []
        self.members: dict = {}
        self.hdri_ids: dict = {}

    # -- context manager
    def __enter__(self):
        if self._tar is not None:
            raise RuntimeError(f"ShardWriter for pose {self.pose_id} is already open")
        self.samples, self.members, self.hdri_ids = [], {}, {}
        self.tar_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_path(self.tar_path)
        self._file = open(self._tmp, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._abort()
            return False
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise
        return False

    # -- samples
    def add(self, key: str, *, rgb: np.ndarray, depth_m: np.ndarray, mask: np.ndarray,
            annotation: dict, rgb_format: str = "png", jpeg_quality: int = 95) -> None:
        if self._tar is None:
            raise RuntimeError("ShardWriter.add called outside its with-block")
        pose_id, view_id = parse_key(key)
        if pose_id != self.pose_id:
            raise ValueError(f"sample key {key!r} belongs to pose {pose_id}, not to shard {self.pose_id}")
        if key in self.samples:
            raise ValueError(f"sample {key!r} was already added to shard {self.pose_id}")
        for name, expected in (("pose_id", pose_id), ("view_id", view_id)):
            if name in annotation and int(annotation[name]) != expected:
                raise ValueError(f"sample {key!r}: annotation {name}={annotation[name]} disagrees with the key")

        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"sample {key!r}: rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        depth_m = np.asarray(depth_m)
        if depth_m.shape != (h, w):
            raise ValueError(f"sample {key!r}: depth shape {depth_m.shape} != image shape {(h, w)}")
        mask = np.asarray(mask)
        if mask.shape != (h, w):
            raise ValueError(f"sample {key!r}: mask shape {mask.shape} != image shape {(h, w)}")
        if mask.dtype == np.bool_:
            mask = np.where(mask, MASK_VALUES["hand"], MASK_VALUES["background"]).astype(np.uint8)
        else:
            allowed = sorted(set(MASK_VALUES.values()) | {1})
            if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, allowed).all():
                raise ValueError(f"sample {key!r}: mask must be bool (the hand) or labels {allowed} "
                                 f"(MASK_VALUES; 1 = hand), got {mask.dtype} with values {np.unique(mask)[:8]}")
            mask = np.where(mask == 1, MASK_VALUES["hand"], mask).astype(np.uint8)
        if "image_size" in annotation and [int(v) for v in annotation["image_size"]] != [w, h]:
            raise ValueError(f"sample {key!r}: annotation image_size {annotation['image_size']} != [W, H] = {[w, h]}")
        try:
            depth_png = encode_png(encode_depth(depth_m))
        except ValueError as e:
            raise ValueError(f"sample {key!r}: {e}") from None

        if rgb_format == "png":
            rgb_member, rgb_bytes = "rgb.png", encode_png(np.ascontiguousarray(rgb))
        elif rgb_format in ("jpg", "jpeg"):
            rgb_member, rgb_bytes = "rgb.jpg", encode_jpeg(np.ascontiguousarray(rgb), jpeg_quality)
        else:
            raise ValueError(f"sample {key!r}: rgb_format must be 'png' or 'jpg', got {rgb_format!r}")
        try:
            ann_bytes = json.dumps(_jsonable(annotation), sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise ValueError(f"sample {key!r}: annotation is not JSON-serialisable: {e}") from None

        self._add_member(f"{key}.{rgb_member}", rgb_bytes)
        self._add_member(f"{key}.depth.png", depth_png)
        self._add_member(f"{key}.mask.png", encode_png(mask))
        self._add_member(f"{key}.json", ann_bytes)
        self.samples.append(key)
        hdri = annotation.get("hdri")
        if isinstance(hdri, dict) and "id" in hdri:
            self.hdri_ids[key] = str(hdri["id"])

    def _add_member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        start = self._tar.offset
        self._tar.addfile(info, io.BytesIO(data))
        offset = start + tarfile.BLOCKSIZE  # a USTAR header is exactly one block
        blocks = -(-len(data) // tarfile.BLOCKSIZE)
        assert self._tar.offset == offset + blocks * tarfile.BLOCKSIZE, "unexpected tar header size"
        self.members[name] = _Member(offset, len(data), hashlib.sha256(data).hexdigest())

    # -- completion
    def _commit(self) -> None:
        if not self.samples:
            raise ValueError(f"shard {self.pose_id}: no samples were added; nothing to write")
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        # the old manifest goes first: between the two renames the shard reads as incomplete
        self.manifest_path.unlink(missing_ok=True)
        os.replace(self._tmp, self.tar_path)
        self._tmp = None
        _atomic_write_json(self.manifest_path, self.manifest())
        self._tar = self._file = None

    def manifest(self) -> dict:
        return {
            "pose_id": self.pose_id,
            "samples": list(self.samples),
            "members": {n: {"offset": m.offset, "size": m.size, "sha256": m.sha256}
                        for n, m in self.members.items()},
            "config_hash": self.config_hash,
            "hdri_ids": dict(self.hdri_ids),
        }

    def _abort(self) -> None:
        for closer in (self._tar, self._file):
            try:
                if closer is not None:
                    closer.close()
            except Exception:
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        elif not self.manifest_path.exists():
            # failed between the tar's rename and the manifest: no half shard stays behind
            self.tar_path.unlink(missing_ok=True)
        self._tar = self._file = self._tmp = None


# ---------------------------------------------------------------- shard checks

@dataclass
class ShardCheck:
    status: str                     # 'complete' | 'missing' | 'incomplete'
    reason: str = ""
    manifest: dict | None = field(default=None, repr=False)


def sample_members(manifest: dict, key: str) -> dict:
    """{'rgb': name, 'depth': name, 'mask': name, 'json': name} of one sample in a manifest."""
    members = manifest["members"]
    rgb = [f"{key}.{m}" for m in RGB_MEMBERS if f"{key}.{m}" in members]
    if len(rgb) != 1:
        raise KeyError(f"sample {key!r} needs exactly one of {[f'{key}.{m}' for m in RGB_MEMBERS]}")
    out = {"rgb": rgb[0]}
    for m in SAMPLE_MEMBERS:
        if f"{key}.{m}" not in members:
            raise KeyError(f"sample {key!r} has no member {key}.{m}")
        out[m.split(".")[0]] = f"{key}.{m}"
    return out


def check_shard(root, pose_id: int, config_hash: str | None = None, expected_keys=None,
                verify: bool = False) -> ShardCheck:
    """The status of one shard, why, and (when complete) its manifest."""
    tar_path, man_path = shard_paths(root, pose_id)
    partials = sorted(tar_path.parent.glob(f"{shard_name(pose_id)}.*{PARTIAL_SUFFIX}"))
    if not tar_path.exists() and not man_path.exists():
        if partials:
            return ShardCheck("incomplete", f"only temporary files: {[p.name for p in partials]}")
        return ShardCheck("missing", "no tar and no manifest")
    if not tar_path.exists():
        return ShardCheck("incomplete", f"{man_path} exists but {tar_path} does not")
    if not man_path.exists():
        return ShardCheck("incomplete", f"{tar_path} has no manifest {man_path.name}")
    try:
        manifest = json.loads(man_path.read_text())
        reason = _manifest_problem(manifest, pose_id)
    except (OSError, ValueError) as e:
        reason = f"cannot read: {e}"
    if reason:
        return ShardCheck("incomplete", f"{man_path}: {reason}")
    if config_hash is not None and manifest["config_hash"] != config_hash:
        return ShardCheck("incomplete", f"{man_path}: config hash {manifest['config_hash']!r} != {config_hash!r}")
    if expected_keys is not None:
        missing = sorted(set(expected_keys) - set(manifest["samples"]))
        if missing:
            return ShardCheck("incomplete", f"{man_path}: {len(missing)} expected sample(s) missing, "
                                            f"e.g. {missing[:3]}")
    reason = _tar_problem(tar_path, manifest["members"], verify)
    if reason:
        return ShardCheck("incomplete", f"{tar_path}: {reason}")
    return ShardCheck("complete", "", manifest)


def shard_status(root, pose_id: int, config_hash: str | None = None, expected_keys=None,
                 verify: bool = False) -> str:
    """'complete', 'missing' or 'incomplete' (anything a re-render must redo).

    Complete: tar and manifest exist, the manifest parses, every member sits in
    the tar at its recorded offset with its recorded size (and hash, with
    verify=True), the config hash matches when given, and every expected key is
    present. A leftover temporary file beside a complete shard does not make it
    incomplete; a temporary file alone does.
    """
    return check_shard(root, pose_id, config_hash, expected_keys, verify).status


def _manifest_problem(manifest, pose_id: int) -> str:
    if not isinstance(manifest, dict):
        return "not a JSON object"
    for name, kind in (("pose_id", int), ("samples", list), ("members", dict), ("config_hash", str)):
        if not isinstance(manifest.get(name), kind):
            return f"field {name!r} missing or not a {kind.__name__}"
    if manifest["pose_id"] != int(pose_id):
        return f"pose_id {manifest['pose_id']} != {pose_id}"
    if len(set(manifest["samples"])) != len(manifest["samples"]):
        return "duplicate sample keys"
    for key in manifest["samples"]:
        try:
            if parse_key(key)[0] != int(pose_id):
                return f"sample {key!r} is not of pose {pose_id}"
            sample_members(manifest, key)
        except (ValueError, KeyError, TypeError) as e:
            return str(e)
    for name, m in manifest["members"].items():
        if not (isinstance(m, dict) and isinstance(m.get("offset"), int) and isinstance(m.get("size"), int)
                and isinstance(m.get("sha256"), str)):
            return f"member {name!r} lacks an integer offset/size or a sha256"
    return ""


def _tar_problem(tar_path: Path, members: dict, verify: bool) -> str:
    try:
        size = tar_path.stat().st_size
        end = 0
        with open(tar_path, "rb") as f:
            for name, m in members.items():
                off, n = m["offset"], m["size"]
                if off < tarfile.BLOCKSIZE or off % tarfile.BLOCKSIZE or off + n > size:
                    return f"member {name} at {off}+{n} lies outside the file ({size} bytes)"
                f.seek(off - tarfile.BLOCKSIZE)
                try:
                    info = tarfile.TarInfo.frombuf(f.read(tarfile.BLOCKSIZE), tarfile.ENCODING,
                                                   "surrogateescape")
                except tarfile.HeaderError as e:
                    return f"no valid tar header before member {name} ({e})"
                if info.name != name or info.size != n:
                    return f"header at {off - tarfile.BLOCKSIZE} is {info.name!r} ({info.size} bytes), " \
                           f"manifest says {name!r} ({n} bytes)"
                if verify and hashlib.sha256(f.read(n)).hexdigest() != m["sha256"]:
                    return f"member {name}: sha256 mismatch"
                end = max(end, off + -(-n // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
        if size < end + 2 * tarfile.BLOCKSIZE:
            return f"truncated: {size} bytes, the end-of-archive blocks need {end + 2 * tarfile.BLOCKSIZE}"
    except OSError as e:
        return f"cannot read: {e}"
    return ""


def clean_partial(root, min_age_s: float = 0.0) -> list:
    """Remove temporary files of interrupted writes (older than min_age_s); returns their paths.

    Run it when no writer is active on ROOT (or with a min_age_s longer than a
    shard takes), since it would remove a running writer's temporary file.
    """
    root = Path(root)
    now = time.time()
    removed = []
    for d in (root, root / SHARDS_DIR):
        if not d.is_dir():
            continue
        for p in sorted(d.glob(f"*{PARTIAL_SUFFIX}")):
            try:
                if now - p.stat().st_mtime >= min_age_s:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:
                pass
    return removed
