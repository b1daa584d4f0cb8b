"""Pictures a person can judge: contact sheets of posed hands and of rig views."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .camera import intrinsics, look_at
from .raster import shade

# one colour per finger (thumb, index, middle, ring, little), wrist bones grey
FINGER_COLOURS = [(220, 60, 60), (60, 160, 60), (60, 90, 220), (200, 150, 30), (160, 60, 200)]


def draw_skeleton(img: Image.Image, uv: np.ndarray, radius: float = 2.0) -> None:
    """21 keypoints (FreiHAND order) as coloured bones and dots."""
    draw = ImageDraw.Draw(img)
    for f in range(5):
        chain = [0] + [1 + 4 * f + i for i in range(4)]
        colour = FINGER_COLOURS[f]
        for a, b in zip(chain[:-1], chain[1:]):
            draw.line([tuple(uv[a]), tuple(uv[b])], fill=colour, width=2)
        for i in chain[1:]:
            x, y = uv[i]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    x, y = uv[0]
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(90, 90, 90))


def render_view(verts, faces, K, R, t, size: int, keypoints=None) -> Image.Image:
    cam = np.asarray(verts) @ R.T + t
    img = Image.fromarray(shade(cam, faces, K, (size, size)))
    if keypoints is not None:
        kc = np.asarray(keypoints) @ R.T + t
        draw_skeleton(img, (kc @ K.T)[:, :2] / kc[:, 2:3])
    return img


def orbit_camera(verts: np.ndarray, direction, up, size: int, fov_deg: float = 30.0):
    """A camera looking at the mesh's bounding-box centre from `direction`, framing it."""
    centre = 0.5 * (verts.min(axis=0) + verts.max(axis=0))
    extent = np.linalg.norm(verts - centre, axis=1).max()
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    dist = 1.15 * extent / np.sin(np.radians(fov_deg) / 2)
    R, t = look_at(centre + dist * d, centre, up)
    return intrinsics(size, size, fov_deg), R, t


def labelled(img: Image.Image, text: str) -> Image.Image:
    ImageDraw.Draw(img).text((4, 3), text, fill=(40, 40, 40))
    return img


def grid(images: list, columns: int, background=(255, 255, 255)) -> Image.Image:
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), background)
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    return sheet


def hand_sheet(verts: np.ndarray, keypoints: np.ndarray, faces: np.ndarray, labels: list,
               size: int = 256, palm_normal=(0.0, -1.0, 0.0), finger_dir=(-1.0, 0.0, 0.0)) -> Image.Image:
    """Each posed hand from the back and from the palm side, skeleton drawn on the palm view."""
    palm = np.asarray(palm_normal, float)
    up = np.asarray(finger_dir, float)
    tiles = []
    for v, k, label in zip(verts, keypoints, labels):
        back = orbit_camera(v, -palm + 0.25 * up, up, size)
        front = orbit_camera(v, palm + 0.25 * up, up, size)
        tiles.append(labelled(render_view(v, faces, *back, size), f"{label} - back"))
        tiles.append(labelled(render_view(v, faces, *front, size, keypoints=k), f"{label} - palm"))
    return grid(tiles, columns=4)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it."""
    m = np.asarray(mask, bool)
    pad = np.pad(m, 1)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return m & ~inner


def preview_tile(sample: dict, outline_colour=(0, 230, 255)) -> Image.Image:
    """A reader sample as a picture: the image, the mask outline and the 2D keypoints."""
    rgb = (np.asarray(sample["image"]).transpose(1, 2, 0) * 255).round().astype(np.uint8).copy()
    rgb[mask_outline(np.asarray(sample["mask"]))] = outline_colour
    img = Image.fromarray(rgb)
    draw_skeleton(img, np.asarray(sample["keypoints_2d"]), radius=1.5)
    return img


def contact_sheet(dataset, count: int = 12, columns: int = 4, seed: int = 0, with_labels: bool = True) -> Image.Image:
    """`count` random samples of a dataset (a synth.reader.ComplementDataset) at full size, as rendered: no
    overlays on the images, so a person can judge how photographic they look. With `with_labels` each image
    has its label map (reader 'segmentation': hand white, forearm orange, occluders blue) beside it."""
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(dataset), size=min(count, len(dataset)), replace=False).tolist())
    palette = np.array([[0, 0, 0], [255, 255, 255], [230, 140, 40], [40, 120, 255]], dtype=np.uint8)
    tiles = []
    for i in picks:
        s = dataset[int(i)]
        rgb = (np.asarray(s["image"]).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        img = Image.fromarray(rgb)
        if with_labels:
            img = grid([img, Image.fromarray(palette[np.asarray(s["segmentation"])])], columns=2)
        draw = ImageDraw.Draw(img)
        draw.text((4, 3), s["key"], fill=(255, 255, 255))
        tiles.append(img)
    return grid(tiles, columns=columns if not with_labels else max(1, columns // 2))
