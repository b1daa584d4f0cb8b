"""One training entry (hands/training.py, hands/cli_train.py): every task runs from the command line, and the
command line and the pipeline stages start from the same recipe (hands/recipes.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sketch_data import write_sketch_dataset  # noqa: E402


class Captured(Exception):
    pass


@pytest.fixture
def captured(monkeypatch):
    """hands.training.run replaced by one that records the TrainConfig and stops."""
    import hands.training

    seen = []

    def fake_run(config, resume=None, overwrite=False):
        seen.append(config)
        raise Captured

    monkeypatch.setattr(hands.training, "run", fake_run)
    return seen


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    return write_sketch_dataset(tmp_path_factory.mktemp("sketch") / "data", poses=range(3), views=range(2), size=64)


def _stage(fn, sketch, out, **settings):
    from hands.pipeline import Context, StageRecord

    ctx = Context(out=out)
    ctx.outputs["dataset"] = sketch
    ctx.records.append(StageRecord(fn.__name__, {}))
    with pytest.raises(Captured):
        fn(ctx, **settings)


def _cli_config(argv):
    import argparse

    from hands.cli_train import add_parser, config_from_args

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return config_from_args(p.parse_args(argv))[0]


def _same_run(a, b) -> dict:
    """The two configs' settings that differ, apart from where they write."""
    da, db = a.to_dict(), b.to_dict()
    return {k: (da[k], db.get(k)) for k in da if k != "out" and da[k] != db.get(k)}


def test_the_pretrain_stage_and_command_build_the_same_run_from_the_recipe(sketch, tmp_path, captured):
    from hands.recipes import PRETRAIN
    from hands.stages_pretrain import pretrain

    _stage(pretrain, sketch, tmp_path, loader_workers=0)
    cli = _cli_config(["pretrain", "--data", str(sketch), "--out", str(tmp_path / "cli"), "--loader-workers", "0",
                       "--heldout-poses", "0.1"])
    stage = captured[0]
    for key, value in PRETRAIN["train"].items():
        assert getattr(stage, key) == value and getattr(cli, key) == value, key
    opts = {k: v for k, v in stage.task_options.items() if k not in ("augment",)}
    assert opts == {**{k: v for k, v in cli.task_options.items() if k != "data"}, "data": str(sketch)}
    assert stage.task_options["encoder"] == "densestack" and stage.task_options["input_size"] == 128


@pytest.mark.parametrize("model", ["sar_resnet34", "csr_resnet18", "cmr_baseline", "mobrecon_ghoststack"])
def test_the_finetune_stage_and_command_read_the_model_familys_recipe(model, sketch, tmp_path, captured):
    from hands.recipes import recipe_for
    from hands.stages_finetune import finetune

    _stage(finetune, sketch, tmp_path, model=model, heldout_poses=[2], from_pretrained=False)
    cli = _cli_config(["finetune", "--model", model, "--data", f"complement:{sketch}", "--out", str(tmp_path / "c"),
                       "--loader-workers", "0"])
    stage, recipe = captured[0], recipe_for(model)
    for key, value in recipe["train"].items():
        assert getattr(stage, key) == value and getattr(cli, key) == value, key
    for key, value in recipe["task"].items():
        assert stage.task_options[key] == value and cli.task_options[key] == value, key


def test_sima_stages_read_the_sima_recipe(sketch, tmp_path, captured):
    from hands.recipes import SIMA
    from hands.stages_sima import sima_mvr

    _stage(sima_mvr, sketch, tmp_path, heldout_poses=[2])
    cfg = captured[0]
    assert (cfg.task, cfg.batch_size, cfg.lr, cfg.epochs, cfg.milestones) == ("sima", 64, 1e-3, 38, [30])
    assert cfg.task_options["views"] == SIMA["mvr"]["task"]["views"] == 8 and cfg.task_options["input_size"] == 128


def test_a_flag_of_another_task_is_refused(sketch, tmp_path):
    with pytest.raises(ValueError, match="--encoder: not a flag of task mesh"):
        _cli_config(["train", "--task", "mesh", "--encoder", "ghoststack", "--data", f"complement:{sketch}",
                     "--out", str(tmp_path)])


@pytest.mark.slow
def test_hands_train_runs_sima_mvr_then_svr_from_the_command_line(hand_model, tmp_path, capsys):
    """SiMA could not be trained from the CLI (the finetune command hard-coded the mesh task). MVR-Hand on the
    HanCo fixture's 8-camera frames (3 views per item), then SVR-Hand distilled from it, each one epoch."""
    from fixtures_more_benchmarks import write_hanco

    from finetune.models import load_model
    from hands.cli import main

    data = tmp_path / "hanco"
    write_hanco(data, hand_model)
    common = ["--data", f"hanco:{data}", "--eval", f"train=hanco:{data}", "--input-size", "32", "--epochs", "1",
              "--batch-size", "2", "--loader-workers", "0", "--no-progress", "--no-augment",
              "--model-option", "orient_dim=16"]
    assert main(["train", "--task", "sima", "--views", "3", "--out", str(tmp_path / "mvr"), *common]) == 0
    mvr = load_model(tmp_path / "mvr" / "model.pt")
    assert mvr.registry_name == "sima_mvr" and mvr.num_views == 3
    assert main(["train", "--task", "sima", "--stage", "svr", "--teacher", str(tmp_path / "mvr" / "model.pt"),
                 "--beta", "0.5", "--out", str(tmp_path / "svr"), *common]) == 0
    assert load_model(tmp_path / "svr" / "model.pt").registry_name == "sima_svr"
    cfg = json.loads((tmp_path / "svr" / "sima_config.json").read_text())
    assert cfg["task_options"]["views"] == 3 and cfg["task_options"]["beta"] == 0.5   # the teacher's views
    assert cfg["optimizer"] == "adam" and cfg["epochs"] == 1 and cfg["task_options"]["input_size"] == 32
    out = capsys.readouterr().out
    assert out.count("trained ") == 2 and "pa_mpjpe_mm" in out
