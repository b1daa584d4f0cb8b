"""Encoders (pretrain/encoders), the hook-based complexity counter (pretrain/complexity.py)
and `hands model-stats` (hands/cli_stats.py).

Measured at 128x128 with pretrain.complexity, Table 1 scope (everything but `map_decoder`),
against MobRecon's Table 1:

    densestack       6.58M / 373.0M   (paper 6.6M / 373.0M)    released structure, re-derived
    ghoststack       5.07M / 96.2M    (paper 5.0M / 96.2M)     our design, GhostNet blocks at 1.2x
    resnet18_stack   25.02M / 2389.2M (paper 25.2M / 2391.3M)  CMR's two-stage stack
    mobilenet_stack  1.73M / 103.8M   (paper 1.7M / 100.2M)    our design, MobileNet-v2 at 0.8x
"""
from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pretrain.complexity import count_complexity
from pretrain.encoders import PAPER_TABLE1, REGISTRY, EncoderFeatures, build_encoder, table1_scope

ROOT = Path(__file__).resolve().parents[1]
ALL = ["densestack", "ghoststack", "resnet18_stack", "mobilenet_stack", "resnet18", "resnet34", "resnet50"]
STACKS = ["densestack", "ghoststack", "resnet18_stack", "mobilenet_stack"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks are small; one intra-op thread keeps the timings steady on a shared machine
    (OpenMP barriers slow down badly when the cores are busy with other processes)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_registry_lists_every_encoder():
    assert sorted(REGISTRY) == sorted(ALL)
    for name in ALL:
        assert isinstance(build_encoder(name), nn.Module)


def test_build_errors_are_clear():
    with pytest.raises(KeyError, match="densestack"):
        build_encoder("densestak")
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("nope")
    with pytest.raises(ValueError, match="multiple of 32"):
        build_encoder("densestack", input_size=100)
    assert build_encoder("DenseStack").__class__.__name__ == "DenseStack"
    assert build_encoder("ResNet18-Stack").__class__.__name__ == "ResNet18Stack"


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("name", ALL)
def test_output_shapes(name, size):
    torch.manual_seed(0)
    enc = build_encoder(name, input_size=size).eval()
    with torch.no_grad():
        out = enc(torch.rand(1, 3, size, size))
    assert isinstance(out, EncoderFeatures)
    assert out.latent.shape == (1, enc.latent_channels, size // 32, size // 32)
    assert out.maps2d.shape == (1, enc.map_channels, size // 8, size // 8)
    assert len(out.skips) == 5 and len(enc.skip_channels) == 5
    for i, (skip, c) in enumerate(zip(out.skips, enc.skip_channels), start=1):
        assert skip.shape == (1, c, size // 2 ** i, size // 2 ** i), (name, i)
    for t in [out.latent, out.maps2d, *out.skips]:
        assert torch.isfinite(t).all()


# ---------------------------------------------------------------- the counter


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)                           # bias
        self.gconv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 4, 1)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.fc = nn.Linear(200, 10)
        self.register_buffer("proj", torch.ones(10, 6))                     # a buffer: no parameters
        self.w_fn = nn.Parameter(torch.ones(5, 6))                          # used through F.linear

    def forward(self, x):
        x = self.bn(self.dw(self.gconv(F.relu(self.conv(x)))))
        x = self.up(self.pw(x))
        x = self.fc(x.flatten(1))
        x = x @ self.proj                                                   # (B, 10) @ (10, 6)
        return F.linear(x, self.w_fn)                                       # (B, 6) -> (B, 5)


def test_counter_against_hand_counts():
    # conv 3->8 3x3 on 10x10: 8*10*10 outputs * 3*9; grouped 8->16 (groups 4) stride 2: 16*5*5 * 2*9;
    # depth-wise 16: 16*5*5 * 9; point-wise 16->4: 4*5*5 * 16; transposed 4->2 k2 s2: 4*5*5 inputs * 2*4;
    # linear 200->10; matmul (10 -> 6); functional linear 6 -> 5
    expected_macs = (8 * 100 * 27) + (16 * 25 * 18) + (16 * 25 * 9) + (4 * 25 * 16) + (100 * 8) + 2000 + 60 + 30
    expected_params = (8 * 27 + 8) + 16 * 2 * 9 + 16 * 9 + 32 + (16 * 4 + 4) + (4 * 2 * 4 + 2) + (2000 + 10) + 30
    net = Tiny()
    for batch in (1, 3):
        c = count_complexity(net, inputs=torch.rand(batch, 3, 10, 10))
        assert c.macs == expected_macs == 36890
        assert c.params == expected_params == 2830
    c = count_complexity(net, inputs=torch.rand(1, 3, 10, 10))
    assert c.by_module["conv"] == (224, 21600)
    assert c.by_module["gconv"] == (288, 7200)
    assert c.by_module["bn"] == (32, 0)
    assert c.by_module["fc"] == (2010, 2000)
    assert c.by_module[""] == (30, 90)            # the root's own parameter and functional products
    assert c.without(["fc", "up"]).macs == expected_macs - 2000 - 800
    assert net.training  # the mode is restored


def test_counter_restores_eval_mode_and_removes_hooks():
    net = Tiny().eval()
    count_complexity(net, inputs=torch.rand(1, 3, 10, 10))
    assert not net.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


@pytest.mark.parametrize("name", STACKS)
def test_table1_figures(name):
    enc = build_encoder(name, input_size=128)
    c = count_complexity(enc, 128).without(table1_scope(enc))
    params, macs = PAPER_TABLE1[name]
    assert abs(c.params / params - 1) <= 0.10, f"{name}: {c.params / 1e6:.2f}M parameters, paper {params / 1e6}M"
    assert abs(c.macs / macs - 1) <= 0.15, f"{name}: {c.macs / 1e6:.1f}M Mult-Adds, paper {macs / 1e6}M"


@pytest.mark.parametrize("name", ["densestack", "resnet18_stack"])
def test_rederived_structures_match_closely(name):
    """The two structures re-derived from released code match Table 1 to 1 %."""
    enc = build_encoder(name, input_size=128)
    c = count_complexity(enc, 128).without(table1_scope(enc))
    params, macs = PAPER_TABLE1[name]
    assert abs(c.params / params - 1) <= 0.01 and abs(c.macs / macs - 1) <= 0.01


def test_densestack_parts_match_tables_2_and_4():
    """Table 2's MapReg 2D part (1.4M / 47.5M) = stack 2's decoder (+ a 24->21 conv and the MLP,
    0.04M / 1.0M); with Table 1 it makes Table 4's model without its 3D decoder (420.4M)."""
    enc = build_encoder("densestack")
    c = count_complexity(enc, 128)
    dec_params, dec_macs = c.by_module["map_decoder"]
    assert abs(dec_params / 1.4e6 - 1) < 0.05
    assert abs((dec_macs + 0.99e6) / 47.5e6 - 1) < 0.01
    assert abs((c.macs + 0.99e6) / 420.4e6 - 1) < 0.01


# ---------------------------------------------------------------- training behaviour


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_the_first_layer(name):
    torch.manual_seed(0)
    enc = build_encoder(name, input_size=64).train()
    out = enc(torch.rand(2, 3, 64, 64))
    loss = out.latent.square().mean() + out.maps2d.square().mean()
    loss.backward()
    first = next(m for m in enc.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 3
    assert first.weight.grad is not None and torch.isfinite(first.weight.grad).all()
    assert first.weight.grad.abs().sum() > 0
    unused = [n for n, p in enc.named_parameters() if p.grad is None]
    assert not unused, f"parameters outside the graph: {unused[:5]}"
    copy.deepcopy(enc)  # no tensors of the last forward kept on the module (EMA copies, checkpoints)


def test_resnet18_stack_stage1_heatmaps():
    enc = build_encoder("resnet18_stack", input_size=64).eval()
    with torch.no_grad():
        feats, heat = enc.forward_with_heatmaps(torch.rand(2, 3, 64, 64))
        again = enc(torch.rand(2, 3, 64, 64))
    assert heat.shape == (2, 21, 32, 32) and 0 <= heat.min() and heat.max() <= 1
    assert feats.latent.shape == again.latent.shape


@pytest.mark.parametrize("name, params, macs", [
    # torchvision's resnet18/34/50 without the 1000-class fc; Mult-Adds scale with (128/224)^2 from
    # the usual 1.82G / 3.67G / 4.11G at 224
    ("resnet18", 11.69e6 - 0.513e6, 1.82e9 * (128 / 224) ** 2),
    ("resnet34", 21.80e6 - 0.513e6, 3.67e9 * (128 / 224) ** 2),
    ("resnet50", 25.56e6 - 2.049e6, 4.11e9 * (128 / 224) ** 2),
])
def test_plain_resnets_have_the_usual_size(name, params, macs):
    c = count_complexity(build_encoder(name), 128)
    assert abs(c.params / params - 1) < 0.005
    assert abs(c.macs / macs - 1) < 0.02


@pytest.mark.parametrize("name", ALL)
def test_eval_mode_is_deterministic(name):
    torch.manual_seed(1)
    enc = build_encoder(name, input_size=64)
    enc.train()
    enc(torch.rand(4, 3, 64, 64))  # move the BN running statistics away from their init
    enc.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b, single = enc(x), enc(x), enc(x[:1])
    assert torch.equal(a.latent, b.latent) and torch.equal(a.maps2d, b.maps2d)
    assert all(torch.equal(s, t) for s, t in zip(a.skips, b.skips))
    # eval mode does not mix the samples of a batch
    torch.testing.assert_close(single.latent, a.latent[:1], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(single.maps2d, a.maps2d[:1], rtol=1e-3, atol=1e-4)


def test_reorg_is_space_to_depth():
    from pretrain.encoders.layers import Reorg

    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    y = Reorg()(x)
    assert y.shape == (2, 12, 2, 3)
    for c in range(3):
        for dy in range(2):
            for dx in range(2):
                assert torch.equal(y[:, 4 * c + 2 * dy + dx], x[:, c, dy::2, dx::2])


def test_ghost_module_makes_half_its_channels_cheaply():
    from pretrain.encoders.layers import GhostModule

    g = GhostModule(16, 15)
    assert g(torch.rand(1, 16, 8, 8)).shape == (1, 15, 8, 8)
    c = count_complexity(g, inputs=torch.rand(1, 16, 8, 8))
    # primary 1x1 16 -> 8 plus a depth-wise 3x3 for the 8 ghosts, against 16 -> 15 for a plain conv
    assert c.macs == 64 * (8 * 16 + 8 * 9) < 64 * 15 * 16


# ---------------------------------------------------------------- hands model-stats


def _stats_parser():
    from hands import cli_stats

    parser = argparse.ArgumentParser(prog="hands")
    cli_stats.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_model_stats_prints_every_encoder(capsys):
    args = _stats_parser().parse_args(["model-stats", "--input-size", "64"])
    args.fn(args)
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[1]: line.split() for line in lines if line.startswith("encoder ")}
    assert sorted(rows) == sorted(ALL)
    assert all(r[2] == "64" for r in rows.values())


def test_model_stats_only_one_with_paper_figures(capsys):
    args = _stats_parser().parse_args(["model-stats", "--only", "densestack"])
    args.fn(args)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("encoder "))
    assert row.split()[:7] == ["encoder", "densestack", "128", "8.01M", "419.5M", "6.58M", "373.0M"]
    assert "6.6M / 373.0M" in row
    with pytest.raises(ValueError, match="not a registered encoder"):
        bad = _stats_parser().parse_args(["model-stats", "--only", "nosuch"])
        bad.fn(bad)


def test_cli_module_imports_without_torch():
    code = "import sys, hands.cli_stats; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
