"""A contact sheet of the catalog: what the renders will use as background and light.

File maps are decoded here (area-averaged down to the thumbnail); skies have
no file, so they are rendered by Cycles through an equirectangular panoramic
camera oriented so that its picture has the same layout as a map file (centre
column = +X, top row = zenith). Both are tone mapped the same way: exposure,
Reinhard x / (1 + x) per channel, sRGB encoding. The exposure is fixed, not
adapted per map, so a dark map looks dark, as it will in the renders.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .catalog import HdriEntry, resolve_path
from .validate import HdriError, read_environment

THUMB = (256, 128)  # width, height: 2:1 like the maps
LABEL_H = 30  # two text lines under each thumbnail
PREVIEW_SCENE = "hdri_preview"


def tonemap(img: np.ndarray, exposure: float = 0.0) -> np.ndarray:
    """Linear float (H, W, 3) -> uint8 sRGB: 2**exposure, Reinhard per channel, sRGB curve."""
    x = np.maximum(np.asarray(img, np.float64) * 2.0 ** exposure, 0.0)
    x = x / (1.0 + x)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.round(srgb * 255), 0, 255).astype(np.uint8)


def downsample(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area average (box filter) of a float (H, W, 3) image to (height, width, 3)."""
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), "F")
                        .resize((width, height), Image.BOX)) for c in range(3)]
    return np.stack(chans, axis=-1)


class PanoramaRenderer:
    """A small Cycles scene of its own with an equirectangular camera at the origin."""

    def __init__(self, width: int = THUMB[0], height: int = THUMB[1], samples: int = 4):
        import bpy

        self.bpy = bpy
        scene = bpy.data.scenes.get(PREVIEW_SCENE) or bpy.data.scenes.new(PREVIEW_SCENE)
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = False
        scene.cycles.filter_width = 0.01  # one pixel = one direction, no blur across pixels
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100
        settings = scene.render.image_settings
        settings.file_format, settings.color_depth, settings.exr_codec = "OPEN_EXR", "32", "NONE"
        cam = scene.camera
        if cam is None:
            data = bpy.data.cameras.new(PREVIEW_SCENE)
            data.type, data.panorama_type = "PANO", "EQUIRECTANGULAR"
            cam = bpy.data.objects.new(PREVIEW_SCENE, data)
            scene.collection.objects.link(cam)
            scene.camera = cam
        # looking along +X with +Z up: the rendered picture has the map files' layout
        cam.location = (0.0, 0.0, 0.0)
        cam.rotation_euler = (math.pi / 2, 0.0, -math.pi / 2)
        self.scene = scene

    def render(self, entry: HdriEntry, rotation_deg: float = 0.0, strength: float = 1.0) -> np.ndarray:
        """The environment as seen by Cycles: linear float32 (H, W, 3)."""
        from .blender_world import apply_world

        apply_world(self.scene, entry, rotation_deg, strength)
        return render_still(self.scene)


def render_still(scene) -> np.ndarray:
    """Render `scene` (Cycles) to a temporary 32-bit EXR and read its RGB back: float32 (H, W, 3)."""
    import bpy

    from .validate import captured_output, read_exr

    settings = scene.render.image_settings
    settings.file_format, settings.color_depth = "OPEN_EXR", "32"
    fd, tmp = tempfile.mkstemp(suffix=".exr", prefix="hdri_render_")
    os.close(fd)
    old = scene.render.filepath
    try:
        scene.render.filepath = tmp
        log: list = []
        try:
            with captured_output(log):  # Blender prints a line per render; keep it for errors only
                bpy.ops.render.render(write_still=True, scene=scene.name)
        except RuntimeError as err:
            raise HdriError(f"rendering scene {scene.name!r} failed: {err}\n{''.join(log)}") from None
        return read_exr(tmp)
    finally:
        scene.render.filepath = old
        Path(tmp).unlink(missing_ok=True)


def thumbnail(entry: HdriEntry, renderer: PanoramaRenderer | None = None,
              size: tuple[int, int] = THUMB) -> np.ndarray:
    """Linear float32 (h, w, 3) picture of an entry; skies need a renderer of that size."""
    if entry.source == "sky":
        if renderer is None:
            raise HdriError(f"{entry.id}: a sky thumbnail needs a PanoramaRenderer")
        return renderer.render(entry)
    return downsample(read_environment(resolve_path(entry)), *size)


def contact_sheet(entries: list[HdriEntry], columns: int = 4, exposure: float = 0.0,
                  samples: int = 4, size: tuple[int, int] = THUMB) -> Image.Image:
    """One labelled thumbnail per entry (id; split), row by row."""
    if not entries:
        raise HdriError("no environments to put on a sheet")
    w, h = size
    renderer = PanoramaRenderer(w, h, samples) if any(e.source == "sky" for e in entries) else None
    columns = max(1, min(columns, len(entries)))
    rows = (len(entries) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + LABEL_H)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, entry in enumerate(entries):
        x, y = (i % columns) * w, (i // columns) * (h + LABEL_H)
        sheet.paste(Image.fromarray(tonemap(thumbnail(entry, renderer, size), exposure)), (x, y))
        draw.text((x + 4, y + h + 2), entry.id, fill=(20, 20, 20))
        draw.text((x + 4, y + h + 15), f"{entry.split}  ({entry.source})",
                  fill=(170, 40, 40) if entry.split == "heldout" else (60, 60, 60))
    return sheet
