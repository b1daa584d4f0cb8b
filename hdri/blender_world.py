"""Put a catalog entry into a Blender scene's world: visible background and lighting.

The world's node tree is built once and then only edited:

    Texture Coordinate (Generated = view direction)
      -> Mapping (TEXTURE: rotation about world Z)
      -> Environment Texture (files)  | Sky Texture (procedural skies)
      -> Background (Strength)  -> World Output

Switching entries changes the image, the sky parameters, the mapping rotation
or the strength (and relinks the Background colour when the kind changes), so
the scene and Cycles' persistent data stay valid between renders. Images are
loaded once per file and kept in bpy.data, so going back to an earlier
environment does not read the file again.

Rotation: rotation_deg turns the environment counter-clockwise about +Z seen
from above (what was in direction +X appears at azimuth rotation_deg). In the
equirectangular layout Blender uses (centre column = +X, azimuth increasing to
the left), the picture seen through an equirectangular camera shifts left by
rotation_deg / 360 of its width.

Skies use Blender's Hosek-Wilkie model, which has turbidity. In Blender 5.0
its sun is set by the node's `sun_direction` vector; `sun_elevation` only
drives the scattering models (SINGLE_/MULTIPLE_SCATTERING).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

from .catalog import HdriEntry, resolve_path
from .validate import HdriError

WORLD_NAME = "hands_hdri"
SKY_TYPE = "HOSEK_WILKIE"
SKY_SUN_AZIMUTH_DEG = 0.0  # the sun sits towards +X before rotation_deg is applied

# node names: the tree is found again by these
N_COORD, N_MAP, N_ENV, N_SKY, N_BG, N_OUT = ("hdri_coord", "hdri_mapping", "hdri_env", "hdri_sky",
                                            "hdri_background", "hdri_output")

MAX_CACHED_IMAGES = 16  # a 4k float map holds 128 MB in Blender; older ones are removed beyond this

_images: "OrderedDict[str, str]" = OrderedDict()  # resolved file path -> bpy image name, least recent first


def _build_tree(world) -> None:
    if world.node_tree is None:  # worlds made by bpy 5.0 come with a tree; older files may not
        world.use_nodes = True
    nt = world.node_tree
    nt.nodes.clear()
    coord = nt.nodes.new("ShaderNodeTexCoord")
    mapping = nt.nodes.new("ShaderNodeMapping")
    mapping.vector_type = "TEXTURE"  # inverse transform of the lookup = rotating the environment
    env = nt.nodes.new("ShaderNodeTexEnvironment")
    env.interpolation = "Linear"
    sky = nt.nodes.new("ShaderNodeTexSky")
    sky.sky_type = SKY_TYPE
    bg = nt.nodes.new("ShaderNodeBackground")
    out = nt.nodes.new("ShaderNodeOutputWorld")
    for node, name, x in ((coord, N_COORD, -900), (mapping, N_MAP, -700), (env, N_ENV, -450), (sky, N_SKY, -450),
                          (bg, N_BG, -150), (out, N_OUT, 50)):
        node.name = node.label = name
        node.location = (x, 200 if node is sky else 0)
    nt.links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], env.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], sky.inputs["Vector"])
    nt.links.new(env.outputs["Color"], bg.inputs["Color"])
    nt.links.new(bg.outputs["Background"], out.inputs["Surface"])


def _is_ours(world) -> bool:
    nt = world.node_tree
    return nt is not None and all(nt.nodes.get(n) is not None for n in (N_COORD, N_MAP, N_ENV, N_SKY, N_BG, N_OUT))


def ensure_world(scene):
    """The scene's hdri world, built on first use. Each scene gets its own; a world the scene
    had before (not built here) is left in bpy.data untouched."""
    world = scene.world
    if world is None or not _is_ours(world):
        world = bpy_data().worlds.new(WORLD_NAME)
        _build_tree(world)
        scene.world = world
    return world


def bpy_data():
    import bpy

    return bpy.data


def _cached(path: str):
    import bpy

    name = _images.get(path)
    image = bpy.data.images.get(name) if name else None
    if image is not None and Path(bpy.path.abspath(image.filepath)) != Path(path):
        image = None  # the blend data was reset and the name now means another image
    if image is None:
        _images.pop(path, None)
    return image


def load_image(path: str):
    """The bpy image of a file, loaded once and then taken from the cache."""
    image = _cached(path)
    if image is None:
        try:
            image = bpy_data().images.load(path, check_existing=True)
        except RuntimeError as err:
            raise HdriError(f"{path}: Blender cannot load it: {err}") from None
        _images[path] = image.name
    _images.move_to_end(path)
    return image


def _evict(max_cached: int) -> None:
    """Remove the least recently used images beyond `max_cached` that no node uses any more."""
    for path in list(_images)[:max(0, len(_images) - max_cached)]:
        image = _cached(path)
        if image is not None and image.users == 0:
            bpy_data().images.remove(image)
            _images.pop(path, None)


def _set_link(nt, src, dst) -> None:
    """Link src -> dst unless that link is already there (a no-op keeps the shader unchanged)."""
    if not any(link.from_socket == src for link in dst.links):
        nt.links.new(src, dst)


def sun_direction(elevation_deg: float, azimuth_deg: float = SKY_SUN_AZIMUTH_DEG) -> tuple:
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))


def apply_world(scene, entry: HdriEntry, rotation_deg: float = 0.0, strength: float = 1.0,
                sample_map_resolution: int = 256, max_cached_images: int = MAX_CACHED_IMAGES) -> None:
    """Make `entry` the scene's environment, turned by rotation_deg about world Z, scaled by strength.

    sample_map_resolution: the size of Cycles' importance map of the world (Cycles'
    automatic choice follows the image size; a small fixed map cuts per-render overhead).
    max_cached_images: how many maps stay loaded for switching back without a reload.
    """
    if sample_map_resolution < 1:
        raise HdriError(f"sample_map_resolution={sample_map_resolution} must be positive")
    world = ensure_world(scene)
    nt = world.node_tree
    env, sky, bg = nt.nodes[N_ENV], nt.nodes[N_SKY], nt.nodes[N_BG]
    if entry.source == "sky":
        if not entry.sky or len(entry.sky) != 2:
            raise HdriError(f"{entry.id}: a sky entry needs (sun_elevation_deg, turbidity), got {entry.sky!r}")
        elevation, turbidity = (float(v) for v in entry.sky)
        if not 1.0 <= turbidity <= 10.0:
            raise HdriError(f"{entry.id}: turbidity {turbidity} is outside Blender's range 1..10")
        if sky.sky_type != SKY_TYPE:
            sky.sky_type = SKY_TYPE
        sky.sun_direction = sun_direction(elevation)
        sky.turbidity = turbidity
        _set_link(nt, sky.outputs["Color"], bg.inputs["Color"])
    else:
        path = resolve_path(entry)
        if path is None or not Path(path).is_file():
            raise HdriError(f"{entry.id}: file {path} does not exist")
        image = load_image(path)
        if env.image != image:
            env.image = image
            _evict(max(1, max_cached_images))
        _set_link(nt, env.outputs["Color"], bg.inputs["Color"])
    nt.nodes[N_MAP].inputs["Rotation"].default_value = (0.0, 0.0, math.radians(rotation_deg))
    bg.inputs["Strength"].default_value = float(strength)
    cyc = world.cycles
    if cyc.sampling_method != "MANUAL":  # sample_map_resolution is only used in MANUAL mode
        cyc.sampling_method = "MANUAL"
    if cyc.sample_map_resolution != sample_map_resolution:
        cyc.sample_map_resolution = int(sample_map_resolution)
