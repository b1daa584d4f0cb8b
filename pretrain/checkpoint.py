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

import errno
import os
import random
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from .encoders import build_named_encoder

CHECKPOINT_FORMAT = "hands-checkpoint/1"
ENCODER_FORMAT = "hands-encoder/1"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


class WriteError(OSError):
    """A file could not be written (disk full, read-only folder, ...): one line naming the path and the cause.
    `errno` is set when the cause is known, `filename` is the path; nothing of the file is left behind."""

    def __init__(self, path, cause: str, code: int | None = None):
        super().__init__(f"cannot write {path}: {cause}")
        self.errno, self.filename, self.cause = code, str(path), cause

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):  # survives pickling (multiprocessing, Ray)
        return type(self), (self.filename, self.cause, self.errno)


# what torch's zip writer (caffe2 inline_container.cc) says when a write fails: "[enforce fail at
# inline_container.cc:672] . unexpected pos 704 vs 598" on a full disk, "... open file failed with
# strerror: Permission denied" when the file cannot be created
_TORCH_WRITER = ("inline_container", "PytorchStreamWriter", "enforce fail", "file write failed", "unexpected pos")
_CAUSES = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
           errno.EROFS: "read-only file system", errno.EACCES: "permission denied (a read-only folder?)",
           errno.EPERM: "operation not permitted (a read-only folder?)"}


def _free_bytes(folder: Path):
    for p in (folder, *folder.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def write_error(path, err: BaseException, folder=None) -> WriteError | None:
    """The one-line WriteError for a failed write of `path`, or None when `err` is no write failure
    (an OSError, or a RuntimeError of torch's zip writer)."""
    path = Path(path)
    code = None
    if isinstance(err, OSError):
        code = err.errno
        cause = _CAUSES.get(code) or (err.strerror or str(err) or type(err).__name__).lower()
    elif isinstance(err, RuntimeError) and any(k in str(err) for k in _TORCH_WRITER):
        text = " ".join(str(err).split())
        m = re.search(r"strerror: ([^.]+)", text)
        if m:  # the OS message torch passes on
            cause = m.group(1).strip().lower()
            code = next((c for c, v in _CAUSES.items() if v.startswith(cause)), None)
            cause = _CAUSES.get(code, cause)
        else:  # a short write: on a full disk (ENOSPC) or an I/O error
            free = _free_bytes(Path(folder) if folder is not None else path.parent)
            if free is not None and free < (16 << 20):
                code, cause = errno.ENOSPC, _CAUSES[errno.ENOSPC]
            else:
                cause = "the file could not be written in full (a full disk or an I/O error" + (
                    f"; {free / 2**20:.0f} MiB free now)" if free is not None else ")")
    else:
        return None
    return WriteError(path, cause, code)


def atomic_save(obj, path) -> Path:
    """torch.save to a temporary name, then rename: a kill or a failed write never leaves half a file.
    A write failure (disk full, read-only folder, ...) is a WriteError naming `path` and the cause."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        wrapped = write_error(path, err)
        if wrapped is None:
            raise
        raise wrapped from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def atomic_write_text(path, text: str) -> Path:
    """`text` into `path` through synth.shards' atomic writer, so a run's end-of-run files (config.json,
    metrics.json, ...) are whole or the former ones; a failed write is a WriteError naming `path`."""
    from synth.shards import atomic_write

    path = Path(path)
    data = text.encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(data))
    except OSError as err:
        raise write_error(path, err) from None
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
