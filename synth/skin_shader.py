"""The procedural skin's shader: one Blender node tree, per-sample values as object properties.

What varies slowly over the hand (the region colours, the albedo noise, the
normal detail) is computed per vertex in numpy (synth/skin_bake.py) and reaches
the shader as a vertex attribute and the mesh's vertex normals; the tree keeps
only what must be sharper than the render mesh's vertices: the nail's outline
and its free edge (a smoothstep of interpolated region weights) and the thin
lines of the creases (a cosine of the interpolated signed distance from the
crease's centre line).

`build_skin_material(bpy, mesh_object, regions)` writes the regions the shader
reads as point attributes (SHADER_ATTRIBUTES) and builds the material;
`shader_values(skin)` turns a sample_skin dict (synth/skin.py) into the object
properties it reads (SKIN_PROPERTIES); `set_surface(mesh, albedo, crease_coord)`
writes the per-sample vertex attribute. Changing object properties per sample
costs Cycles an object update, not a shader re-sync, so the tree is built once
per scene.

The tree (Attribute nodes of type OBJECT read the properties, of type GEOMETRY
the vertex attributes):

    colour = albedo (vertex attribute SURFACE_ATTRIBUTE: rgb)
           -> multiply by the crease tint by crease = crease band x lines(u) x tent(u), u the signed
              distance from the crease's centre line (the attribute's alpha): thin lines
              0.5 + 0.5 cos(2 pi u / CREASE_PERIOD_M) within CREASE_HALF_WIDTH_M of it
           -> mix to the nail tone by nail = smoothstep(nail weight, NAIL_MASK), to the free edge's
              tone by the nail_edge weight
    roughness = mix(skin, nail roughness, nail); coat weight = nail x nail gloss;
    subsurface weight = skin x (1 - NAIL_SUBSURFACE_CUT x nail)

The forearm (synth/forearm.py) wears the same material: its attribute holds
its own albedo (base tone and noise, no regions) and no crease (u far from a
centre line), and its region attribute is absent (reads 0: no nail).
"""
from __future__ import annotations

import math

import numpy as np

from .skin import nail_tones_srgb, srgb_to_linear
from .skin_regions import CREASE_COORD, CREASE_COORD_RANGE_M

# object property -> what it holds (colours linear RGB). Scalars are packed three to a vector property:
# every Attribute node is a lookup in the object's attribute list at every shading point (measured: about
# 2.5 times the cost of a Math node), so fewer, packed properties render faster than one per value.
SKIN_PROPERTIES = {
    "skin_crease_tint": "albedo multiplier at the centre of a crease: 1 - crease_strength x (1 - CREASE_TINT)",
    "skin_nail_color": "nail plate albedo",
    "skin_nail_edge_color": "albedo of the nail's free edge",
    "skin_subsurface_radius": "subsurface radius per channel",
    "skin_surface": "(roughness, nail roughness, nail clear-coat weight)",
    "skin_subsurface": "(subsurface weight (nails: x (1 - NAIL_SUBSURFACE_CUT)), subsurface scale (m), 0)",
}
# the plain material's properties (synth.blender_scene.SKIN_SOCKETS), set too so either material works
PLAIN_PROPERTIES = ("skin_color", "skin_roughness", "skin_subsurface_weight", "skin_subsurface_radius",
                    "skin_subsurface_scale")
# the per-sample vertex attribute: rgb the linear albedo (synth.skin_bake.vertex_albedo), alpha crease_coord
SURFACE_ATTRIBUTE = "skin_albedo"
# mesh attribute -> the regions (synth.skin_regions) in its x, y, z that the shader itself reads
SHADER_ATTRIBUTES = {"region_nail": ("nail", "nail_edge", "crease")}
# regions baked into the albedo per sample (synth.skin_bake) instead of read by the shader
BAKED_REGIONS = ("palm", "knuckle", "tip")
NO_CREASE = 0.0                         # crease_coord far from any centre line (the arm's, the default)

CREASE_TINT = (0.60, 0.47, 0.46)        # linear albedo multiplier at full crease strength: darker, redder
CREASE_PERIOD_M = 0.0022                # spacing of the thin lines within a crease
CREASE_HALF_WIDTH_M = 0.0028            # lines fade out this far from the crease's centre line
NAIL_SUBSURFACE_CUT = 0.7
NAIL_MASK = (0.35, 0.65)                # region weight -> mask (smoothstep): a sharper oval


def shader_values(skin: dict) -> dict:
    """Object property -> value for a sample_skin dict. Keys the dict lacks (older records) leave the
    corresponding detail off."""
    base = np.asarray(skin["base_color_srgb"], dtype=np.float64)
    lin = lambda c: [float(v) for v in srgb_to_linear(np.clip(c, 0.0, 1.0))]  # noqa: E731
    plate, edge = nail_tones_srgb(skin.get("nail_color_srgb", base), base, skin.get("nail_edge_paleness", 0.0))
    crease = float(skin.get("crease_strength", 0.0))
    values = {
        "skin_crease_tint": [1.0 - crease * (1.0 - c) for c in CREASE_TINT],
        "skin_nail_color": lin(plate),
        "skin_nail_edge_color": lin(edge),
        "skin_subsurface_radius": [float(v) for v in skin["subsurface_radius"]],
        "skin_surface": [float(skin["roughness"]), float(skin.get("nail_roughness", skin["roughness"])),
                         float(skin.get("nail_gloss", 0.0))],
        "skin_subsurface": [float(skin["subsurface_weight"]), float(skin["subsurface_scale"]), 0.0],
    }
    plain = {"skin_color": lin(base), "skin_roughness": float(skin["roughness"]),
             "skin_subsurface_weight": float(skin["subsurface_weight"]),
             "skin_subsurface_scale": float(skin["subsurface_scale"])}
    values.update(plain)
    return values


def check_regions(regions: dict | None, n: int) -> dict:
    """The regions as float arrays of n values; unknown names or wrong shapes are errors."""
    known = {name for names in SHADER_ATTRIBUTES.values() for name in names} | set(BAKED_REGIONS) | {CREASE_COORD}
    regions = regions or {}
    unknown = sorted(set(regions) - known)
    if unknown:
        raise ValueError(f"unknown skin region(s) {unknown}; regions: {sorted(known)}")
    out = {}
    for name, values in regions.items():
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (n,):
            raise ValueError(f"region '{name}' has shape {values.shape}, the mesh has {n} vertices")
        out[name] = values
    return out


def set_region_attributes(mesh, regions: dict | None) -> None:
    """Write the regions the shader reads as vector point attributes (SHADER_ATTRIBUTES); missing regions
    read as plain skin (weight 0)."""
    n = len(mesh.vertices)
    regions = check_regions(regions, n)
    for key, names in SHADER_ATTRIBUTES.items():
        packed = np.zeros((n, 3), dtype=np.float32)
        for i, name in enumerate(names):
            if name in regions:
                packed[:, i] = regions[name]
        attr = mesh.attributes.get(key) or mesh.attributes.new(key, "FLOAT_VECTOR", "POINT")
        attr.data.foreach_set("vector", packed.ravel())
    mesh.update()


def set_surface(mesh, albedo: np.ndarray, crease_coord: np.ndarray | None = None) -> None:
    """The sample's per-vertex albedo (N, 3, linear) and crease_coord (N,; None: on no crease) as the
    SURFACE_ATTRIBUTE the shader reads (does not call mesh.update(): the caller updates once)."""
    n = len(mesh.vertices)
    packed = np.empty((n, 4), dtype=np.float32)
    packed[:, :3] = albedo
    packed[:, 3] = NO_CREASE if crease_coord is None else crease_coord
    attr = mesh.attributes.get(SURFACE_ATTRIBUTE) or mesh.attributes.new(SURFACE_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    attr.data.foreach_set("color", packed.ravel())


def build_skin_material(bpy, mesh_object, regions: dict | None):
    """Set the mesh's region attributes and give it the procedural skin material (returned)."""
    set_region_attributes(mesh_object.data, regions)
    mat = bpy.data.materials.new("skin")
    if mat.node_tree is None:
        mat.use_nodes = True
    mesh_object.data.materials.append(mat)
    nt = mat.node_tree
    nodes, links = nt.nodes, nt.links
    bsdf = nodes["Principled BSDF"]
    attrs: dict = {}
    splits: dict = {}

    def attribute(kind, name):
        if name not in attrs:
            node = nodes.new("ShaderNodeAttribute")
            node.attribute_type, node.attribute_name = kind, name
            attrs[name] = node
        return attrs[name]

    def component(kind, name, i):
        """Component i of a vector attribute (one Separate XYZ per attribute)."""
        if name not in splits:
            splits[name] = nodes.new("ShaderNodeSeparateXYZ")
            links.new(attribute(kind, name).outputs["Vector"], splits[name].inputs[0])
        return splits[name].outputs[i]

    def colour_prop(name):
        return attribute("OBJECT", name).outputs["Color"]

    def scalar_prop(name, i):
        return component("OBJECT", name, i)

    def region(name):
        key = next(k for k, names in SHADER_ATTRIBUTES.items() if name in names)
        return component("GEOMETRY", key, SHADER_ATTRIBUTES[key].index(name))

    def link(socket, target):
        if isinstance(socket, (int, float)):
            target.default_value = socket
        else:
            links.new(socket, target)

    def op(operation, a, b=None, c=None, clamp=False):
        node = nodes.new("ShaderNodeMath")
        node.operation, node.use_clamp = operation, clamp
        for i, v in enumerate((a, b, c)):
            if v is not None:
                link(v, node.inputs[i])
        return node.outputs[0]

    def map_range(value, lo, hi, to_lo=0.0, to_hi=1.0):
        node = nodes.new("ShaderNodeMapRange")
        node.interpolation_type, node.clamp = "SMOOTHSTEP", True
        link(value, node.inputs["Value"])
        for key, v in (("From Min", lo), ("From Max", hi), ("To Min", to_lo), ("To Max", to_hi)):
            node.inputs[key].default_value = v
        return node.outputs["Result"]

    def mix(factor, a, b, blend="MIX"):
        node = nodes.new("ShaderNodeMix")
        node.data_type, node.blend_type = "RGBA", blend
        link(factor, node.inputs["Factor"])
        links.new(a, node.inputs["A"])
        links.new(b, node.inputs["B"])
        return node.outputs["Result"]

    surface = attribute("GEOMETRY", SURFACE_ATTRIBUTE)
    # --- creases: thin lines 0.5 + 0.5 cos(2 pi u / CREASE_PERIOD_M) under a tent of half-width
    # CREASE_HALF_WIDTH_M about the centre line, within the crease band
    du = op("SUBTRACT", surface.outputs["Alpha"], 0.5)                 # u / (2 * range)
    u_per_unit = 2 * CREASE_COORD_RANGE_M
    lines = op("MULTIPLY_ADD", op("COSINE", op("MULTIPLY", du, 2 * math.pi * u_per_unit / CREASE_PERIOD_M)),
               0.5, 0.5)
    tent = op("MULTIPLY_ADD", op("ABSOLUTE", du), -u_per_unit / CREASE_HALF_WIDTH_M, 1.0, clamp=True)
    crease = op("MULTIPLY", op("MULTIPLY", lines, tent), region("crease"))
    nail = map_range(region("nail"), *NAIL_MASK)

    # --- albedo
    colour = mix(crease, surface.outputs["Color"], colour_prop("skin_crease_tint"), blend="MULTIPLY")
    colour = mix(nail, colour, colour_prop("skin_nail_color"))
    colour = mix(region("nail_edge"), colour, colour_prop("skin_nail_edge_color"))
    links.new(colour, bsdf.inputs["Base Color"])

    # --- nails: glossier (a clear coat), less subsurface
    rough = nodes.new("ShaderNodeMix")
    rough.data_type = "FLOAT"
    links.new(nail, rough.inputs["Factor"])
    links.new(scalar_prop("skin_surface", 0), rough.inputs["A"])
    links.new(scalar_prop("skin_surface", 1), rough.inputs["B"])
    links.new(rough.outputs["Result"], bsdf.inputs["Roughness"])
    links.new(op("MULTIPLY", nail, scalar_prop("skin_surface", 2)), bsdf.inputs["Coat Weight"])
    links.new(op("MULTIPLY", op("MULTIPLY_ADD", nail, -NAIL_SUBSURFACE_CUT, 1.0), scalar_prop("skin_subsurface", 0)),
              bsdf.inputs["Subsurface Weight"])
    links.new(colour_prop("skin_subsurface_radius"), bsdf.inputs["Subsurface Radius"])
    links.new(scalar_prop("skin_subsurface", 1), bsdf.inputs["Subsurface Scale"])
    return mat
