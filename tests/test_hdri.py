"""HDR environments: the Radiance reader, validation, the catalog and its split, the Blender
world, and the `hands hdri` commands."""
import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hdri.catalog import (BUNDLED_NAMES, MAX_SKIES, HdriEntry, assign_splits, build_catalog, file_id,
                          load_catalog, save_catalog, sky_grid)
from hdri.rgbe import decode_rgbe, encode_rgbe, read_rgbe, write_rgbe
from hdri.validate import HdriError, read_environment, validate_file


def _env(h=16, w=32, seed=0):
    """A small equirectangular test map with flat areas (runs) and noise (literals)."""
    rng = np.random.default_rng(seed)
    img = np.exp(rng.normal(0, 2, (h, w, 3))).astype(np.float32)
    img[: h // 4] = (0.5, 1.0, 2.0)  # a flat band: RLE runs
    img[h // 2, w // 2] = (1000.0, 1e-3, 0.0)  # a hot pixel and a zero channel
    return img


def _write_exr(path, img, compression="ZIP_COMPRESSION"):
    import OpenEXR

    header = {"compression": getattr(OpenEXR, compression), "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": np.ascontiguousarray(img, np.float32)}) as f:
        f.write(str(path))
    return path


# ---------------------------------------------------------------- Radiance RGBE

@pytest.mark.parametrize("rle", [True, False])
def test_rgbe_reads_back_what_the_writer_wrote(tmp_path, rle):
    img = _env()
    path = write_rgbe(tmp_path / "a.hdr", img, rle=rle)
    back = read_rgbe(path)
    assert back.shape == img.shape and back.dtype == np.float32
    # RGBE keeps 8 bits of mantissa under the largest channel's exponent: error < max / 256
    assert np.all(np.abs(back - img) <= img.max(axis=-1, keepdims=True) / 256 + 1e-30)
    # (0.5, 1, 2): 2 = 0.5 * 2**2 -> exponent byte 130, mantissas 0.5, 1, 2 * 64 = 32, 64, 128;
    # decoded as (m + 0.5) * 2**(130 - 136)
    assert back[0, 0].tolist() == [32.5 / 64, 64.5 / 64, 128.5 / 64]


def test_rle_and_flat_encodings_decode_identically_and_rle_is_smaller(tmp_path):
    img = _env(32, 64)
    rle, flat = encode_rgbe(img, rle=True), encode_rgbe(img, rle=False)
    assert rle[rle.index(b"\n-Y") + 1:].split(b"\n", 1)[1][:4] == bytes([2, 2, 0, 64])  # new-style RLE marker
    assert np.array_equal(decode_rgbe(rle), decode_rgbe(flat))
    assert len(rle) < len(flat)


def test_rgbe_hand_assembled_file(tmp_path):
    """Bytes written by hand, decoded with Radiance's convention (colr_color, as Blender's
    loader): value = (mantissa + 0.5) * 2**(exponent - 136); exponent 0 is black."""
    header = b"#?RADIANCE\n# made by hand\nFORMAT=32-bit_rle_rgbe\nEXPOSURE=1.0\n\n-Y 2 +X 8\n"
    # scanline 0, new-style RLE: R one run of 8 x 128; G literals 0..7; B run of 8 x 0; E run of 8 x 129
    line0 = bytes([2, 2, 0, 8]) + bytes([128 + 8, 128]) + bytes([8, 0, 1, 2, 3, 4, 5, 6, 7]) \
        + bytes([128 + 8, 0]) + bytes([128 + 8, 129])
    # scanline 1, flat: 8 pixels of R G B E
    pixels = [(255, 0, 0, 136), (0, 0, 0, 0), (64, 32, 16, 120), (128, 128, 128, 128),
              (1, 2, 3, 140), (200, 100, 50, 129), (10, 20, 30, 0), (0, 255, 0, 137)]
    line1 = b"".join(bytes(p) for p in pixels)
    path = tmp_path / "hand.hdr"
    path.write_bytes(header + line0 + line1)
    img = read_rgbe(path)
    assert img.shape == (2, 8, 3)
    # row 0: e = 129 -> 2**-7; R = 128.5 / 128, G = (k + 0.5) / 128, B = 0.5 / 128
    for k in range(8):
        assert img[0, k].tolist() == [128.5 / 128, (k + 0.5) / 128, 0.5 / 128]
    expected = [
        [255.5, 0.5, 0.5],  # e = 136 -> 2**0
        [0.0, 0.0, 0.0],  # e = 0 -> black
        [64.5 / 65536, 32.5 / 65536, 16.5 / 65536],  # e = 120 -> 2**-16
        [128.5 / 256, 128.5 / 256, 128.5 / 256],  # e = 128 -> 2**-8
        [1.5 * 16, 2.5 * 16, 3.5 * 16],  # e = 140 -> 2**4
        [200.5 / 128, 100.5 / 128, 50.5 / 128],  # e = 129 -> 2**-7
        [0.0, 0.0, 0.0],  # e = 0 -> black whatever the mantissas
        [0.5 * 2, 255.5 * 2, 0.5 * 2],  # e = 137 -> 2**1
    ]
    np.testing.assert_array_equal(img[1], np.float32(expected))
    # the other magic and a bottom-up file (+Y) are read too
    path.write_bytes(header.replace(b"#?RADIANCE", b"#?RGBE").replace(b"-Y 2", b"+Y 2") + line0 + line1)
    np.testing.assert_array_equal(read_rgbe(path), img[::-1])


@pytest.mark.parametrize("rle", [True, False])
def test_truncated_hdr_is_reported_with_a_reason(tmp_path, rle):
    data = encode_rgbe(_env(), rle=rle)
    header_end = data.index(b"\n-Y") + 1
    for cut in (len(data) - 1, len(data) // 2, header_end + 6, 12):
        path = tmp_path / f"cut{cut}.hdr"
        path.write_bytes(data[:cut])
        reason = validate_file(path)
        assert reason is not None and "truncated" in reason, (cut, reason)
        with pytest.raises(HdriError, match=str(path.name)):
            read_environment(path)


def test_corrupt_rle_and_unsupported_format_are_reported(tmp_path):
    data = bytearray(encode_rgbe(_env(), rle=True))
    start = data.index(b"\n-Y") + 1
    start = data.index(b"\n", start) + 1
    data[start + 4] = 128 + 100  # the first run of scanline 0 now overflows its 32 pixels
    (tmp_path / "corrupt.hdr").write_bytes(bytes(data))
    assert "corrupt RLE" in validate_file(tmp_path / "corrupt.hdr")
    xyze = encode_rgbe(_env()).replace(b"32-bit_rle_rgbe", b"32-bit_rle_xyze")
    (tmp_path / "xyze.hdr").write_bytes(xyze)
    assert "FORMAT=32-bit_rle_xyze" in validate_file(tmp_path / "xyze.hdr")


def test_non_hdr_file_renamed_hdr(tmp_path):
    png = tmp_path / "photo.hdr"
    Image.new("RGB", (64, 32), (200, 100, 50)).save(png, format="PNG")
    reason = validate_file(png)
    assert reason is not None and "not a Radiance picture" in reason
    text = tmp_path / "notes.exr"
    text.write_text("not an image at all\n" * 20)
    assert "not an OpenEXR file" in validate_file(text)
    assert "cannot read" in validate_file(tmp_path / "missing.hdr")


def test_wrong_aspect(tmp_path):
    write_rgbe(tmp_path / "square.hdr", _env(32, 32))
    reason = validate_file(tmp_path / "square.hdr")
    assert reason is not None and "wrong aspect" in reason and "32x32" in reason
    assert validate_file(write_rgbe(tmp_path / "near.hdr", _env(100, 199))) is None  # 1.99:1, within 2 %
    assert "wrong aspect" in validate_file(write_rgbe(tmp_path / "far.hdr", _env(100, 190)))  # 1.9:1
    assert "wrong aspect" in validate_file(_write_exr(tmp_path / "wide.exr", _env(16, 64)))


# ---------------------------------------------------------------- OpenEXR

def test_exr_reads_back_and_truncation_is_reported(tmp_path):
    img = _env(32, 64)
    path = _write_exr(tmp_path / "ok.exr", img)
    assert validate_file(path) is None
    np.testing.assert_array_equal(read_environment(path), img)
    data = path.read_bytes()
    for cut in (len(data) - 10, len(data) // 2, 100):
        bad = tmp_path / f"cut{cut}.exr"
        bad.write_bytes(data[:cut])
        reason = validate_file(bad)
        assert reason is not None and "truncated" in reason, (cut, reason)


def test_exr_with_nan_is_reported(tmp_path):
    img = _env(16, 32)
    img[3, 4, 1] = np.nan
    assert "NaN" in validate_file(_write_exr(tmp_path / "nan.exr", img))


# ---------------------------------------------------------------- catalog

@pytest.fixture()
def folder(tmp_path):
    """A user folder: two good maps (one nested), a truncated .exr, a PNG renamed .hdr,
    a wrong-aspect map and a text file."""
    root = tmp_path / "hdris"
    (root / "sub").mkdir(parents=True)
    write_rgbe(root / "alpha.hdr", _env(16, 32, seed=1))
    _write_exr(root / "sub" / "beta.exr", _env(16, 32, seed=2))
    data = _write_exr(root / "cut.exr", _env(16, 32, seed=3)).read_bytes()
    (root / "cut.exr").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (32, 16)).save(root / "fake.hdr", format="PNG")
    write_rgbe(root / "square.hdr", _env(16, 16, seed=4))
    (root / "README.txt").write_text("maps from Poly Haven\n")
    return root


def test_nonstrict_reports_every_bad_file_by_name_and_keeps_the_good(folder):
    lines = []
    entries = build_catalog([folder], skies=0, bundled=False, report=lines.append)
    assert [e.path for e in entries] == [str(folder / "alpha.hdr"), str(folder / "sub" / "beta.exr")]
    for name, why in (("cut.exr", "truncated"), ("fake.hdr", "not a Radiance picture"),
                      ("square.hdr", "wrong aspect")):
        hits = [ln for ln in lines if str(folder / name) in ln]
        assert len(hits) == 1 and why in hits[0], (name, lines)
    assert any("README.txt" in ln and "ignored 1 file " in ln for ln in lines)
    # nothing silently dropped: every candidate file is either in the catalog or reported
    assert len(entries) + sum("skipped" in ln for ln in lines) == 5


def test_strict_stops_at_the_first_bad_file_naming_it(folder):
    with pytest.raises(HdriError) as err:
        build_catalog([folder], skies=0, bundled=False, strict=True, report=lambda line: None)
    assert str(folder / "cut.exr") in str(err.value) and "truncated" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(HdriError, match="does not exist"):
        build_catalog([tmp_path / "nope"], skies=1, bundled=False)
    (tmp_path / "empty").mkdir()
    lines = []
    assert len(build_catalog([tmp_path / "empty"], skies=1, bundled=False, report=lines.append)) == 1
    assert "no .hdr or .exr" in lines[0] and str(tmp_path / "empty") in lines[0]
    with pytest.raises(HdriError, match="empty"):
        build_catalog(skies=0, bundled=False)


def test_file_ids_are_stable_and_follow_content(tmp_path):
    (tmp_path / "one").mkdir()
    a = write_rgbe(tmp_path / "one" / "map.hdr", _env())
    copy = tmp_path / "two" / "map.hdr"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    first = file_id(a)
    assert first.startswith("file/map-") and len(first.split("-")[-1]) == 8
    assert file_id(a) == first == file_id(copy)  # same content, same id, wherever it is
    ids = [e.id for e in build_catalog([tmp_path / "one"], skies=0, bundled=False)]
    assert ids == [first] == [e.id for e in build_catalog([tmp_path / "one"], skies=0, bundled=False)]
    changed = _env()
    changed[5, 5] = (7.0, 7.0, 7.0)
    write_rgbe(copy, changed)
    assert file_id(copy) != first
    # the same map twice is listed once, and the duplicate is reported
    shutil.copy(a, tmp_path / "one" / "again.hdr")
    lines = []
    entries = build_catalog([tmp_path / "one"], skies=0, bundled=False, report=lines.append)
    assert len(entries) == 1 and any("same content" in ln and "again.hdr" in ln for ln in lines)


@pytest.mark.blender
def test_the_eight_bundled_worlds_are_found_through_bpy():
    import bpy

    root = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
    entries = build_catalog(skies=0)
    assert [e.id for e in entries] == [f"blender/{n}" for n in BUNDLED_NAMES]
    assert all(e.source == "blender" and e.path.startswith(root) and validate_file(e.path) is None
               for e in entries)


def test_sky_grid():
    grid = sky_grid(MAX_SKIES)
    assert len(set(grid)) == MAX_SKIES == 24
    assert sky_grid(6) == grid[:6] and len({e for e, _ in sky_grid(6)}) == 6  # first block: every elevation
    assert all(0 < e < 90 and 1 <= t <= 10 for e, t in grid)
    entries = build_catalog(skies=3, bundled=False)
    assert [e.id for e in entries] == ["sky/elev5-turb2", "sky/elev15-turb3", "sky/elev30-turb5"]
    assert entries[2].sky == (30.0, 5.0) and entries[2].path is None
    with pytest.raises(HdriError, match="skies=25"):
        sky_grid(25)


@pytest.mark.blender
def test_heldout_split_is_deterministic_and_never_empty():
    a = build_catalog(skies=24)
    b = build_catalog(skies=24)
    assert [(e.id, e.split) for e in a] == [(e.id, e.split) for e in b]
    held = {e.id for e in a if e.split == "heldout"}
    assert 0 < len(held) < len(a)
    # hash-based: a smaller catalog keeps the split of every entry it shares
    small = build_catalog(skies=24, bundled=False)
    assert {e.id for e in small if e.split == "heldout"} == held & {e.id for e in small}
    # at least one of each whenever there are two entries, even with fraction 0 or 1
    for frac in (0.0, 1.0):
        splits = assign_splits(["sky/a", "sky/b"], heldout_fraction=frac)
        assert sorted(splits.values()) == ["heldout", "train"]
    assert assign_splits(["only"], heldout_fraction=1.0) == {"only": "train"}  # nothing else to train on


@pytest.mark.blender
def test_explicit_heldout_ids_win():
    entries = build_catalog(skies=2, heldout=["blender/forest", "sky/elev15-turb3"])
    assert {e.id for e in entries if e.split == "heldout"} == {"blender/forest", "sky/elev15-turb3"}
    assert all(e.split == "train" for e in build_catalog(skies=2, heldout=[]))
    with pytest.raises(HdriError, match="blender/jungle"):
        build_catalog(skies=0, heldout=["blender/jungle"])
    with pytest.raises(HdriError, match="no environment for training"):
        build_catalog(skies=2, bundled=False, heldout=["sky/elev5-turb2", "sky/elev15-turb3"])


@pytest.mark.blender
def test_entries_round_trip_through_json(tmp_path):
    entries = build_catalog(skies=2)
    path = save_catalog(tmp_path / "catalog.json", entries)
    assert load_catalog(path) == entries
    assert HdriEntry.from_dict(json.loads(json.dumps(entries[-1].to_dict()))) == entries[-1]
    with pytest.raises(HdriError, match="split"):
        HdriEntry.from_dict({**entries[0].to_dict(), "split": "test"})


# ---------------------------------------------------------------- Blender world

@pytest.fixture(scope="module")
def view_scene():
    """A 32x32 Cycles scene of its own: a perspective camera looking at empty space."""
    import bpy

    scene = bpy.data.scenes.new("hdri_test_view")
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.cycles.seed = 0
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.render.resolution_percentage = 100
    cam = bpy.data.objects.new("hdri_test_cam", bpy.data.cameras.new("hdri_test_cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.rotation_euler = (math.radians(80), 0.0, math.radians(30))  # towards the horizon
    yield scene
    bpy.data.scenes.remove(scene)


@pytest.mark.blender
def test_apply_world_changes_the_rendered_background(view_scene):
    import bpy

    from hdri.blender_world import apply_world
    from hdri.sheet import render_still

    entries = {e.id: e for e in build_catalog(skies=2)}
    forest, night = entries["blender/forest"], entries["blender/night"]
    apply_world(view_scene, forest, 0.0, 1.0)
    tree = view_scene.world.node_tree
    nodes = sorted(n.name for n in tree.nodes)
    a = render_still(view_scene)
    apply_world(view_scene, night, 0.0, 1.0)
    b = render_still(view_scene)
    n_images = len(bpy.data.images)
    apply_world(view_scene, forest, 0.0, 1.0)
    a2 = render_still(view_scene)
    assert a.shape == (32, 32, 3) and a.mean() > 0.02
    assert np.abs(a - b).mean() > 0.1 * a.mean()  # another environment, another background
    np.testing.assert_allclose(a2, a, atol=1e-6)  # the same one again renders the same
    assert len(bpy.data.images) == n_images  # switching back did not load the file again
    assert view_scene.world.node_tree == tree and sorted(n.name for n in tree.nodes) == nodes
    apply_world(view_scene, forest, 90.0, 1.0)
    assert np.abs(render_still(view_scene) - a).mean() > 0.1 * a.mean()  # rotation turns the background
    apply_world(view_scene, forest, 0.0, 2.0)
    np.testing.assert_allclose(render_still(view_scene), 2 * a, rtol=1e-3, atol=1e-5)  # strength scales
    sky1, sky2 = entries["sky/elev5-turb2"], entries["sky/elev15-turb3"]
    apply_world(view_scene, sky1, 0.0, 1.0)
    s1 = render_still(view_scene)
    apply_world(view_scene, sky2, 0.0, 1.0)
    s2 = render_still(view_scene)
    assert s1.mean() > 0 and np.abs(s1 - s2).mean() > 0.05 * s1.mean()
    assert view_scene.world.cycles.sampling_method == "MANUAL"
    assert view_scene.world.cycles.sample_map_resolution == 256


@pytest.mark.blender
def test_image_cache_is_bounded():
    import bpy

    from hdri.blender_world import apply_world

    entries = {e.id: e for e in build_catalog(skies=0)}
    scene = bpy.data.scenes.new("hdri_test_cache")
    try:
        loaded = lambda: {bpy.path.abspath(i.filepath) for i in bpy.data.images}  # noqa: E731
        for name in ("city", "interior", "studio"):
            apply_world(scene, entries[f"blender/{name}"], max_cached_images=2)
        assert entries["blender/city"].path not in loaded()  # the oldest unused map was removed
        assert {entries[f"blender/{n}"].path for n in ("interior", "studio")} <= loaded()
        apply_world(scene, entries["blender/city"], max_cached_images=2)  # and comes back when asked for
        assert scene.world.node_tree.nodes["hdri_env"].image.filepath == entries["blender/city"].path
    finally:
        bpy.data.scenes.remove(scene)


@pytest.mark.blender
def test_panorama_of_a_known_map_has_its_layout_and_rotation_shifts_it(tmp_path):
    """Rendered through the equirectangular camera, a map comes back as itself; rotating by
    90 degrees shifts it left by a quarter of the width."""
    from hdri.sheet import PanoramaRenderer

    h, w = 32, 64
    img = np.full((h, w, 3), 0.2, np.float32)
    img[6:10, 12:16] = (4.0, 0.0, 0.0)  # a red patch up and left
    img[20:24, 44:48] = (0.0, 4.0, 0.0)  # a green patch down and right
    entry = HdriEntry("file/patches", "folder", str(write_rgbe(tmp_path / "patches.hdr", img)), None, "train")
    pano = PanoramaRenderer(w, h, samples=4)
    expected = read_rgbe(entry.path)
    np.testing.assert_allclose(pano.render(entry), expected, atol=0.05)
    np.testing.assert_allclose(pano.render(entry, rotation_deg=90.0), np.roll(expected, -w // 4, axis=1), atol=0.05)


# ---------------------------------------------------------------- CLI

def _hdri_cli(argv):
    from hands.cli_hdri import add_parser

    parser = argparse.ArgumentParser(prog="hands")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.fn(args)


def test_cli_parser_imports_neither_bpy_nor_numpy():
    code = ("import argparse, sys\nfrom hands.cli_hdri import add_parser\n"
            "p = argparse.ArgumentParser(); add_parser(p.add_subparsers(dest='c'))\n"
            "p.parse_args(['hdri', 'list', '--skies', '2'])\n"
            "assert 'bpy' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.blender
def test_cli_list_prints_the_table(folder, capsys):
    _hdri_cli(["hdri", "list", "--folder", str(folder), "--skies", "1", "--heldout", "blender/city"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["id", "source", "split", "resolution", "file"]
    city = next(ln for ln in lines if ln.startswith("blender/city"))
    assert city.split()[:4] == ["blender/city", "blender", "heldout", "1024x512"]
    alpha = next(ln for ln in lines if ln.startswith("file/alpha-"))
    assert "32x16" in alpha and alpha.endswith(str(folder / "alpha.hdr"))
    assert any(ln.startswith("sky/elev5-turb2") and "train" in ln for ln in lines)
    assert "11 environments" in lines[-1]
    assert str(folder / "cut.exr") in err and "truncated" in err  # skipped files are still named


@pytest.mark.blender
def test_cli_sheet_writes_one_thumbnail_per_entry(folder, tmp_path, capsys):
    from hdri.sheet import LABEL_H, THUMB

    out = tmp_path / "sheet.png"
    _hdri_cli(["hdri", "sheet", "--folder", str(folder), "--no-bundled", "--skies", "3", "--columns", "3",
               "--samples", "1", "--out", str(out)])
    assert "5 thumbnails" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out).convert("RGB"))
    w, h = THUMB
    assert sheet.shape == (2 * (h + LABEL_H), 3 * w, 3)  # 5 entries in 3 columns
    cells = [sheet[r * (h + LABEL_H):r * (h + LABEL_H) + h, c * w:(c + 1) * w].astype(float)
             for r in range(2) for c in range(3)]
    for cell in cells[:5]:
        assert cell.std() > 1 or cell.mean() < 250  # a picture, not the white background
    assert np.all(cells[5] == 255)  # the sixth cell is empty
    for i in range(5):
        for j in range(i):
            assert np.abs(cells[i] - cells[j]).mean() > 1  # five different pictures
    labels = sheet[h:h + LABEL_H, :w]
    assert (labels < 128).any()  # the label strip holds text
