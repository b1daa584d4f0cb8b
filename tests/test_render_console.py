"""A quiet console: Blender's per-frame "Saved: '.../frame.exr'" lines and its GPU-library probe warnings
("CUEW initialization failed") are captured at the file-descriptor level (synth.blender_scene.
blender_output_captured); what `hands render` prints is its own summary."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SAFE_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.mark.blender
@pytest.mark.parametrize("device", ["auto", "cpu"])      # auto probes the GPU libraries; cpu meets them later
def test_hands_render_prints_its_summary_and_nothing_of_blenders(device, tmp_path):
    res = subprocess.run([sys.executable, "-m", "hands.cli", "render", "--out", str(tmp_path / "d"), "--poses", "0",
                          "--views", "0,1,2", "--resolution", "64", "--samples", "4", "--skies", "0", "--workers", "0",
                          "--device", device, "--no-progress"], capture_output=True, text=True,
                         env={**os.environ, **SAFE_ENV},
                         timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("shards done 1") and lines[1].startswith("images rendered 3")
    assert "Saved:" not in res.stdout + res.stderr and "initialization failed" not in res.stdout + res.stderr


def test_captured_output_is_replayed_on_stderr_when_the_call_fails(capfd):
    """What the C side wrote while a failing call ran is shown (on stderr): it may say why."""
    import ctypes

    from synth.blender_scene import blender_output_captured

    libc = ctypes.CDLL(None)
    with blender_output_captured():
        libc.printf(b"quiet line\n")
    with pytest.raises(RuntimeError):
        with blender_output_captured():
            libc.printf(b"the reason\n")
            raise RuntimeError("render failed")
    out, err = capfd.readouterr()
    assert "quiet line" not in out + err and "the reason" in err and "the reason" not in out
