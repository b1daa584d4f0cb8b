"""Encoders by name.

    REGISTRY                  the project's encoders: name -> Encoder subclass (or factory taking input_size=...)
    ENCODERS                  REGISTRY plus run-time registrations (tests, experiments); what names resolve in
    build_encoder(name, input_size=128, **kw), build_named_encoder(name, input_size)
    register_encoder(name, factory), encoder_names()
    PAPER_TABLE1              name -> (parameters, Mult-Adds) of MobRecon's Table 1 at 128x128
    table1_scope(encoder)     the top-level modules Table 1 leaves out (the stacked encoders'
                              second-stack decoder, `map_decoder`; see `pretrain.complexity`)

Names are case-insensitive and '-' reads as '_' ("ResNet18-Stack" is resnet18_stack).

| name | what | latent (S=128) | maps2d | skips (S/2 .. S/32) |
| --- | --- | --- | --- | --- |
| densestack | MobRecon's DenseStack | 256 x 4 x 4 | 24 x 16 x 16 | 128, 128, 256, 512, 1024 |
| ghoststack | GhostStack (our design, GhostNet 1.2x blocks) | 256 x 4 x 4 | 24 x 16 x 16 | 20, 28, 48, 136, 192 |
| resnet18_stack | CMR's two-stage ResNet-18 stack | 256 x 4 x 4 | 128 x 16 x 16 | 64, 64, 128, 256, 512 |
| mobilenet_stack | MobileNet-v2 0.8x blocks, LightStack | 256 x 4 x 4 | 24 x 16 x 16 | 16, 24, 24, 80, 256 |
| resnet18 / 34 / 50 | plain ResNets (SAR, camera-space model) | 512 / 512 / 2048 x 4 x 4 | layer2 | stem, layer1..4 |

Module imports are lazy: importing this package does not build anything.
"""
from __future__ import annotations

from ..registry import Registry
from .base import MEAN, STD, Encoder, EncoderFeatures, normalise


class UnknownEncoderError(KeyError, ValueError):
    """An encoder name that is not registered (a KeyError for registries, a ValueError for the CLI)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _key(name) -> str:
    return str(name).strip().lower().replace("-", "_")


REGISTRY = Registry("encoder", {
    "densestack": "pretrain.encoders.densestack:DenseStack",
    "ghoststack": "pretrain.encoders.ghoststack:GhostStack",
    "resnet18_stack": "pretrain.encoders.resnet:ResNet18Stack",
    "mobilenet_stack": "pretrain.encoders.mobilenet:MobileNetStack",
    "resnet18": "pretrain.encoders.resnet:resnet18",
    "resnet34": "pretrain.encoders.resnet:resnet34",
    "resnet50": "pretrain.encoders.resnet:resnet50",
}, normalise=_key, error=UnknownEncoderError)
ENCODERS = Registry("encoder", normalise=_key, error=UnknownEncoderError, base=REGISTRY)

# MobRecon Table 1: "Mult-Adds and #Param are w.r.t. the 2D encoding network", 128x128 input
PAPER_TABLE1 = {
    "densestack": (6.6e6, 373.0e6),
    "ghoststack": (5.0e6, 96.2e6),
    "resnet18_stack": (25.2e6, 2391.3e6),
    "mobilenet_stack": (1.7e6, 100.2e6),
}


def build_encoder(name: str, input_size: int = 128, **kw) -> Encoder:
    """Build an encoder by name: `build_encoder("densestack", input_size=128)`.
    Extra keywords go to the constructor (e.g. `width_mult=1.0` for ghoststack)."""
    return ENCODERS.get(name)(input_size=input_size, **kw)


def build_named_encoder(name: str, input_size: int = 128) -> Encoder:
    """An encoder by name (what encoder files and the trainer store)."""
    return build_encoder(name, input_size=input_size)


def register_encoder(name: str, factory) -> None:
    """Make `factory(input_size=...)` buildable by name (tests, experiments), beside REGISTRY's encoders."""
    ENCODERS.register(name, factory)


def encoder_names() -> list:
    return ENCODERS.names()


def table1_scope(encoder) -> tuple:
    """Names of the top-level modules that MobRecon's Table 1 does not count for this encoder."""
    return tuple(getattr(encoder, "table1_exclude", ()))


__all__ = ["ENCODERS", "REGISTRY", "PAPER_TABLE1", "Encoder", "EncoderFeatures", "MEAN", "STD", "UnknownEncoderError",
           "build_encoder", "build_named_encoder", "encoder_names", "normalise", "register_encoder", "table1_scope"]
