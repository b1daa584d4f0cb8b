"""Is a file a usable environment map? Read it fully and say why not.

An environment is usable when it decodes completely (a truncated download
fails here, not in the middle of a render), holds RGB, has finite values, and
is equirectangular: width = 2 * height, within ASPECT_TOLERANCE.
Results are cached per (path, size, mtime), so a catalog built twice in one
process reads each file once.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from .rgbe import RgbeError, read_rgbe

EXTENSIONS = (".hdr", ".exr")
ASPECT_TOLERANCE = 0.02  # relative deviation of width / height from 2
EXR_MAGIC = b"\x76\x2f\x31\x01"


class HdriError(ValueError):
    """An environment (file, id or setting) that cannot be used; the message names it."""


@contextlib.contextmanager
def captured_output(sink: list):
    """Collect what native code prints while the block runs: OpenEXR prints its reasons through
    Python's sys.stdout (pybind11), Blender to the file descriptors 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    text = io.StringIO()
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            sink.append(text.getvalue() + tmp.read().decode("utf-8", "replace"))


def _exr_reason(path: Path, exc: Exception | None, output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    # OpenEXR's own message is the most specific one (e.g. "found corrupt leader ... scanline 16")
    detail = next((ln.split(": ", 1)[-1] for ln in lines if str(path) in ln), None) or (lines[0] if lines else None)
    size = path.stat().st_size
    base = f"unreadable or truncated OpenEXR file ({size} bytes)"
    if detail:
        return f"{base}: {detail}"
    return f"{base}: {exc}" if exc else base


def read_exr(path) -> np.ndarray:
    """Read the RGB of an .exr's first part -> float32 (H, W, 3). Raises HdriError with the reason."""
    import OpenEXR

    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != EXR_MAGIC:
        raise HdriError(f"{path}: not an OpenEXR file (starts with {magic!r}, expected {EXR_MAGIC!r})")
    out: list = []
    exc = None
    try:
        with captured_output(out):
            with OpenEXR.File(str(path), separate_channels=True) as f:
                channels = {name: ch.pixels for name, ch in f.parts[0].channels.items()}
    except Exception as err:  # OpenEXR raises RuntimeError, or IndexError when no part could be read
        exc = err
    if exc is not None:
        raise HdriError(f"{path}: {_exr_reason(path, exc, out[0] if out else '')}")
    missing = [c for c in "RGB" if c not in channels]
    if "Y" in channels and missing == list("RGB"):  # a luminance-only map is still an environment
        pixels = np.repeat(np.asarray(channels["Y"], np.float32)[..., None], 3, axis=2)
    elif missing:
        raise HdriError(f"{path}: no {'/'.join(missing)} channel (channels: {', '.join(sorted(channels)) or 'none'})")
    else:
        pixels = np.stack([np.asarray(channels[c], np.float32) for c in "RGB"], axis=-1)
    return pixels


def read_environment(path) -> np.ndarray:
    """Any supported environment file -> float32 (H, W, 3), linear. Raises HdriError with the reason."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise HdriError(f"{path}: not an environment file (extension {suffix or 'none'}; expected .hdr or .exr)")
    try:
        if suffix == ".hdr":
            return read_rgbe(path)
        return read_exr(path)
    except RgbeError as err:
        raise HdriError(str(err)) from None
    except OSError as err:
        raise HdriError(f"{path}: cannot read: {err.strerror or err}") from None


def check_image(img: np.ndarray) -> str | None:
    """The reason a decoded map is unusable, or None."""
    h, w = img.shape[:2]
    if abs(w / h - 2.0) > 2.0 * ASPECT_TOLERANCE:
        return (f"wrong aspect: {w}x{h} is {w / h:.3f}:1; an equirectangular map is 2:1 "
                f"(tolerance {100 * ASPECT_TOLERANCE:.0f} %)")
    bad = ~np.isfinite(img)
    if bad.any():
        return f"{int(bad.any(axis=-1).sum())} pixels are NaN or infinite"
    # tiny negative values are normal (lossy DWA compression, as in Blender's own maps): not checked
    return None


@lru_cache(maxsize=256)
def _inspect(path: str, size: int, mtime_ns: int) -> tuple[str | None, tuple[int, int] | None]:
    try:
        img = read_environment(path)
    except HdriError as err:
        return str(err).removeprefix(f"{path}: "), None
    return check_image(img), img.shape[:2]


def inspect_file(path) -> tuple[str | None, tuple[int, int] | None]:
    """-> (reason it is unusable or None, (height, width) when it decodes). Cached per file version."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        return f"cannot read: {err.strerror or err}", None
    return _inspect(str(path), st.st_size, st.st_mtime_ns)


def validate_file(path) -> str | None:
    """The reason `path` cannot be used as an environment map, or None when it can."""
    return inspect_file(path)[0]
