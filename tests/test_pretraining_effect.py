"""The pretraining-effect benchmark's experiment design (no leakage between training and evaluation, nested
scales) and its report (the difference rows, figures over seeds)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pretraining_effect import SHIFTED_LOOK, matched_steps, plan, spread  # noqa: E402
from benchmarks.pretraining_report import markdown, split_table  # noqa: E402


def test_spread_takes_evenly_spaced_ids_with_both_ends():
    assert spread(range(10), 3) == [0, 5, 9] or spread(range(10), 3) == [0, 4, 9]
    assert spread([5, 1, 3], 10) == [1, 3, 5]
    assert len(set(spread(range(1520), 64))) == 64


def test_plan_keeps_held_out_poses_and_views_out_of_training_and_nests_the_scales():
    p = plan([16, 64, 4], views=24, heldout_poses=8, shifted_views=12)
    held = set(p["heldout"])
    assert len(held) == 8 and all(0 <= h < 1520 for h in held)
    assert sorted(p["train"]) == [4, 16, 64]
    for scale, poses in p["train"].items():
        assert len(poses) == len(set(poses)) == scale
        assert not held & set(poses), scale
    assert set(p["train"][4]) <= set(p["train"][16]) <= set(p["train"][64])
    assert len(p["views"]) == 24 and len(p["shifted_views"]) == 12
    assert not set(p["views"]) & set(p["shifted_views"])          # the shifted set is seen from other views
    # the held-out poses cover the pose space: base poses and blends alike
    assert min(held) < 200 and max(held) > 1300
    # the shift is a valid render config
    from synth.render_config import RenderConfig

    cfg = RenderConfig(seed=1, hdri_split="heldout", **SHIFTED_LOOK)
    assert cfg.camera_effects == "on" and cfg.occluder_prob > RenderConfig().occluder_prob


def _run(seed, scale, pretrained_err, scratch_err):
    def arm(err):
        m = {"pa_mpjpe_mm": err, "pa_mpvpe_mm": err + 1, "auc_3d": 0.5, "px_2d": 3.0, "auc_2d": 0.8, "samples": 96}
        return {"seconds": 10.0, "steps": 100, "splits": {"shifted": m}, "history": {"shifted": ([25, 50], [err, err])}}

    return {"scale": scale, "poses": scale, "images": scale * 24, "encoder": "densestack", "seed": seed,
            "pretrain_seconds": 5.0, "pretrain_2d": {}, "pretrained": arm(pretrained_err), "scratch": arm(scratch_err)}


def test_report_gives_the_difference_per_seed_and_mean_and_std_over_seeds():
    runs = [_run(0, 16, 20.0, 22.0), _run(1, 16, 21.0, 22.0)]
    lines = split_table(runs, "shifted")
    diff = next(line for line in lines if "pretrained - scratch" in line)
    cells = [c.strip() for c in diff.split("|")]
    # PA-MPJPE differences -2 and -1: mean -1.50, std 0.50
    assert "-1.50 +- 0.50" in cells
    pre = next(line for line in lines if "pretrained on the training images" in line)
    assert "20.50 +- 0.50" in pre and "| 0,1 |" in pre and "(100 steps)" in pre
    summary = {"settings": {"finetune_steps": 100, "batch_size": 32, "lr": 1e-3, "consistency": False,
                            "pretrain_steps": 100, "pretrain_batch_size": 32, "resolution": 128, "samples": 16},
               "plan": {"views": list(range(24)), "heldout": [1, 2]}, "render_seconds": {"train": 1.0},
               "wall_seconds": 60.0, "runs": runs}
    text = markdown(summary)
    assert "## shifted (96 samples)" in text and text.count("pretrained - scratch") == 1
    assert np.isclose(float(cells[5].split()[0]), -1.5)


def test_report_states_a_missing_figure_instead_of_inventing_one():
    run = _run(0, 16, 20.0, 22.0)
    for arm in ("pretrained", "scratch"):
        run[arm]["splits"]["shifted"]["pa_mpvpe_mm"] = None     # e.g. a benchmark with MANO meshes only
    lines = split_table([run], "shifted")
    assert all(line.split("|")[6].strip() == "-" for line in lines[2:])


def test_plan_drops_training_poses_equal_to_a_held_out_one():
    params = np.random.default_rng(0).normal(size=(1520, 48))
    free = plan([64], views=24)
    twin = free["train"][64][5]
    params[twin] = params[free["heldout"][3]]         # a blend that coincides with a held-out pose
    p = plan([64], views=24, pose_params=params)
    assert p["heldout"] == free["heldout"] and twin not in p["train"][64] and len(p["train"][64]) == 64


@pytest.mark.parametrize("scales, message", [([0, 16], "scales"), ([1515], "1520 poses"), ([16], "views")])
def test_plan_refuses_impossible_settings_with_the_bad_value(scales, message):
    with pytest.raises(ValueError, match=message):
        plan(scales, views=300 if message == "views" else 24, heldout_poses=8)


def test_matched_scratch_sees_as_many_images_as_pretraining_and_fine_tuning_together():
    import argparse

    args = argparse.Namespace(finetune_steps=150, pretrain_steps=100, pretrain_batch_size=32, batch_size=8)
    assert matched_steps(args) * 8 == 150 * 8 + 100 * 32


def test_a_freihand_folder_is_evaluated_on_its_evaluation_split(tmp_path, hand_model):
    from fixtures_benchmarks import write_freihand

    from benchmarks.pretraining_effect import eval_specs
    from finetune.training_data import open_dataset

    truth = write_freihand(tmp_path / "FreiHAND", hand_model, n=2, n_eval=3)
    p = plan([4], views=4, heldout_poses=2)
    specs = eval_specs(p, {"train": tmp_path / "train", "shifted": tmp_path / "shifted"},
                       [f"freihand:{tmp_path / 'FreiHAND'}"])
    assert list(specs) == ["same", "shifted", "freihand"]
    assert specs["same"]["options"] == {"poses": p["heldout"]}
    ds = open_dataset(specs["freihand"], 128)
    assert len(ds) == 3
    sample = ds[1]
    np.testing.assert_allclose(sample["keypoints_3d"].numpy(), truth["evaluation"]["xyz"][1], atol=1e-6)
    assert not sample["has_vertices"]               # MANO meshes are not this model's topology: keypoints only
    # a MANO model (--hand-model mano) reads the evaluation meshes too
    mano_specs = eval_specs(p, {"train": tmp_path / "train", "shifted": tmp_path / "shifted"},
                            [f"freihand:{tmp_path / 'FreiHAND'}"], mano=True)
    sample = open_dataset(mano_specs["freihand"], 128)[1]
    assert sample["has_vertices"]
    np.testing.assert_allclose(sample["vertices"].numpy(), truth["evaluation"]["verts"][1], atol=1e-6)


def test_fine_tuning_builds_mobrecon_on_the_chosen_hand_model(tmp_path):
    import argparse

    from benchmarks.pretraining_effect import finetune_config

    args = argparse.Namespace(batch_size=8, lr=1e-3, loader_workers=0, eval_points=3, finetune_steps=120,
                              consistency=False, hand_model="mano")
    cfg = finetune_config(tmp_path / "run", [], {}, "ghoststack", None, 0, args)
    assert cfg.task_options["model"] == "mobrecon_ghoststack"
    assert cfg.task_options["model_options"] == {"hand_model": "mano"}
    assert cfg.max_steps == 120 and cfg.eval_every == 40


def test_constant_prediction_reference_is_exact_on_hand_computed_cases(tmp_path):
    from benchmarks.pretraining_effect import constant_score

    rng = np.random.default_rng(0)
    hand = rng.normal(0, 0.03, (21, 3))
    # copies differing in scale and position: their mean is one more such copy, which Procrustes aligns exactly
    xyz = np.stack([hand * s + t for s, t in ((1.0, 0.0), (1.2, 0.1), (0.9, -0.3))])
    uv = np.zeros((3, 21, 2))
    uv[:, :, 0] = np.array([0.0, 10.0, 20.0])[:, None]          # mean x 10: errors 10, 0, 10 px
    np.savez(tmp_path / "gt.npz", xyz=xyz, uv=uv)
    c = constant_score(tmp_path / "gt.npz")
    assert c["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)        # under a micrometre
    assert c["px_2d"] == pytest.approx(20.0 / 3.0)
    # a mirrored hand is not a similar copy: one constant cannot fit both
    np.savez(tmp_path / "gt.npz", xyz=np.stack([hand, hand * [-1.0, 1.0, 1.0]]), uv=uv[:2])
    assert constant_score(tmp_path / "gt.npz")["pa_mpjpe_mm"] > 1.0


def test_report_gives_the_constant_prediction_reference_per_split():
    runs = [_run(0, 16, 20.0, 22.0)]
    summary = {"settings": {"finetune_steps": 100, "batch_size": 32, "lr": 1e-3, "consistency": False,
                            "pretrain_steps": 100, "pretrain_batch_size": 32, "resolution": 128, "samples": 16},
               "plan": {"views": list(range(24)), "heldout": [1, 2]}, "wall_seconds": 60.0,
               "render_seconds": {"train": 1.0}, "runs": runs,
               "constant": {"shifted": {"pa_mpjpe_mm": 41.234, "px_2d": 24.5, "auc_2d": 0.27}}}
    text = markdown(summary)
    assert "A constant prediction" in text and "41.23 mm PA-MPJPE, 24.50 px" in text
    assert "densestack scale 16 seed 0: 5 s\n" in text + "\n"                 # no 2D figures measured: none shown
    runs[0]["pretrain_2d"] = {"heldout_hdris": {"mean_px": 12.345, "auc": 0.5}}
    assert "densestack scale 16 seed 0: 5 s (12.35 px, 2D AUC 0.500 on the shifted set)" in markdown(summary)
