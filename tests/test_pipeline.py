"""The pipeline runner, its errors, and the demo pipeline end to end."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from hands.pipeline import PipelineError, apply_overrides, load_pipelines, parse_stages, run_pipeline
from hands.stages import STAGES


def _write(tmp_path, data) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_pipeline_lists_the_known_ones(tmp_path):
    path = _write(tmp_path, {"pipelines": {"a": {"stages": ["hand_model"]}, "b": {"stages": ["hand_model"]}}})
    with pytest.raises(PipelineError, match="unknown pipeline 'zzz'; pipelines: a, b"):
        run_pipeline("zzz", tmp_path / "out", path)


def test_unknown_stage_lists_the_stages():
    with pytest.raises(PipelineError, match="unknown stage 'render_all'; stages: .*camera_rig.*hand_model"):
        parse_stages("p", {"stages": [{"render_all": {}}]}, STAGES)


def test_unknown_setting_lists_the_settings():
    with pytest.raises(PipelineError, match=r"no setting 'colour'; settings: poses \(default.*size"):
        parse_stages("p", {"stages": [{"hand_picture": {"colour": 1}}]}, STAGES)


def test_malformed_files_are_explained(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_pipelines(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines: [1, 2")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_pipelines(bad)
    with pytest.raises(PipelineError, match="no 'stages:' list"):
        parse_stages("p", {"description": "x"}, STAGES)


def test_overrides_parse_yaml_values_and_check_names():
    stages = parse_stages("p", {"stages": [{"hand_picture": {"size": 64}}]}, STAGES)
    apply_overrides(stages, ["hand_picture.poses=[1, 2]"], STAGES)
    assert stages[0][1] == {"size": 64, "poses": [1, 2]}
    with pytest.raises(PipelineError, match="not in this pipeline"):
        apply_overrides(stages, ["camera_rig.radius=1"], STAGES)
    with pytest.raises(PipelineError, match="stage.setting=value"):
        apply_overrides(stages, ["radius"], STAGES)


def test_a_stage_missing_its_input_names_the_producer(tmp_path):
    path = _write(tmp_path, {"pipelines": {"p": {"stages": ["hand_model", "camera_rig"]}}})
    with pytest.raises(PipelineError, match="needs 'poses', which stage 'pose_space' produces"):
        run_pipeline("p", tmp_path / "out", path)


def test_help_is_instant_and_imports_no_heavy_module():
    code = ("import sys, hands.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED=' + ','.join(m for m in ('torch', 'bpy', 'ray', 'smplx', 'scipy') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "LOADED="


def test_cli_reports_errors_without_a_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "hands.cli", "run", "nosuch"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "unknown pipeline 'nosuch'" in res.stderr and "demo" in res.stderr
    assert "Traceback" not in res.stderr


# The demo's stages as pipelines.yaml lists them, on less work (fewer views, fewer steps): the test checks
# how the stages chain and what they leave; `make demo` runs the full-size demo.
DEMO_SMALLER = ["render.views=[0, 45, 110, 200]", "render.samples=8", "pretrain.epochs=3",
                "finetune.epochs=2"]


@pytest.mark.blender
@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, capsys):
    ctx = run_pipeline("demo", tmp_path / "demo", overrides=DEMO_SMALLER)
    printed = capsys.readouterr().out
    for line in ("vertices: 778", "poses: 1520", "views: 216", "pose-view pairs: 328320"):
        assert line in printed
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == [s for s, _ in parse_stages(
        "demo", load_pipelines()["demo"], STAGES)]
    report = (tmp_path / "demo" / "report.html").read_text()
    pictures = [p for s in summary["stages"] for p in s["pictures"]]
    assert report.count("<img") == len(pictures) >= 3
    for name in ("hand.png", "rig_views.png", "renders.png", "realism.png", "predictions.png", "finetune_curves.png",
                 "pck_freihand.png"):
        assert name in pictures and (tmp_path / "demo" / name).is_file()
    # the evaluate stage scored the held-out predictions with the FreiHAND metrics
    figures = {k for s in summary["stages"] if s["stage"] == "evaluate" for k in s["figures"]}
    assert {"xyz_al_mean3d (cm)", "f_al_score_5"} <= figures, figures
    sheet = Image.open(tmp_path / "demo" / "hand.png")
    assert sheet.size == (4 * 256, 3 * 256)
    # the pictures show a hand, not an empty canvas: skin-coloured pixels in every tile
    import numpy as np

    px = np.asarray(sheet.convert("RGB")).reshape(3, 256, 4, 256, 3).swapaxes(1, 2)
    skin = (px[..., 0] > px[..., 2] + 30).mean(axis=(2, 3))
    assert (skin > 0.03).all(), skin
    assert ctx.outputs["poses"].shape == (1520, 48)


def test_show_hand_command(tmp_path):
    out = tmp_path / "hand.png"
    res = subprocess.run([sys.executable, "-m", "hands.cli", "show", "hand", "--poses", "0,31",
                          "--size", "96", "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (4 * 96, 96)
    res = subprocess.run([sys.executable, "-m", "hands.cli", "show", "hand", "--poses", "5000",
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 2 and "5000" in res.stderr
