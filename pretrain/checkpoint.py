"""Training checkpoints, RNG states, and the pretrained-encoder file the fine-tuning models load.

Every file here holds only tensors and plain Python values, so all of them load
with `torch.load(..., weights_only=True)` (no arbitrary pickles), and every file
is written to a temporary name and renamed (a kill never leaves half a file).

Training checkpoint (OUT/checkpoints/step_NNNNNNN.pt, and last.pt = the newest):

    format 'hands-checkpoint/1', config (TrainConfig as a dict), step, epoch,
    steps_per_epoch, train_size, model, optimizer, scaler (or None),
    rng (per rank: python / numpy / torch / cuda states), log_acc (the running
    sums of the scalars since the last logged row), history

Pretrained encoder (OUT/encoder.pt), what `load_pretrained_encoder` reads:

    format 'hands-encoder/1', encoder (registry name), input_size, state_dict,
    and optional extras (task, step, metrics summary)
"""
from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import numpy as np
import torch

from .encoders import build_named_encoder

CHECKPOINT_FORMAT = "hands-checkpoint/1"
ENCODER_FORMAT = "hands-encoder/1"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


def atomic_save(obj, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def safe_load(path, what: str = "checkpoint", map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a {what} (expected a dict, got {type(data).__name__})")
    return data


# ---------------------------------------------------------------- RNG states as plain values

def rng_state() -> dict:
    """This process's python, numpy and torch (and CUDA) generator states, weights_only-loadable."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": list(_tuplify(random.getstate())),
             "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _tuplify(x):
    return [_tuplify(v) for v in x] if isinstance(x, (tuple, list)) else x


def _untuplify(x):
    return tuple(_untuplify(v) for v in x) if isinstance(x, list) else x


def set_rng_state(state: dict) -> None:
    random.setstate(_untuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- training checkpoints

def checkpoint_dir(out) -> Path:
    return Path(out) / CHECKPOINT_DIR


def save_checkpoint(out, state: dict, keep: int = 3) -> Path:
    """Write step_NNNNNNN.pt and last.pt; keep the `keep` newest step files (0: keep all)."""
    d = checkpoint_dir(out)
    state = {"format": CHECKPOINT_FORMAT, **state}
    path = atomic_save(state, d / f"step_{int(state['step']):07d}.pt")
    atomic_save(state, d / LAST)
    if keep > 0:
        steps = sorted(d.glob("step_*.pt"))
        for old in steps[:-keep]:
            old.unlink(missing_ok=True)
    return path


def find_checkpoint(where) -> Path:
    """A checkpoint file, or the last.pt of a run folder (or of its checkpoints/ folder)."""
    p = Path(where)
    for cand in (p, p / LAST, p / CHECKPOINT_DIR / LAST):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no checkpoint to resume from at {p} (looked for {p / CHECKPOINT_DIR / LAST})")


def load_checkpoint(path) -> dict:
    data = safe_load(path, "training checkpoint")
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a training checkpoint (format {data.get('format')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    missing = [k for k in ("config", "step", "model", "optimizer", "rng") if k not in data]
    if missing:
        raise ValueError(f"{path}: training checkpoint lacks {missing}")
    return data


# ---------------------------------------------------------------- pretrained encoders

def save_encoder(path, encoder: torch.nn.Module, name: str, input_size: int, **extra) -> Path:
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    return atomic_save({"format": ENCODER_FORMAT, "encoder": str(name), "input_size": int(input_size),
                        "state_dict": state, **extra}, path)


def read_encoder_file(path) -> dict:
    data = safe_load(path, "pretrained encoder file")
    if data.get("format") != ENCODER_FORMAT or not {"encoder", "input_size", "state_dict"} <= set(data):
        raise ValueError(f"{path}: not a pretrained encoder file (needs format {ENCODER_FORMAT!r}, "
                         f"'encoder', 'input_size', 'state_dict'; has {sorted(data)})")
    return data


def load_pretrained_encoder(path, map_location="cpu", strict: bool = True):
    """The encoder saved in `path` (OUT/encoder.pt of `hands pretrain`), built by its registry name.

    Returns the encoder module (in train mode, on `map_location`). A state dict that
    does not fit the named encoder is an error naming the file and the first keys.
    """
    data = read_encoder_file(path)
    encoder = build_named_encoder(data["encoder"], int(data["input_size"]))
    try:
        encoder.load_state_dict(data["state_dict"], strict=strict)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit encoder {data['encoder']!r} at input size "
                         f"{data['input_size']}: {str(err)[:300]}") from None
    return encoder.to(map_location)
