"""Nothing lost by a slip (issue 24): a dataset holding finished work is continued or refused, never
silently replaced or shrunk; every render setting typed before any work; an unreachable Ray address
fails in bounded time; no temporary render files left; render_summary.json written atomically.

The renders are tiny (64 px, 4 samples, in-process or `--workers 0`)."""
from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth.render_config import RenderConfig

CFG = RenderConfig(resolution=64, samples=4, hdri_skies=0)
FLAGS = ["--resolution", "64", "--samples", "4", "--skies", "0", "--workers", "0", "--no-progress"]
SAFE_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _members(tar_path: Path) -> dict:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _cli(capsys, *argv) -> tuple:
    from hands.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """CFG, poses 0-1 x views 0-1 (4 samples), rendered in this process."""
    from synth.distribute import render_dataset

    root = tmp_path_factory.mktemp("protected") / "d"
    summary = render_dataset(CFG, root, [0, 1], [0, 1], workers=0, progress=False)
    assert summary.done == [0, 1] and not summary.failed
    return root


@pytest.fixture
def dataset(rendered, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(rendered, root)
    return root


def _shard_bytes(root: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}


# ---------------------------------------------------------------- 1. a dataset is continued, never shrunk

@pytest.mark.blender
def test_a_rerender_with_fewer_or_other_views_continues_the_dataset(dataset):
    from synth.distribute import render_dataset
    from synth.reader import ComplementDataset

    before = {name: _members(dataset / "shards" / name) for name in ("0000.tar", "0001.tar")}
    assert len(ComplementDataset(dataset)) == 4
    # fewer poses and views, same config: nothing rendered, nothing dropped
    again = render_dataset(CFG, dataset, [0], [0], workers=0, progress=False)
    assert again.done == [] and again.skipped == [0, 1] and again.images == 0
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["pose_ids"] == [0, 1] and info["view_ids"] == [0, 1]
    assert len(ComplementDataset(dataset)) == 4
    # another view: the union (views 0, 1, 2) of both poses; the old samples come out the same
    more = render_dataset(CFG, dataset, [0], [2], workers=0, progress=False)
    assert more.done == [0, 1] and more.images == 6 and not more.failed
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["pose_ids"] == [0, 1] and info["view_ids"] == [0, 1, 2]
    assert len(ComplementDataset(dataset)) == 6
    from image_checks import assert_same_render

    for name, old in before.items():
        new = _members(dataset / "shards" / name)
        assert set(old) < set(new)
        for member, data in old.items():
            if member.endswith(".json"):
                assert json.loads(data) == json.loads(new[member]), member
            else:
                assert_same_render(np.asarray(Image.open(io.BytesIO(data))),
                                   np.asarray(Image.open(io.BytesIO(new[member]))), member)


@pytest.mark.blender
def test_another_config_is_refused_and_overwrite_replaces_the_dataset(dataset, capsys):
    old_hash = json.loads((dataset / "dataset.json").read_text())["config_hash"]
    new_hash = RenderConfig(resolution=64, samples=4, hdri_skies=0, seed=1).config_hash()
    shards = _shard_bytes(dataset)
    args = ["render", "--out", dataset, "--poses", "0", "--views", "0", "--seed", "1", *FLAGS]
    for extra in ([], ["--dry-run"]):
        rc, out, err = _cli(capsys, *args, *extra)
        assert rc == 2, (out, err)
        message = err.strip()
        assert "\n" not in message, message
        for text in (str(dataset), old_hash, new_hash, "seed", "--overwrite"):
            assert text in message, (text, message)
        assert _shard_bytes(dataset) == shards
    rc, out, err = _cli(capsys, *args, "--overwrite", "--dry-run")
    assert rc == 0, err
    assert "replace" in out and "2 complete shards" in out and old_hash in out, out
    assert _shard_bytes(dataset) == shards
    rc, out, err = _cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["config_hash"] == new_hash and info["pose_ids"] == [0] and info["view_ids"] == [0]
    assert sorted(p.name for p in (dataset / "shards").iterdir()) == ["0000.json", "0000.tar"]
    assert json.loads((dataset / "shards" / "0000.json").read_text())["samples"] == ["0000_000"]


@pytest.mark.blender
def test_a_dataset_from_before_a_later_setting_is_continued(tmp_path):
    """skin_subsurface came after datasets were made with random walk: their dataset.json lacks it and,
    at that value, the hash leaves it out. Such a dataset is continued by a run that states random walk;
    the new default (Burley) is refused, naming that setting alone."""
    from dataclasses import replace

    from synth.distribute import plan_dataset, render_dataset

    old = replace(CFG, skin_subsurface="random_walk")
    root = tmp_path / "old"
    render_dataset(old, root, [0], [0], workers=0, progress=False)
    info = json.loads((root / "dataset.json").read_text())
    del info["config"]["skin_subsurface"]       # as the version before the setting wrote it
    (root / "dataset.json").write_text(json.dumps(info))
    plan = plan_dataset(old, root, [0], [1])
    assert not plan.conflict() and plan.config_hash == info["config_hash"]
    assert plan.pose_ids == [0] and plan.view_ids == [0, 1]
    message = plan_dataset(CFG, root, [0], [0]).conflict()
    assert "settings that differ: skin_subsurface: 'random_walk' -> 'burley')" in message, message


@pytest.mark.blender
def test_dry_run_says_what_is_added_and_rerendered(dataset, capsys):
    shards = _shard_bytes(dataset)
    rc, out, err = _cli(capsys, "render", "--out", dataset, "--poses", "2", "--views", "2", "--dry-run", *FLAGS)
    assert rc == 0, err
    assert "0 shards complete, 3 to render, 2 complete shards re-rendered for added views" in out, out
    assert "3 poses x 3 views" in out, out
    rc, out, err = _cli(capsys, "render", "--out", dataset, "--poses", "0", "--views", "1", "--dry-run", *FLAGS)
    assert rc == 0, err
    assert "2 shards complete, 0 to render, 0 complete shards re-rendered for added views" in out, out
    assert _shard_bytes(dataset) == shards


@pytest.mark.blender
def test_the_render_stage_refuses_another_config_unless_overwrite(dataset, capsys):
    from hands.pipeline import Context, StageRecord
    from hands.stages import render

    ctx = Context(out=dataset.parent, outputs={"model_spec": "openhand"})
    ctx.records.append(StageRecord("render", {}))
    shards = _shard_bytes(dataset)
    common = dict(poses=[0, 1], views=[0, 1], resolution=64, samples=4, skies=0, workers=0, folder=dataset.name)
    render(ctx, **common)                                # the same config: nothing replaced
    assert _shard_bytes(dataset) == shards
    with pytest.raises(ValueError, match="overwrite: true") as err:
        render(ctx, **{**common, "seed": 1, "poses": [0], "views": [0]})
    assert str(dataset) in str(err.value)
    assert _shard_bytes(dataset) == shards
    render(ctx, **{**common, "seed": 1, "poses": [0], "views": [0]}, overwrite=True)
    assert json.loads((dataset / "dataset.json").read_text())["config"]["seed"] == 1
    assert not (dataset / "shards" / "0001.tar").exists()


@pytest.mark.blender
def test_data_check_compares_the_dataset_with_its_plan(dataset, monkeypatch, capsys):
    import synth.distribute
    from hands.cli import main

    rc, out, err = _cli(capsys, "data", "check", "complement", dataset)
    assert rc == 0 and "problem:" not in out, out

    def fail(cfg, root, pose_id, view_ids=None, progress=None):
        raise RuntimeError("renderer died")

    monkeypatch.setattr(synth.distribute, "render_shard", fail)
    summary = synth.distribute.render_dataset(CFG, dataset, [2], [2], workers=0, progress=False)
    assert sorted(summary.failed) == [0, 1, 2]
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["pose_ids"] == [0, 1, 2] and info["view_ids"] == [0, 1, 2]     # the plan stays recorded
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["data", "check", "complement", str(dataset)])
    assert exit_.value.code == 1
    problems = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("problem")]
    assert len(problems) == 3, problems
    assert any("pose 2" in p and "missing" in p for p in problems), problems
    assert any("pose 0" in p and "2 of the plan's 3 views" in p for p in problems), problems


@pytest.mark.blender
def test_data_check_names_a_missing_shard(dataset, capsys):
    from hands.cli import main

    (dataset / "shards" / "0001.tar").unlink()
    (dataset / "shards" / "0001.json").unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["data", "check", "complement", str(dataset)])
    assert exit_.value.code == 1
    problems = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("problem")]
    assert len(problems) == 1 and "pose 1 is missing" in problems[0], problems


# ---------------------------------------------------------------- 2. every setting typed before any work

@pytest.mark.parametrize("kwargs, named", [
    ({"resolution": "abc"}, "resolution='abc' (expected an integer)"),
    ({"forearm_taper": 1.2}, "forearm_taper=1.2 (expected a list)"),
    ({"camera_effect_settings": 5}, "camera_effect_settings=5 (expected a mapping"),
    ({"hdri_folders": "/some/dir"}, "hdri_folders='/some/dir' (expected a list)"),
    ({"backdrop_folders": "/some/dir"}, "backdrop_folders='/some/dir' (expected a list)"),
    ({"samples": True}, "samples=True (expected an integer)"),
    ({"hdri_strength": ["a", "b"]}, "hdri_strength"),
])
def test_a_wrongly_typed_setting_is_named(kwargs, named):
    t = time.time()
    with pytest.raises(ValueError) as err:
        RenderConfig(**kwargs)
    assert named in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError) as err:
        RenderConfig.from_dict(kwargs)
    assert next(iter(kwargs)) in str(err.value)
    assert time.time() - t < 2      # no folder scanned


def test_a_list_given_for_a_tuple_is_one_setting():
    assert RenderConfig(hdri_folders=["a"]) == RenderConfig(hdri_folders=("a",))


@pytest.mark.parametrize("how, named", [
    (["--set", "occluder_max=abc"], "occluder_max='abc' (expected an integer)"),
    ("forearm_taper: 1.2\n", "forearm_taper"),
    ("camera_effect_settings: 5\n", "camera_effect_settings=5 (expected a mapping"),
    ("hdri_folders: /some/dir\n", "hdri_folders"),
    ("- resolution: 64\n", "expected a mapping of settings"),
    ("folder", "is a folder"),
    ("missing", "not found"),
])
def test_a_bad_setting_or_config_file_is_one_line_before_any_work(how, named, tmp_path, capsys):
    argv = ["render", "--out", tmp_path / "d", "--poses", "0", "--views", "0", "--dry-run", *FLAGS]
    if isinstance(how, list):
        argv += how
    else:
        path = tmp_path / "settings.yaml"
        if how == "folder":
            path.mkdir()
        elif how != "missing":
            path.write_text(how)
        argv += ["--config", path]
    rc, out, err = _cli(capsys, *argv)
    assert rc == 2, (out, err)
    message = err.strip()
    assert "\n" not in message and named in message, message
    if not isinstance(how, list):
        assert str(tmp_path / "settings.yaml") in message, message
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------- 3. an unreachable Ray address

@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_address_that_does_not_answer_fails_in_bounded_time(address, tmp_path):
    env = {**os.environ, **SAFE_ENV, "HANDS_RAY_CONNECT_TIMEOUT": "1"}
    env.pop("RAY_ADDRESS", None)
    t = time.time()
    try:
        res = subprocess.run([sys.executable, "-m", "hands.cli", "render", "--out", str(tmp_path / "d"),
                              "--poses", "0", "--views", "0", "--resolution", "64", "--samples", "4", "--skies",
                              "0", "--workers", "1", "--address", address, "--no-progress"],
                             capture_output=True, text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"--address {address} still waiting after 60 s")
    elapsed = time.time() - t
    assert res.returncode == 2, res.stderr
    assert address in res.stderr and "HANDS_RAY_CONNECT_TIMEOUT" in res.stderr, res.stderr
    assert elapsed < 10, elapsed


def test_the_address_probe(monkeypatch):
    from synth.distribute import check_ray_address

    with socket.socket() as server:          # something answers on loopback: the probe passes
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        check_ray_address(f"127.0.0.1:{port}", timeout=1)
        check_ray_address(f"ray://127.0.0.1:{port}", timeout=1)
    for address in ("auto", "local", None):
        check_ray_address(address, timeout=1)
    t = time.time()
    with pytest.raises(RuntimeError, match=r"127\.0\.0\.1:1.*1 s"):
        check_ray_address("127.0.0.1:1", timeout=1)
    monkeypatch.setenv("HANDS_RAY_CONNECT_TIMEOUT", "1")
    with pytest.raises(RuntimeError, match=r"ray://127\.0\.0\.1:1"):
        check_ray_address("ray://127.0.0.1:1")
    assert time.time() - t < 10
    monkeypatch.setenv("HANDS_RAY_CONNECT_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="HANDS_RAY_CONNECT_TIMEOUT"):
        check_ray_address("127.0.0.1:1")


# ---------------------------------------------------------------- 4. temporary render files removed

def test_frames_go_to_memory_unless_tmpdir_names_a_folder(monkeypatch, tmp_path):
    """The per-frame EXR is written to /dev/shm (read back at once, so memory is the cheaper place), but a
    TMPDIR the user set wins, and without a usable /dev/shm it is tempfile's default."""
    from synth import blender_scene

    memory = tmp_path / "shm"
    memory.mkdir()
    monkeypatch.setattr(blender_scene, "MEMORY_TMP", str(memory))
    monkeypatch.delenv("TMPDIR", raising=False)
    assert blender_scene.temp_parent() == str(memory)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert blender_scene.temp_parent() is None
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(blender_scene, "MEMORY_TMP", str(tmp_path / "absent"))
    assert blender_scene.temp_parent() is None


@pytest.mark.blender
def test_a_render_leaves_no_temporary_files(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, **SAFE_ENV, "TMPDIR": str(tmp)}
    res = subprocess.run([sys.executable, "-m", "hands.cli", "render", "--out", str(tmp_path / "d"), "--poses", "0",
                          "--views", "0", *FLAGS], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d" / "shards" / "0000.tar").exists()
    assert not list(tmp.glob("hands-render-*")), list(tmp.iterdir())


@pytest.mark.blender
@pytest.mark.slow
def test_a_local_ray_render_leaves_no_temporary_files(tmp_path):
    """Two local Ray workers that never reach their recycling: ray.shutdown ends them without their exit
    handlers, so their folders live inside one the driver removes (the demo's render left two behind)."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="hr", dir="/tmp"))   # short: Ray's socket paths live under TMPDIR
    try:
        env = {**os.environ, **SAFE_ENV, "TMPDIR": str(tmp)}
        flags = FLAGS[:FLAGS.index("--workers")] + ["--workers", "2", "--no-progress"]
        res = subprocess.run([sys.executable, "-m", "hands.cli", "render", "--out", str(tmp_path / "d"), "--poses",
                              "0,1", "--views", "0", *flags], capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "d" / "shards" / "0001.tar").exists()
        assert not list(tmp.glob("hands-render-*")), list(tmp.iterdir())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.blender
def test_a_dropped_or_recycled_scene_removes_its_folder(rendered):
    from synth import render_shard as rs
    from synth.distribute import _render_shard_task

    rs.drop_scene()
    scene = rs.scene_for(rs.prepare(CFG))
    folder = Path(scene.tmp_dir)
    assert folder.is_dir()
    del scene
    rs.drop_scene()
    assert not folder.exists()
    # a Ray worker's last shard before it is recycled drops its scene (and folder) itself
    out = rendered.parent / "recycled"
    _render_shard_task(CFG, out, 0, [0], recycle_after=2)
    folder = Path(rs.scene_for(rs.prepare(CFG)).tmp_dir)
    _render_shard_task(CFG, out, 1, [0], recycle_after=2)
    assert not folder.exists() and not rs._SCENES


# ---------------------------------------------------------------- 5. render_summary.json written atomically

def _fake_render(monkeypatch):
    import synth.distribute

    def fake(cfg, root, pose_ids, view_ids, **kwargs):
        Path(root).mkdir(parents=True, exist_ok=True)
        return synth.distribute.RenderSummary(done=list(pose_ids), images=len(pose_ids) * len(view_ids),
                                              seconds=1.0)

    monkeypatch.setattr(synth.distribute, "render_dataset", fake)


def test_a_full_disk_leaves_no_empty_summary(tmp_path, monkeypatch, capsys):
    _fake_render(monkeypatch)
    out = tmp_path / "d"
    out.mkdir()
    (out / "render_summary.json").write_text('{"done": [7]}')
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (40, old_limit[1]))   # writes past 40 bytes fail (EFBIG)
    try:
        rc, stdout, err = _cli(capsys, "render", "--out", out, "--poses", "0:3", "--views", "0", *FLAGS)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert rc == 2, (stdout, err)
    assert str(out / "render_summary.json") in err and "\n" not in err.strip(), err
    assert (out / "render_summary.json").read_text() == '{"done": [7]}'   # the former one, whole
    assert sorted(p.name for p in out.iterdir()) == ["render_summary.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch, capsys):
    _fake_render(monkeypatch)
    out = tmp_path / "d"
    out.mkdir()
    out.chmod(0o555)
    try:
        rc, stdout, err = _cli(capsys, "render", "--out", out, "--poses", "0", "--views", "0", *FLAGS)
    finally:
        out.chmod(0o755)
    assert rc == 2 and str(out / "render_summary.json") in err and "\n" not in err.strip(), err


def test_yaml_on_and_off_for_camera_effects_mean_the_words():
    """YAML 1.1 reads `camera_effects: off` as false: that is the setting 'off' (the former code refused False as
    an invalid value, though the user wrote one of the three words)."""
    import yaml

    from synth.render_config import RenderConfig

    cfg = RenderConfig.from_dict(yaml.safe_load("camera_effects: off"))
    assert cfg.camera_effects == "off" and cfg.config_hash() == RenderConfig(camera_effects="off").config_hash()
    assert RenderConfig.from_dict(yaml.safe_load("camera_effects: on")).camera_effects == "on"
