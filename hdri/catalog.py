"""The catalog of environments the renderer may use, each with a stable id and a split.

Three sources, in this order:

- blender: the 8 world HDRIs shipped inside the bpy wheel (studio-light worlds,
  CC0, from Poly Haven), found through bpy.utils.system_resource, never a
  hard-coded path. Ids "blender/<name>", e.g. "blender/forest".
- folder: every .hdr / .exr under folders the user names (recursive, sorted).
  Ids "file/<stem>-<8 hex>", the hex being sha1 of the file size and its
  first 64 KiB: the same file keeps its id wherever it lives, an edited file
  gets a new one, and reading 64 KiB is cheap even for 100 MB maps.
- sky: Blender's procedural sky (Hosek-Wilkie) on the grid SKY_GRID; ids
  "sky/elev<deg>-turb<t>", e.g. "sky/elev30-turb3".

Split: "heldout" environments are never used for training shards. Explicit
ids win; otherwise an entry is held out when sha1(id), read as a number in
[0, 1), is below heldout_fraction, so adding files never moves another entry
between splits. With two or more entries at least one is held out and at
least one is used for training; a single entry is used for training.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .validate import EXTENSIONS, HdriError, validate_file

SOURCES = ("blender", "folder", "sky")
SPLITS = ("train", "heldout")
BUNDLED_NAMES = ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset")
ID_BYTES = 64 * 1024

# Sun elevations (degrees above the horizon) and turbidities (2 arctic-clear ..
# 8 hazy) of the procedural skies. Sky i uses elevation SKY_ELEVATIONS[i % 6]
# and turbidity SKY_TURBIDITIES[(i % 6 + i // 6) % 4]: every block of 6 skies
# covers all elevations and cycles the turbidities, and the 24 pairs are distinct.
SKY_ELEVATIONS = (5, 15, 30, 45, 60, 75)
SKY_TURBIDITIES = (2, 3, 5, 8)
MAX_SKIES = len(SKY_ELEVATIONS) * len(SKY_TURBIDITIES)


@dataclass(frozen=True)
class HdriEntry:
    id: str
    source: str  # 'blender' | 'folder' | 'sky'
    path: str | None  # the file, for 'blender' and 'folder'
    sky: tuple | None  # (sun_elevation_deg, turbidity), for 'sky'
    split: str = "train"  # 'train' | 'heldout'

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sky"] = list(self.sky) if self.sky is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HdriEntry":
        try:
            entry = cls(id=str(d["id"]), source=d["source"], path=d.get("path"),
                        sky=tuple(float(v) for v in d["sky"]) if d.get("sky") is not None else None,
                        split=d.get("split", "train"))
        except (KeyError, TypeError, ValueError) as err:
            raise HdriError(f"bad catalog entry {d!r}: {err}") from None
        if entry.source not in SOURCES:
            raise HdriError(f"catalog entry {entry.id}: source {entry.source!r} is not one of {SOURCES}")
        if entry.split not in SPLITS:
            raise HdriError(f"catalog entry {entry.id}: split {entry.split!r} is not one of {SPLITS}")
        if entry.source == "sky" and (entry.sky is None or len(entry.sky) != 2):
            raise HdriError(f"catalog entry {entry.id}: a sky needs 'sky': [elevation_deg, turbidity]")
        if entry.source != "sky" and entry.path is None:
            raise HdriError(f"catalog entry {entry.id}: a {entry.source} entry needs 'path'")
        return entry


def bundled_dir() -> Path:
    """The folder of world HDRIs inside the installed bpy."""
    try:
        import bpy
    except ImportError as err:
        raise HdriError(f"the bundled HDRIs come with bpy, which does not import ({err}); "
                        "install the 'render' extra or use --no-bundled") from None
    found = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
    if not found or not Path(found).is_dir():
        raise HdriError("bpy has no 'studiolights/world' data folder; use --no-bundled and --folder")
    return Path(found)


def resolve_path(entry: HdriEntry) -> str | None:
    """The entry's file on this machine: a bundled map is looked up in this bpy (a catalog
    written on another machine holds that machine's path)."""
    if entry.source == "blender" and (entry.path is None or not Path(entry.path).is_file()):
        return str(bundled_dir() / f"{entry.id.split('/', 1)[1]}.exr")
    return entry.path


def content_digest(path) -> str:
    """First 8 hex of sha1(file size, first 64 KiB): the content part of a file id."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(ID_BYTES)
    return hashlib.sha1(f"{path.stat().st_size}\n".encode() + head).hexdigest()[:8]


def file_id(path) -> str:
    """'file/<stem>-<content_digest>'."""
    path = Path(path)
    digest = content_digest(path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)  # ids are typed on command lines
    return f"file/{stem}-{digest}"


def sky_grid(n: int) -> list[tuple[int, int]]:
    """The first n (sun elevation degrees, turbidity) pairs of the documented grid."""
    if not 0 <= n <= MAX_SKIES:
        raise HdriError(f"skies={n}: choose 0..{MAX_SKIES} (the grid is {len(SKY_ELEVATIONS)} sun elevations "
                        f"x {len(SKY_TURBIDITIES)} turbidities)")
    k = len(SKY_ELEVATIONS)
    return [(SKY_ELEVATIONS[i % k], SKY_TURBIDITIES[(i % k + i // k) % len(SKY_TURBIDITIES)]) for i in range(n)]


def sky_id(elevation, turbidity) -> str:
    return f"sky/elev{elevation:g}-turb{turbidity:g}"


def _hash_unit(entry_id: str) -> float:
    return int(hashlib.sha1(entry_id.encode()).hexdigest()[:16], 16) / 2.0 ** 64


def assign_splits(ids: list[str], heldout: list[str] | None = None, heldout_fraction: float = 0.25) -> dict:
    """id -> 'train' | 'heldout' (see the module docstring)."""
    if heldout is not None:
        unknown = sorted(set(heldout) - set(ids))
        if unknown:
            raise HdriError(f"held-out ids {unknown} are not in the catalog (ids: {', '.join(ids)})")
        chosen = set(heldout)
        if ids and chosen >= set(ids):
            raise HdriError(f"held-out ids {sorted(chosen)} leave no environment for training")
    else:
        if not 0.0 <= heldout_fraction <= 1.0:
            raise HdriError(f"heldout_fraction={heldout_fraction} is not in [0, 1]")
        u = {i: _hash_unit(i) for i in ids}
        chosen = {i for i in ids if u[i] < heldout_fraction}
        if len(ids) == 1:
            chosen = set()  # a single environment is needed for training
        elif len(ids) >= 2:
            if not chosen:
                chosen = {min(ids, key=u.get)}
            if chosen >= set(ids):
                chosen -= {max(ids, key=u.get)}
    return {i: ("heldout" if i in chosen else "train") for i in ids}


def _skip(path, reason: str, strict: bool, report) -> None:
    if strict:
        raise HdriError(f"{path}: {reason}")
    report(f"hdri: skipped {path}: {reason}")


def _scan_folder(folder: Path, strict: bool, report) -> list[Path]:
    if not folder.is_dir():
        raise HdriError(f"HDRI folder {folder} does not exist or is not a folder")
    files, ignored = [], []
    for p in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        if p.is_file():
            (files if p.suffix.lower() in EXTENSIONS else ignored).append(p)
    if ignored:
        report(f"hdri: {folder}: ignored {len(ignored)} file{'s' * (len(ignored) != 1)} that are not .hdr/.exr "
               f"(e.g. {ignored[0].relative_to(folder)})")
    if not files:
        _skip(folder, "no .hdr or .exr files in this folder", strict, report)
    return files


def build_catalog(folders=(), skies: int = 6, bundled: bool = True, strict: bool = False,
                  heldout: list[str] | None = None, heldout_fraction: float = 0.25,
                  report=print) -> list[HdriEntry]:
    """Every usable environment with its split. Unusable files are reported by name with the
    reason (`report`) and skipped, or raise HdriError when `strict`."""
    found: list[tuple[str, str, str | None, tuple | None]] = []  # (id, source, path, sky)
    seen: dict[str, tuple[str, str]] = {}  # content digest -> (path, id) of its first file

    def add_file(entry_id: str, source: str, path: Path) -> None:
        reason = validate_file(path)
        if reason is not None:
            _skip(path, reason, strict, report)
            return
        # one map under two names would be sampled twice, and could land in both splits
        digest = content_digest(path)
        if digest in seen:
            report(f"hdri: {path} has the same content as {seen[digest][0]} ({seen[digest][1]}); listed once")
            return
        seen[digest] = (str(path), entry_id)
        found.append((entry_id, source, str(path), None))

    if bundled:
        root = bundled_dir()
        maps = sorted(root.glob("*.exr"))
        missing = sorted(set(BUNDLED_NAMES) - {p.stem for p in maps})
        if missing:
            report(f"hdri: {root}: bundled worlds {missing} are missing from this bpy")
        for p in maps:
            add_file(f"blender/{p.stem}", "blender", p)
    for folder in folders:
        for p in _scan_folder(Path(folder), strict, report):
            try:
                entry_id = file_id(p)
            except OSError as err:
                _skip(p, f"cannot read: {err.strerror or err}", strict, report)
                continue
            add_file(entry_id, "folder", p)
    for elev, turb in sky_grid(skies):
        found.append((sky_id(elev, turb), "sky", None, (float(elev), float(turb))))

    if not found:
        raise HdriError("the HDRI catalog is empty: enable the bundled maps, add --folder or --skies")
    splits = assign_splits([f[0] for f in found], heldout, heldout_fraction)
    return [HdriEntry(i, source, path, sky, splits[i]) for i, source, path, sky in found]


def select(entries: list[HdriEntry], split: str) -> list[HdriEntry]:
    """The entries of one split ('train' or 'heldout')."""
    if split not in SPLITS:
        raise HdriError(f"split {split!r} is not one of {SPLITS}")
    return [e for e in entries if e.split == split]


def save_catalog(path, entries: list[HdriEntry]) -> Path:
    path = Path(path)
    path.write_text(json.dumps([e.to_dict() for e in entries], indent=1))
    return path


def load_catalog(path) -> list[HdriEntry]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HdriError(f"{path}: not a readable catalog: {err}") from None
    if not isinstance(data, list):
        raise HdriError(f"{path}: a catalog is a JSON list of entries")
    return [HdriEntry.from_dict(d) for d in data]
