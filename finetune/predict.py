"""`hands predict`: a trained model on image files -> OBJ meshes and pictures with the mesh drawn on.

An image is cropped to a square around the hand: the box you give (x0,y0,x1,y1 in pixels) enlarged
1.5 times as the loaders do, or, without one, the square centred on the image that holds all of it
(so a photo already framed on a hand works as it is). The crop is resized to the model's input
size with the project's pixel-centre convention (finetune/datasets/base.py). The camera: the focal
length you give (pixels of the original image; default the image's longer side, about a 53 degree
field of view) and the principal point at the image centre. The root comes from the predicted 2D
keypoints and root-relative keypoints (finetune/models/root.py), so the drawn mesh lies on the
2D keypoints whatever the focal length; the focal length only sets the depth.

Per image: NAME.obj (the camera-space mesh, metres, OpenCV camera frame) and NAME.png (the image
with the projected mesh blended over it and the 2D keypoints).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .datasets.base import CROP_SCALE, crop_transform, warp_image


def read_rgb(path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header; an unreadable file is a ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None


def check_focal_and_box(width: int, height: int, focal: float | None = None, box=None, image="the image") -> None:
    """A ValueError naming the flag, its value and the image when --focal is not a positive number of
    pixels, or --box is not x0,y0,x1,y1 with x1 > x0, y1 > y0 overlapping the image (a box partly
    outside it is fine: the crop is padded)."""
    size = f"{image} is {width}x{height} pixels"
    if focal is not None:
        try:
            f = float(focal)
        except (TypeError, ValueError):
            f = math.nan
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"--focal {focal if isinstance(focal, str) else format(f, 'g')}: expected a positive "
                             f"focal length in pixels ({size}; the default is its longer side, {max(width, height)})")
    if box is None:
        return
    try:
        b = [float(v) for v in box]
    except (TypeError, ValueError):
        b = []
    text = ",".join(format(v, "g") for v in b) if b else repr(box)
    if len(b) != 4 or not all(math.isfinite(v) for v in b):
        raise ValueError(f"--box {text}: expected four finite numbers x0,y0,x1,y1 in pixels ({size})")
    x0, y0, x1, y1 = b
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"--box {text}: expected x0,y0,x1,y1 with x1 > x0 and y1 > y0 ({size})")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"--box {text} lies wholly outside {image} ({width}x{height} pixels: x from 0 to {width}, "
                         f"y from 0 to {height})")


def image_camera(height: int, width: int, focal: float | None = None) -> np.ndarray:
    f = float(focal) if focal else float(max(height, width))
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def crop_of(height: int, width: int, size: int, box=None) -> np.ndarray:
    """The 3x3 image -> crop map: around `box` (x0, y0, x1, y1) x 1.5, or the square holding the image."""
    if box is None:
        return crop_transform(((width - 1) / 2.0, (height - 1) / 2.0), float(max(height, width)), size)
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box}: expected x0,y0,x1,y1 with x1 > x0 and y1 > y0")
    side = max(x1 - x0, y1 - y0) * CROP_SCALE
    return crop_transform(((x0 + x1) / 2.0, (y0 + y1) / 2.0), side, size)


def write_obj(path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


@torch.no_grad()
def predict_image(model, rgb: np.ndarray, focal: float | None = None, box=None) -> dict:
    """The model on one image: camera-space vertices and keypoints, 2D keypoints in image pixels, K."""
    from .models.base import run_model
    from .models.root import camera_space

    H, W = rgb.shape[:2]
    check_focal_and_box(W, H, focal, box)
    S = int(model.input_size)
    A = crop_of(H, W, S, box)
    crop = warp_image(rgb, A, S)
    K = image_camera(H, W, focal)
    K_crop = A @ K
    image = torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    K_t = torch.as_tensor(K_crop, dtype=torch.float32)[None]
    pred = run_model(model, image, K_t)
    cam = camera_space(pred, K_t)
    uv_crop = pred["keypoints_2d"][0].double().numpy()
    uv = (np.c_[uv_crop, np.ones(len(uv_crop))] @ np.linalg.inv(A).T)[:, :2]
    return {"vertices": cam["vertices_cam"][0].double().numpy(), "keypoints_3d": cam["keypoints_cam"][0].double().numpy(),
            "keypoints_2d": uv, "K": K}


def overlay(rgb: np.ndarray, vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, keypoints_2d: np.ndarray):
    """The image with the shaded mesh blended over it and the 2D skeleton (a PIL image)."""
    from PIL import Image

    from synth.pictures import draw_skeleton
    from synth.raster import rasterize, shade

    H, W = rgb.shape[:2]
    img = rgb.astype(np.float64) / 255.0
    hit = rasterize(vertices, faces, K, (H, W))[1] >= 0
    shaded = shade(vertices, faces, K, (H, W)).astype(np.float64) / 255.0
    img[hit] = 0.65 * shaded[hit] + 0.35 * img[hit]
    out = Image.fromarray((img * 255).round().clip(0, 255).astype(np.uint8))
    draw_skeleton(out, keypoints_2d, radius=max(2.0, max(H, W) / 128))
    return out


def predict_files(model_path, images, out_dir, focal: float | None = None, box=None, echo=print) -> list:
    """Run the model file on image files; returns [(obj path, png path)]."""
    from .models import load_model

    for path in images:  # every image's flags checked before the model loads or anything is written
        check_focal_and_box(*image_size(path), focal=focal, box=box, image=path)
    model = load_model(model_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    faces = model.faces.numpy()
    written = []
    for path in images:
        rgb = read_rgb(path)
        p = predict_image(model, rgb, focal, box)
        stem = Path(path).stem
        obj = write_obj(out / f"{stem}.obj", p["vertices"], faces)
        png = out / f"{stem}.png"
        overlay(rgb, p["vertices"], faces, p["K"], p["keypoints_2d"]).save(png)
        echo(f"{path}: root at {np.round(p['keypoints_3d'][0], 3).tolist()} m -> {obj}, {png}")
        written.append((obj, png))
    return written
