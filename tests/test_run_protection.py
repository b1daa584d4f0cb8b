"""A finished training run is never silently replaced, and every training or stage setting is typed before any
work starts (issue 24): a fresh run over a folder holding a run is refused unless --resume or --overwrite,
--max-steps 0 is refused, and a wrong type in a TrainConfig, a stage setting or a model option is one line
naming it."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from sketch_data import write_sketch_dataset  # noqa: E402
from test_trainer import ToyTask  # noqa: E402

from pretrain.trainer import TrainConfig, Trainer  # noqa: E402


def _toy(out, **kw):
    base = dict(task="toy", out=str(out), epochs=2, batch_size=8, lr=1e-2, milestones=[], num_workers=0,
                progress=False, checkpoint_every=3, keep_checkpoints=0, log_every=1)
    base.update(kw)
    cfg = TrainConfig(**base)
    return Trainer(cfg, task=ToyTask(cfg))


def test_a_fresh_run_over_a_finished_one_is_refused_and_the_old_run_left_whole(tmp_path):
    first = _toy(tmp_path)
    first.fit()
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").glob("*.pt")}
    scalars = (tmp_path / "scalars.csv").read_text()
    with pytest.raises(ValueError, match=r"holds a run \(step 12\): continue it with --resume, or replace it"):
        _toy(tmp_path, max_steps=5).fit()
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").glob("*.pt")} == before
    assert (tmp_path / "scalars.csv").read_text() == scalars


def test_overwrite_replaces_the_run_whole_and_resume_continues_it(tmp_path):
    _toy(tmp_path).fit()
    assert len(list((tmp_path / "checkpoints").glob("step_*.pt"))) == 4     # steps 3, 6, 9 and the end (12)
    result = _toy(tmp_path, max_steps=5).fit(overwrite=True)
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert result.step == 5 and steps == ["step_0000003.pt", "step_0000005.pt"]   # none of the former run's
    rows = (tmp_path / "scalars.csv").read_text().strip().splitlines()[1:]
    assert max(int(r.split(",")[0]) for r in rows) == 5
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert last["step"] == 5
    assert _toy(tmp_path).fit(resume=tmp_path).step == 12


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    import test_pretrain  # noqa: F401  registers the "tiny" encoder

    return write_sketch_dataset(tmp_path_factory.mktemp("sketch") / "data", poses=range(3), views=range(4), size=64)


def _pretrain(sketch, out, *extra):
    from hands.cli import main

    return main(["pretrain", "--encoder", "tiny", "--data", str(sketch), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--input-size", "64", "--heldout-poses", "2", "--no-progress",
                 "--loader-workers", "0", *extra])


def test_the_pretrain_command_refuses_a_finished_folder_and_overwrite_and_resume_contradict(sketch, tmp_path,
                                                                                              capsys):
    out = tmp_path / "run"
    assert _pretrain(sketch, out) == 0
    encoder = (out / "encoder.pt").read_bytes()
    assert _pretrain(sketch, out, "--max-steps", "2") == 2
    assert re.search(r"run holds a run \(step \d+\): continue it with --resume", capsys.readouterr().err)
    assert (out / "encoder.pt").read_bytes() == encoder
    assert _pretrain(sketch, out, "--resume", "--overwrite") == 2
    assert "contradict" in capsys.readouterr().err
    assert _pretrain(sketch, out, "--max-steps", "1", "--overwrite") == 0
    assert "trained 1 steps" in capsys.readouterr().out


def test_max_steps_zero_is_refused_not_a_whole_epoch(sketch, tmp_path, capsys):
    assert _pretrain(sketch, tmp_path / "zero", "--max-steps", "0") == 2
    assert "--max-steps 0: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "zero" / "checkpoints").exists()


def test_wrong_types_are_one_line_errors_naming_the_setting(tmp_path, capsys):
    from hands.cli import main

    with pytest.raises(ValueError, match=r"invalid training settings: epochs='abc' \(expected an integer\); "
                                         r"lr='fast' \(expected a number\)"):
        TrainConfig(epochs="abc", lr="fast").check(require_task=False)
    t = time.time()
    assert main(["run", "demo", "--out", str(tmp_path / "demo"), "--set", "render.resolution=abc"]) == 2
    err = capsys.readouterr()
    assert "resolution='abc' (expected an integer)" in err.err and "[1/" not in err.out
    assert time.time() - t < 10 and not (tmp_path / "demo" / "summary.json").exists()


def test_an_unknown_model_option_names_the_option(tmp_path, capsys):
    from hands.cli import main

    assert main(["finetune", "--data", f"complement:{tmp_path}", "--out", str(tmp_path / "ft"),
                 "--model-option", "nosuch=1", "--no-progress"]) == 2
    assert "model 'mobrecon_densestack' has no option 'nosuch'" in capsys.readouterr().err


def test_training_on_a_ray_address_that_does_not_answer_fails_in_bounded_time(sketch, tmp_path, monkeypatch, capsys):
    """--address 127.0.0.1:1 (nothing listens there) retried forever; now the port is probed first."""
    monkeypatch.setenv("HANDS_RAY_CONNECT_TIMEOUT", "1")
    t = time.time()
    assert _pretrain(sketch, tmp_path / "ray", "--address", "127.0.0.1:1") == 2
    assert "Ray address 127.0.0.1:1 does not answer" in capsys.readouterr().err and time.time() - t < 10


def test_end_of_run_files_are_whole_or_the_former_ones(tmp_path, monkeypatch):
    """config.json, metrics.json, splits.json, a pipeline's summary: written to a temporary name and renamed,
    so a full disk leaves the former file (and no temporary one) and is one line naming the file."""
    import errno

    from pretrain import checkpoint
    from pretrain.checkpoint import WriteError, atomic_write_text

    path = tmp_path / "metrics.json"
    atomic_write_text(path, '{"step": 10}')

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", full_disk)
    with pytest.raises(WriteError, match=r"^cannot write .*metrics\.json: no space left on device$"):
        atomic_write_text(path, '{"step": 20}')
    assert path.read_text() == '{"step": 10}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
