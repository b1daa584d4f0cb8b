"""Radiance .hdr (RGBE) files: a reader that notices truncation, and a small writer.

Format (Greg Ward's Radiance picture file):

    #?RADIANCE                  (or #?RGBE)
    FORMAT=32-bit_rle_rgbe      (other header lines: EXPOSURE=, GAMMA=, comments)
                                (an empty line ends the header)
    -Y H +X W                   (the resolution line: H rows top to bottom, W columns)
    H scanlines of W pixels

A scanline is either flat (W * 4 bytes, R G B E per pixel) or new-style
run-length encoded: the bytes 2 2 W>>8 W&255, then the four channels one after
the other, each as runs (count > 128: repeat the next byte count - 128 times)
and literals (count <= 128: copy the next count bytes).

Decoding follows Radiance's colr_color (and Blender's loader, so what we look
at is what Blender renders): a pixel (m_r, m_g, m_b, e) with e > 0 is
(m + 0.5) * 2**(e - 136) per channel; e == 0 is black. The 0.5 puts the value
in the middle of the mantissa's quantisation step. EXPOSURE= lines are
ignored, as Blender ignores them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MAGICS = (b"#?RADIANCE", b"#?RGBE")
FORMAT = "32-bit_rle_rgbe"
MAX_HEADER = 64 * 1024  # a header longer than this is not a picture header


class RgbeError(ValueError):
    """The file is not a readable Radiance picture; the message says why."""


def _parse_header(buf: bytes) -> tuple[int, int, bool, bool, int]:
    """-> (height, width, flip_y, flip_x, offset of the first scanline)."""
    if not buf.startswith(MAGICS):
        head = buf[:16]
        raise RgbeError(f"not a Radiance picture (starts with {head!r}, expected '#?RADIANCE' or '#?RGBE')")
    end = buf.find(b"\n\n", 0, MAX_HEADER)
    if end < 0:
        if len(buf) < MAX_HEADER:
            raise RgbeError(f"truncated: the header never ends (file is {len(buf)} bytes)")
        raise RgbeError(f"no end of header (empty line) in the first {MAX_HEADER} bytes")
    fmt = None
    for line in buf[:end].split(b"\n")[1:]:
        if line.startswith(b"FORMAT="):
            fmt = line[7:].decode("ascii", "replace").strip()
    if fmt is not None and fmt != FORMAT:
        raise RgbeError(f"unsupported FORMAT={fmt} (only {FORMAT})")
    eol = buf.find(b"\n", end + 2)
    if eol < 0:
        raise RgbeError("truncated: no resolution line after the header")
    tokens = buf[end + 2:eol].split()
    try:
        ya, h, xa, w = tokens[0].decode(), int(tokens[1]), tokens[2].decode(), int(tokens[3])
    except (IndexError, ValueError, UnicodeDecodeError):
        raise RgbeError(f"bad resolution line {buf[end + 2:eol][:40]!r} (expected '-Y H +X W')") from None
    # The Y-major orders are images stored row by row; X-major (transposed) ones are not supported.
    if ya not in ("-Y", "+Y") or xa not in ("+X", "-X"):
        raise RgbeError(f"unsupported resolution line {buf[end + 2:eol][:40]!r} (expected '-Y H +X W')")
    if h <= 0 or w <= 0:
        raise RgbeError(f"bad image size {w}x{h}")
    return h, w, ya == "+Y", xa == "-X", eol + 1


def _rle_channel(buf: bytes, pos: int, out: np.ndarray, y: int) -> int:
    """Decode one channel of a new-style RLE scanline into `out` (uint8, width W); -> new pos."""
    w, n, x = len(out), len(buf), 0
    while x < w:
        if pos >= n:
            raise RgbeError(f"truncated: file ends inside scanline {y}")
        count = buf[pos]
        if count > 128:
            count -= 128
            if x + count > w:
                raise RgbeError(f"corrupt RLE data: a run overflows scanline {y}")
            if pos + 1 >= n:
                raise RgbeError(f"truncated: file ends inside scanline {y}")
            out[x:x + count] = buf[pos + 1]
            pos += 2
        else:
            if count == 0 or x + count > w:
                raise RgbeError(f"corrupt RLE data: bad literal length {count} in scanline {y}")
            if pos + 1 + count > n:
                raise RgbeError(f"truncated: file ends inside scanline {y}")
            out[x:x + count] = np.frombuffer(buf, np.uint8, count, pos + 1)
            pos += 1 + count
        x += count
    return pos


def decode_rgbe(buf: bytes) -> np.ndarray:
    """Radiance picture bytes -> float32 (H, W, 3), top row first. Raises RgbeError."""
    h, w, flip_y, flip_x, pos = _parse_header(buf)
    raw = np.empty((h, w, 4), np.uint8)
    n = len(buf)
    for y in range(h):
        rle = 8 <= w < 32768 and pos + 4 <= n and buf[pos] == 2 and buf[pos + 1] == 2 and buf[pos + 2] < 128
        if rle:
            if (buf[pos + 2] << 8) | buf[pos + 3] != w:
                raise RgbeError(f"corrupt RLE data: scanline {y} says width {(buf[pos + 2] << 8) | buf[pos + 3]}, "
                                f"image is {w} wide")
            pos += 4
            line = np.empty((4, w), np.uint8)
            for c in range(4):
                pos = _rle_channel(buf, pos, line[c], y)
            raw[y] = line.T
        else:
            if pos + 4 * w > n:
                raise RgbeError(f"truncated: file ends inside scanline {y} of {h} ({n} bytes)")
            raw[y] = np.frombuffer(buf, np.uint8, 4 * w, pos).reshape(w, 4)
            pos += 4 * w
    img = rgbe_to_float(raw)
    if flip_y:
        img = img[::-1]
    if flip_x:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def rgbe_to_float(raw: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 RGBE -> (..., 3) float32: (m + 0.5) * 2**(e - 136), 0 where e == 0."""
    e = raw[..., 3:4].astype(np.int32)
    scale = np.where(e > 0, np.ldexp(1.0, e - 136), 0.0)
    return ((raw[..., :3].astype(np.float64) + 0.5) * scale).astype(np.float32)


def float_to_rgbe(img: np.ndarray) -> np.ndarray:
    """(..., 3) float -> (..., 4) uint8, Radiance's setcolr: shared exponent of the largest channel."""
    img = np.maximum(np.asarray(img, np.float64), 0.0)
    v = img.max(axis=-1)
    mant, exp = np.frexp(v)  # v = mant * 2**exp, mant in [0.5, 1)
    ok = v > 1e-32
    scale = np.where(ok, mant * 256.0 / np.where(ok, v, 1.0), 0.0)
    out = np.zeros(img.shape[:-1] + (4,), np.uint8)
    out[..., :3] = np.clip(np.floor(img * scale[..., None]), 0, 255)
    out[..., 3] = np.where(ok, np.clip(exp + 128, 0, 255), 0)
    return out


def read_rgbe(path) -> np.ndarray:
    """Read a .hdr file -> float32 (H, W, 3). Raises RgbeError (naming the file) or OSError."""
    path = Path(path)
    try:
        return decode_rgbe(path.read_bytes())
    except RgbeError as err:
        raise RgbeError(f"{path}: {err}") from None


def _rle_encode(row: np.ndarray) -> bytes:
    """One channel of one scanline as runs (>= 4 equal bytes) and literals (up to 128)."""
    out = bytearray()
    data = row.tobytes()
    n, i, lit_start = len(data), 0, 0
    while i < n:
        j = i
        while j < n and j - i < 127 and data[j] == data[i]:
            j += 1
        if j - i >= 4:
            for s in range(lit_start, i, 128):
                chunk = data[s:min(i, s + 128)]
                out += bytes([len(chunk)]) + chunk
            out += bytes([128 + j - i, data[i]])
            i = lit_start = j
        else:
            i += 1
    for s in range(lit_start, n, 128):
        chunk = data[s:min(n, s + 128)]
        out += bytes([len(chunk)]) + chunk
    return bytes(out)


def encode_rgbe(img: np.ndarray, rle: bool = True) -> bytes:
    """float (H, W, 3) -> Radiance picture bytes (new-style RLE scanlines, or flat)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    h, w = img.shape[:2]
    raw = float_to_rgbe(img)
    out = bytearray(f"#?RADIANCE\nFORMAT={FORMAT}\n\n-Y {h} +X {w}\n".encode())
    if not rle or not 8 <= w < 32768:  # the RLE scheme only covers these widths
        out += raw.tobytes()
        return bytes(out)
    for y in range(h):
        out += bytes([2, 2, w >> 8, w & 255])
        for c in range(4):
            out += _rle_encode(raw[y, :, c])
    return bytes(out)


def write_rgbe(path, img: np.ndarray, rle: bool = True) -> Path:
    path = Path(path)
    path.write_bytes(encode_rgbe(img, rle))
    return path
