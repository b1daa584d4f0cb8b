"""Slips and faults a user meets are one-line errors naming what is wrong (issue 24): bad `hands predict`
flags, unreadable or non-finite `hands evaluate` inputs, failed checkpoint writes, unwritable outputs."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


# ---------------------------------------------------------------- hands predict: --focal and --box

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from finetune.models import build_model, save_model

    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("model") / "model.pt", build_model("mobrecon_densestack").eval())


@pytest.fixture
def image(tmp_path):
    rgb = (np.random.default_rng(0).random((150, 200, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "hand.png")
    return tmp_path / "hand.png"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hands: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("focal", ["0", "-300", "nan"])
def test_predict_refuses_a_focal_length_that_is_not_positive(model_file, image, tmp_path, capsys, focal):
    from hands.cli import main

    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_file), str(image), "--out", str(out), f"--focal={focal}"]) == 2
    err = _one_line_error(capsys)
    assert "--focal" in err and focal in err and "hand.png" in err, err
    assert not (out / "hand.obj").exists()


@pytest.mark.parametrize("box, why", [("300,10,400,50", "outside"),     # right of a 200 px wide image
                                      ("-90,-80,-10,-5", "outside"),     # above and left of it
                                      ("10,160,50,190", "outside"),      # below it (150 px high)
                                      ("50,20,10,40", "x1 > x0"),        # degenerate: x1 < x0
                                      ("10,20,10,40", "x1 > x0")])       # degenerate: no width
def test_predict_refuses_a_box_outside_the_image_or_degenerate(model_file, image, tmp_path, capsys, box, why):
    from hands.cli import main

    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_file), str(image), "--out", str(out), f"--box={box}"]) == 2
    err = _one_line_error(capsys)
    assert "--box" in err and box in err and "hand.png" in err and "200x150" in err and why in err, err
    assert not (out / "hand.obj").exists()


def test_predict_takes_a_box_partly_outside_the_image(model_file, image, tmp_path):
    from finetune.predict import predict_files

    written = predict_files(model_file, [image], tmp_path / "out", box=(150, 100, 260, 210), echo=lambda *_: None)
    assert written[0][0].is_file()


# ---------------------------------------------------------------- hands evaluate: NaN and non-npz input

@pytest.fixture
def keypoint_files(tmp_path):
    rng = np.random.default_rng(3)
    xyz = rng.normal(0, 0.03, (4, 21, 3)) + [0.0, 0.0, 0.5]
    verts = rng.normal(0, 0.03, (4, 778, 3)) + [0.0, 0.0, 0.5]
    np.savez(tmp_path / "gt.npz", xyz=xyz, verts=verts)
    return tmp_path, xyz, verts


@pytest.mark.parametrize("key, count", [("xyz", 3), ("verts", 5)])
def test_evaluate_names_the_file_and_key_of_nan_values(keypoint_files, capsys, key, count):
    from finetune.evaluate import evaluate_files
    from hands.cli import main

    d, xyz, verts = keypoint_files
    arrays = {"xyz": xyz.copy(), "verts": verts.copy()}
    flat = arrays[key].reshape(-1)
    flat[[7, 40, 41, 100, 120][:count - 1]] = np.nan
    flat[200] = np.inf
    np.savez(d / "pred_nan.npz", **arrays)
    with pytest.raises(ValueError) as info:
        evaluate_files(d / "pred_nan.npz", d / "gt.npz", "freihand")
    msg = str(info.value)
    assert "pred_nan.npz" in msg and f"'{key}'" in msg and str(count) in msg and "\n" not in msg, msg
    assert main(["evaluate", str(d / "pred_nan.npz"), str(d / "gt.npz"), "--benchmark", "freihand",
                 "--out", str(d / "ev")]) == 2
    err = _one_line_error(capsys)
    assert "pred_nan.npz" in err and f"'{key}'" in err, err
    assert not (d / "ev" / "metrics_freihand.json").exists()


@pytest.mark.parametrize("content", [b"this is not an npz\n1 2 3\n", b"", b"PK\x03\x04 truncated zip"])
def test_evaluate_names_a_file_that_is_not_an_npz(keypoint_files, capsys, content):
    from finetune.evaluate import load_keypoint_file
    from hands.cli import main

    d = keypoint_files[0]
    (d / "pred.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"pred\.npz.*not an? .*npz"):
        load_keypoint_file(d / "pred.npz", "freihand")
    assert main(["evaluate", str(d / "pred.npz"), str(d / "gt.npz"), "--benchmark", "freihand",
                 "--out", str(d / "ev")]) == 2
    err = _one_line_error(capsys)
    assert "pred.npz" in err and "npz" in err.split("pred.npz", 1)[1], err


def test_evaluate_still_scores_finite_npz_input(keypoint_files):
    from finetune.evaluate import evaluate_files

    d, xyz, verts = keypoint_files
    np.savez(d / "pred.npz", xyz=xyz + 0.001, verts=verts + 0.001)
    res = evaluate_files(d / "pred.npz", d / "gt.npz", "freihand")
    assert res.num_samples == 4


# ---------------------------------------------------------------- checkpoint writes: disk full, read-only

def _leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _genuine_disk_full_save(obj, f, *args, **kw):
    """torch.save as on a full disk: a part of the file lands, then torch's zip writer fails as it does
    (its RuntimeError is the real one, from writing to /dev/full)."""
    Path(f).write_bytes(b"PK\x03\x04 part of a checkpoint")
    if os.path.exists("/dev/full"):
        _real_save({"w": torch.zeros(10000)}, "/dev/full")
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


_real_save = torch.save


@pytest.mark.parametrize("fault", ["torch-zip-writer", "enospc", "erofs"])
def test_atomic_save_turns_a_write_failure_into_one_line_naming_the_path(tmp_path, monkeypatch, fault):
    from pretrain import checkpoint as ckpt

    if fault == "torch-zip-writer":
        save = _genuine_disk_full_save
        monkeypatch.setattr(shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
        cause = "no space left on device"
    elif fault == "enospc":
        def save(obj, f, *a, **k):
            Path(f).write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        cause = "no space left on device"
    else:
        def save(obj, f, *a, **k):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(f))
        cause = "read-only"
    monkeypatch.setattr(ckpt.torch, "save", save)
    target = tmp_path / "run" / "checkpoints" / "last.pt"
    with pytest.raises((OSError, RuntimeError)) as info:
        ckpt.atomic_save({"step": 1}, target)
    msg = str(info.value)
    assert str(target) in msg and cause in msg.lower() and "\n" not in msg, msg
    assert "enforce fail" not in msg and "inline_container" not in msg, msg
    assert _leftovers(target.parent) == []                   # no partial file, no temporary file


def test_a_torch_write_failure_without_a_full_disk_still_names_the_path(tmp_path, monkeypatch):
    from pretrain import checkpoint as ckpt

    monkeypatch.setattr(ckpt.torch, "save", _genuine_disk_full_save)
    target = tmp_path / "encoder.pt"
    with pytest.raises((OSError, RuntimeError)) as info:
        ckpt.atomic_save({"step": 1}, target)
    msg = str(info.value)
    assert str(target) in msg and "enforce fail" not in msg and "\n" not in msg, msg
    assert _leftovers(tmp_path) == []


def test_an_unopenable_checkpoint_path_is_named_with_the_os_message(tmp_path):
    from pretrain.checkpoint import atomic_save

    (tmp_path / "last.pt").mkdir()                          # a folder where the file should go
    (tmp_path / "last.pt" / "x").write_text("keep me")
    with pytest.raises((OSError, RuntimeError)) as info:
        atomic_save({"step": 1}, tmp_path / "last.pt")
    msg = str(info.value)
    assert str(tmp_path / "last.pt") in msg and "\n" not in msg and "enforce fail" not in msg, msg
    assert _leftovers(tmp_path) == ["last.pt"] and (tmp_path / "last.pt" / "x").read_text() == "keep me"


def test_save_checkpoint_and_save_encoder_on_a_full_disk(tmp_path, monkeypatch):
    from pretrain import checkpoint as ckpt

    ckpt.save_checkpoint(tmp_path, {"step": 1, "model": {}})          # an earlier checkpoint stays whole
    before = sorted(p.name for p in ckpt.checkpoint_dir(tmp_path).iterdir())
    monkeypatch.setattr(ckpt.torch, "save", _genuine_disk_full_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises((OSError, RuntimeError), match="no space left on device"):
        ckpt.save_checkpoint(tmp_path, {"step": 2, "model": {}})
    assert sorted(p.name for p in ckpt.checkpoint_dir(tmp_path).iterdir()) == before
    with pytest.raises((OSError, RuntimeError), match=r"encoder\.pt.*no space left on device"):
        ckpt.save_encoder(tmp_path / "encoder.pt", torch.nn.Linear(2, 2), "resnet18", 128)
    assert not (tmp_path / "encoder.pt").exists()
    monkeypatch.undo()
    assert ckpt.safe_load(tmp_path / "checkpoints" / "last.pt")["step"] == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into a chmod 0o500 folder; the monkeypatched variants cover this")
def test_atomic_save_into_a_read_only_folder(tmp_path):
    from pretrain.checkpoint import atomic_save

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises((OSError, RuntimeError)) as info:
            atomic_save({"step": 1}, folder / "last.pt")
        msg = str(info.value)
        assert str(folder / "last.pt") in msg and "\n" not in msg and "enforce fail" not in msg, msg
        assert _leftovers(folder) == []
    finally:
        folder.chmod(0o700)


# ---------------------------------------------------------------- the CLI: OSError is a one-line error

def test_cli_turns_a_permission_error_into_a_one_line_error(keypoint_files, monkeypatch, capsys):
    from hands.cli import main

    d, xyz, verts = keypoint_files
    np.savez(d / "pred.npz", xyz=xyz, verts=verts)
    import builtins

    real_open = builtins.open

    def locked_open(file, mode="r", *a, **k):
        # a file created in "locked" (metrics_freihand.json or its temporary name beside it)
        if any(c in mode for c in "wax") and Path(str(file)).parent.name == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", locked_open)
    assert main(["evaluate", str(d / "pred.npz"), str(d / "gt.npz"), "--benchmark", "freihand",
                 "--out", str(d / "locked")]) == 2
    err = _one_line_error(capsys)
    assert str(d / "locked" / "metrics_freihand.json") in err and "permission denied" in err.lower(), err


def test_cli_turns_an_unusable_output_folder_into_a_one_line_error(keypoint_files, capsys):
    from hands.cli import main

    d, xyz, verts = keypoint_files
    np.savez(d / "pred.npz", xyz=xyz, verts=verts)
    (d / "a_file").write_text("not a folder")
    assert main(["evaluate", str(d / "pred.npz"), str(d / "gt.npz"), "--benchmark", "freihand",
                 "--out", str(d / "a_file" / "sub")]) == 2        # a real OSError, root or not
    err = _one_line_error(capsys)
    assert str(d / "a_file" / "sub") in err, err
