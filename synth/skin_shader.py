"""The procedural skin: one Blender node tree, per-sample values as object properties.

`build_skin_material(bpy, mesh_object, regions)` writes the region weights
(synth/skin_regions.py) as vector point attributes of the mesh
(REGION_ATTRIBUTES) and builds the material; `shader_values(skin)` turns a
sample_skin dict (synth/skin.py) into the object properties it reads
(SKIN_PROPERTIES). Changing object properties per sample costs Cycles an
object update, not a shader re-sync, so the tree is built once per scene.

The tree (Attribute nodes of type OBJECT read the properties, of type GEOMETRY
the regions):

    colour = base tone
           -> mix to the palm tone by palm
           -> mix to the knuckle tone by knuckle, to the fingertip tone by tip
           -> multiply by the crease tint by crease = crease band x lines(u) x tent(u), u the signed
              distance from the crease's centre line (crease_coord): thin lines
              0.5 + 0.5 cos(2 pi u / CREASE_PERIOD_M) within CREASE_HALF_WIDTH_M of it
           -> x (bias + gain x noise), a low-frequency noise (albedo variation)
           -> mix to the nail tone by nail = smoothstep(nail weight, NAIL_MASK), to the free edge's
              tone by the nail_edge weight
    roughness = mix(skin, nail roughness, nail); coat weight = nail x nail gloss;
    subsurface weight = skin x (1 - NAIL_SUBSURFACE_CUT x nail)
    normal = normalize(N + k (fine vector noise - 0.5)), k = bump strength x (1 + CREASE_BUMP x crease)

The normal detail tilts the shading normal by a fine 3-channel noise instead of
going through a Bump node: at 256 px the two look alike, and a Bump node (its
height evaluated three times, plus the node's own cost) cost as much again as
everything else in the tree together (benchmarks/skin_detail.py prints the
detailed skin's cost against the plain one's).

Noise coordinates are the object-space (posed) positions plus a per-sample
offset: the forearm (synth/forearm.py), which wears the same material without
region attributes (they read 0 there: plain skin), continues the hand's noise
without a seam at the wrist.
"""
from __future__ import annotations

import math

import numpy as np

from .skin import nail_tones_srgb, palm_tone_srgb, red_tone_srgb, srgb_to_linear
from .skin_regions import CREASE_COORD, CREASE_COORD_RANGE_M

# object property -> what it holds (colours linear RGB). Scalars are packed three to a vector property
# and regions three to a vector attribute: every Attribute node is a lookup in the object's attribute
# list at every shading point (measured: about 2.5 times the cost of a Math node), so fewer, packed
# properties render faster than one property per value.
SKIN_PROPERTIES = {
    "skin_color": "base albedo",
    "skin_palm_color": "palm albedo: base mixed towards palm_tone_srgb(base) by palm_lightening",
    "skin_knuckle_color": "knuckle albedo: base mixed towards red_tone_srgb(base) by knuckle_redness",
    "skin_tip_color": "fingertip albedo: the palm colour mixed towards its red_tone_srgb by tip_redness",
    "skin_crease_tint": "albedo multiplier at the centre of a crease: 1 - crease_strength x (1 - CREASE_TINT)",
    "skin_nail_color": "nail plate albedo",
    "skin_nail_edge_color": "albedo of the nail's free edge",
    "skin_subsurface_radius": "subsurface radius per channel",
    "skin_noise_offset": "offset of the noise coordinates (m)",
    "skin_surface": "(roughness, nail roughness, nail clear-coat weight)",
    "skin_subsurface": "(subsurface weight (nails: x (1 - NAIL_SUBSURFACE_CUT)), subsurface scale (m), "
                       "normal detail strength k)",
    "skin_noise": "(albedo noise frequency (1/m), gain, bias): albedo factor = bias + gain x noise",
}
# the plain material's properties (synth.blender_scene.SKIN_SOCKETS), set too so either material works
PLAIN_PROPERTIES = ("skin_color", "skin_roughness", "skin_subsurface_weight", "skin_subsurface_radius",
                    "skin_subsurface_scale")
# mesh attribute -> the regions (synth.skin_regions) in its x, y, z
REGION_ATTRIBUTES = {
    "region_skin": ("palm", "knuckle", "tip"),
    "region_nail": ("nail", "nail_edge", "crease"),
    "region_crease": (CREASE_COORD, None, None),
}

CREASE_TINT = (0.60, 0.47, 0.46)        # linear albedo multiplier at full crease strength: darker, redder
CREASE_PERIOD_M = 0.0022                # spacing of the thin lines within a crease
CREASE_HALF_WIDTH_M = 0.0028            # lines fade out this far from the crease's centre line
CREASE_BUMP = 2.0                       # normal detail along a crease's lines: x (1 + CREASE_BUMP)
NAIL_SUBSURFACE_CUT = 0.7
NAIL_MASK = (0.35, 0.65)                # region weight -> mask (smoothstep): a sharper oval
FINE_NOISE_SCALE = 1400.0               # 1/m: pores and fine wrinkles (features of about 0.7 mm)
# mean and std of the Noise texture's Fac (detail 2, roughness 0.5), measured in Blender 5.0.1 over about
# 10^4 features: gain = noise_strength / NOISE_FAC_STD makes noise_strength the albedo's relative std
NOISE_FAC_MEAN, NOISE_FAC_STD = 0.53, 0.093
NOISE_DETAIL = 2.0
FINE_NOISE_DETAIL = 0.0


def shader_values(skin: dict) -> dict:
    """Object property -> value for a sample_skin dict. Keys the dict lacks (older records) leave the
    corresponding detail off."""
    base = np.asarray(skin["base_color_srgb"], dtype=np.float64)
    lin = lambda c: [float(v) for v in srgb_to_linear(np.clip(c, 0.0, 1.0))]  # noqa: E731

    def towards(target, amount):
        return base + (np.asarray(target) - base) * float(amount)

    red = red_tone_srgb(base)
    palm = towards(palm_tone_srgb(base), skin.get("palm_lightening", 0.0))
    palm_red = red_tone_srgb(palm)
    plate, edge = nail_tones_srgb(skin.get("nail_color_srgb", base), base, skin.get("nail_edge_paleness", 0.0))
    strength = float(skin.get("noise_strength", 0.0))
    gain = strength / NOISE_FAC_STD
    crease = float(skin.get("crease_strength", 0.0))
    values = {
        "skin_color": lin(base),
        "skin_palm_color": lin(palm),
        "skin_knuckle_color": lin(towards(red, skin.get("knuckle_redness", 0.0))),
        "skin_tip_color": lin(palm + (palm_red - palm) * float(skin.get("tip_redness", 0.0))),
        "skin_crease_tint": [1.0 - crease * (1.0 - c) for c in CREASE_TINT],
        "skin_nail_color": lin(plate),
        "skin_nail_edge_color": lin(edge),
        "skin_subsurface_radius": [float(v) for v in skin["subsurface_radius"]],
        "skin_noise_offset": [float(v) for v in skin.get("noise_offset", (0.0, 0.0, 0.0))],
        "skin_surface": [float(skin["roughness"]), float(skin.get("nail_roughness", skin["roughness"])),
                         float(skin.get("nail_gloss", 0.0))],
        "skin_subsurface": [float(skin["subsurface_weight"]), float(skin["subsurface_scale"]),
                            float(skin.get("bump_strength", 0.0))],
        "skin_noise": [float(skin.get("noise_scale", 50.0)), gain, 1.0 - NOISE_FAC_MEAN * gain],
    }
    plain = {"skin_roughness": float(skin["roughness"]), "skin_subsurface_weight": float(skin["subsurface_weight"]),
             "skin_subsurface_scale": float(skin["subsurface_scale"])}
    values.update(plain)
    return values


def set_region_attributes(mesh, regions: dict | None) -> None:
    """Write the region weights as vector point attributes (REGION_ATTRIBUTES); missing regions read as
    the plain skin (weights 0, crease_coord 0.5: on no crease)."""
    n = len(mesh.vertices)
    regions = regions or {}
    known = {name for names in REGION_ATTRIBUTES.values() for name in names if name}
    unknown = sorted(set(regions) - known)
    if unknown:
        raise ValueError(f"unknown skin region(s) {unknown}; regions: {sorted(known)}")
    for key, names in REGION_ATTRIBUTES.items():
        packed = np.zeros((n, 3), dtype=np.float32)
        for i, name in enumerate(names):
            if name is None:
                continue
            values = regions.get(name)
            if values is None:
                values = np.full(n, 0.5 if name == CREASE_COORD else 0.0)
            values = np.asarray(values, dtype=np.float32)
            if values.shape != (n,):
                raise ValueError(f"region '{name}' has shape {values.shape}, the mesh has {n} vertices")
            packed[:, i] = values
        attr = mesh.attributes.get(key) or mesh.attributes.new(key, "FLOAT_VECTOR", "POINT")
        attr.data.foreach_set("vector", packed.ravel())
    mesh.update()


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
        key = next(k for k, names in REGION_ATTRIBUTES.items() if name in names)
        return component("GEOMETRY", key, REGION_ATTRIBUTES[key].index(name))

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

    # --- noise in object space, offset per sample
    coords = nodes.new("ShaderNodeVectorMath")
    coords.operation = "ADD"
    links.new(nodes.new("ShaderNodeTexCoord").outputs["Object"], coords.inputs[0])
    links.new(colour_prop("skin_noise_offset"), coords.inputs[1])
    albedo_noise = nodes.new("ShaderNodeTexNoise")
    links.new(coords.outputs["Vector"], albedo_noise.inputs["Vector"])
    links.new(scalar_prop("skin_noise", 0), albedo_noise.inputs["Scale"])
    albedo_noise.inputs["Detail"].default_value = NOISE_DETAIL
    albedo_noise.inputs["Roughness"].default_value = 0.5
    albedo_factor = op("MULTIPLY_ADD", albedo_noise.outputs["Fac"], scalar_prop("skin_noise", 1),
                       scalar_prop("skin_noise", 2))

    # --- creases: thin lines 0.5 + 0.5 cos(2 pi u / CREASE_PERIOD_M) under a tent of half-width
    # CREASE_HALF_WIDTH_M about the centre line, within the crease band
    du = op("SUBTRACT", region(CREASE_COORD), 0.5)                 # u / (2 * range)
    u_per_unit = 2 * CREASE_COORD_RANGE_M
    lines = op("MULTIPLY_ADD", op("COSINE", op("MULTIPLY", du, 2 * math.pi * u_per_unit / CREASE_PERIOD_M)),
               0.5, 0.5)
    tent = op("MULTIPLY_ADD", op("ABSOLUTE", du), -u_per_unit / CREASE_HALF_WIDTH_M, 1.0, clamp=True)
    crease = op("MULTIPLY", op("MULTIPLY", lines, tent), region("crease"))
    nail = map_range(region("nail"), *NAIL_MASK)

    # --- albedo
    colour = mix(region("palm"), colour_prop("skin_color"), colour_prop("skin_palm_color"))
    colour = mix(region("knuckle"), colour, colour_prop("skin_knuckle_color"))
    colour = mix(region("tip"), colour, colour_prop("skin_tip_color"))
    colour = mix(crease, colour, colour_prop("skin_crease_tint"), blend="MULTIPLY")
    varied = nodes.new("ShaderNodeVectorMath")
    varied.operation = "SCALE"
    links.new(colour, varied.inputs[0])
    links.new(albedo_factor, varied.inputs["Scale"])
    colour = mix(nail, varied.outputs["Vector"], colour_prop("skin_nail_color"))
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

    # --- fine normal detail (pores, wrinkles), stronger along creases: the shading normal tilted by a
    # vector noise, N' = normalize(N + k (noise - 0.5)), k = bump strength x (1 + CREASE_BUMP x crease).
    # A Bump node would cost as much again as the rest of the tree (Cycles evaluates its height three
    # times, and the node itself is not cheap); the noise's three channels make a comparable relief.
    fine_noise = nodes.new("ShaderNodeTexNoise")
    links.new(coords.outputs["Vector"], fine_noise.inputs["Vector"])
    fine_noise.inputs["Scale"].default_value = FINE_NOISE_SCALE
    fine_noise.inputs["Detail"].default_value = FINE_NOISE_DETAIL
    k = op("MULTIPLY", op("MULTIPLY_ADD", crease, CREASE_BUMP, 1.0), scalar_prop("skin_subsurface", 2))
    tilt = nodes.new("ShaderNodeVectorMath")
    tilt.operation = "MULTIPLY_ADD"
    links.new(fine_noise.outputs["Color"], tilt.inputs[0])
    links.new(k, tilt.inputs[1])
    centred = nodes.new("ShaderNodeVectorMath")     # N - k / 2: centres the noise's [0, 1] channels
    centred.operation = "MULTIPLY_ADD"
    links.new(k, centred.inputs[0])
    centred.inputs[1].default_value = (-0.5, -0.5, -0.5)
    links.new(nodes.new("ShaderNodeNewGeometry").outputs["Normal"], centred.inputs[2])
    links.new(centred.outputs["Vector"], tilt.inputs[2])
    normal = nodes.new("ShaderNodeVectorMath")
    normal.operation = "NORMALIZE"
    links.new(tilt.outputs["Vector"], normal.inputs[0])
    links.new(normal.outputs["Vector"], bsdf.inputs["Normal"])
    return mat
