"""One persistent Blender scene per worker process, built from Python (no .blend file).

The scene holds the dense render mesh (vertices rewritten with foreach_set for
every pose), a Principled-BSDF skin with subsurface scattering, the HDRI world
(hdri.blender_world) and the rig camera. Each render writes one multilayer EXR
with the Combined, Depth (planar camera z, metres) and Object Index passes, so
RGB, depth and silhouette come from the same render; the RGB is the Combined
pass through the sRGB transfer function (Blender's 'Standard' view transform).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from .camera import to_blender
from .render_config import RenderConfig
from .skin import linear_to_srgb, srgb_to_linear

HAND_PASS_INDEX = 1
SKIN_SOCKETS = {"skin_color": "Base Color", "skin_roughness": "Roughness",
                "skin_subsurface_weight": "Subsurface Weight", "skin_subsurface_radius": "Subsurface Radius",
                "skin_subsurface_scale": "Subsurface Scale"}


def _gpu_available(bpy) -> bool:
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
    except KeyError:
        return False
    for kind in ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI"):
        try:
            prefs.compute_device_type = kind
        except TypeError:
            continue
        prefs.get_devices()
        if any(d.type != "CPU" for d in prefs.devices):
            for d in prefs.devices:
                d.use = d.type != "CPU"
            return True
    return False


class BlenderScene:
    def __init__(self, cfg: RenderConfig, dense_faces: np.ndarray, num_dense: int):
        import bpy

        self.bpy = bpy
        self.cfg = cfg
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        self.scene = scene
        r = scene.render
        r.engine = "CYCLES"
        r.resolution_x = r.resolution_y = cfg.resolution
        r.resolution_percentage = 100
        r.use_persistent_data = True
        r.film_transparent = False
        if cfg.threads:
            r.threads_mode, r.threads = "FIXED", cfg.threads
        use_gpu = cfg.device == "gpu" or (cfg.device == "auto" and _gpu_available(bpy))
        if cfg.device == "gpu" and not _gpu_available(bpy):
            raise RuntimeError("render device 'gpu' requested but Blender found no GPU")
        scene.cycles.device = "GPU" if use_gpu else "CPU"
        scene.cycles.samples = cfg.samples
        scene.cycles.seed = 0
        scene.cycles.use_animated_seed = False
        scene.cycles.use_denoising = cfg.denoiser == "oidn"
        if cfg.denoiser == "oidn":
            scene.cycles.denoiser = "OPENIMAGEDENOISE"
            scene.cycles.denoising_prefilter = cfg.denoise_prefilter
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
        layer = scene.view_layers[0]
        layer.use_pass_z = True
        layer.use_pass_object_index = True
        r.image_settings.media_type = "MULTI_LAYER_IMAGE"  # Blender 5: before file_format
        r.image_settings.file_format = "OPEN_EXR_MULTILAYER"
        r.image_settings.color_depth = "32"
        r.image_settings.exr_codec = "ZIP"
        self._tmp = tempfile.mkdtemp(prefix="hands-render-")
        r.filepath = os.path.join(self._tmp, "frame.exr")

        mesh = bpy.data.meshes.new("hand")
        mesh.from_pydata(np.zeros((num_dense, 3)).tolist(), [], np.asarray(dense_faces).tolist())
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
        mesh.update()
        self.mesh = mesh
        obj = bpy.data.objects.new("hand", mesh)
        obj.pass_index = HAND_PASS_INDEX
        scene.collection.objects.link(obj)

        mat = bpy.data.materials.new("skin")
        mat.use_nodes = True
        mesh.materials.append(mat)
        nt = mat.node_tree
        bsdf = nt.nodes["Principled BSDF"]
        # the skin's parameters are object properties read by Attribute nodes: changing
        # them per sample costs Cycles an object update, not a shader re-sync (3x cheaper)
        for prop, socket in SKIN_SOCKETS.items():
            node = nt.nodes.new("ShaderNodeAttribute")
            node.attribute_type, node.attribute_name = "OBJECT", prop
            vector = socket in ("Base Color", "Subsurface Radius")
            nt.links.new(node.outputs["Color" if vector else "Fac"], bsdf.inputs[socket])
        self.hand = obj

        cam_data = bpy.data.cameras.new("camera")
        cam_data.sensor_fit = "AUTO"
        cam_data.clip_start = 0.01
        cam_data.clip_end = 100.0
        self.camera = bpy.data.objects.new("camera", cam_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        self._world_key = None

    def set_vertices(self, dense_vertices: np.ndarray) -> None:
        self.mesh.vertices.foreach_set("co", np.asarray(dense_vertices, dtype=np.float32).ravel())
        self.mesh.update()

    def set_camera(self, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> None:
        import mathutils

        size = self.cfg.resolution
        bc = to_blender(K, R, t, size, size)
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = bc.rotation_matrix, bc.location
        self.camera.matrix_world = mathutils.Matrix(m.tolist())
        data = self.camera.data
        data.lens, data.sensor_width = bc.lens_mm, bc.sensor_width_mm
        data.shift_x, data.shift_y = bc.shift_x, bc.shift_y

    def set_skin(self, skin: dict) -> None:
        values = {"skin_color": [float(c) for c in srgb_to_linear(skin["base_color_srgb"])],
                  "skin_roughness": skin["roughness"], "skin_subsurface_weight": skin["subsurface_weight"],
                  "skin_subsurface_radius": list(skin["subsurface_radius"]),
                  "skin_subsurface_scale": skin["subsurface_scale"]}
        for prop, value in values.items():
            self.hand[prop] = value
        self.hand.update_tag()

    def set_world(self, entry, rotation_deg: float, strength: float) -> None:
        key = (entry.id, rotation_deg, strength)
        if key == self._world_key:  # unchanged world: Cycles keeps its importance map
            return
        from hdri.blender_world import apply_world

        apply_world(self.scene, entry, rotation_deg, strength,
                    sample_map_resolution=self.cfg.sample_map_resolution)
        self._world_key = key

    def render(self) -> tuple:
        """(rgb uint8 HxWx3, depth float32 HxW metres with 0 = background, mask bool HxW)."""
        import OpenEXR

        self.bpy.ops.render.render(write_still=True)
        channels = {}
        with OpenEXR.File(self.scene.render.filepath) as exr:
            for part in exr.parts:
                for name, ch in part.channels.items():
                    channels[name.split(".", 1)[-1]] = ch.pixels
        combined = channels["Combined"][..., :3]
        mask = channels["Object Index.X"] > HAND_PASS_INDEX - 0.5
        depth = np.where(mask, channels["Depth.Z"], 0.0).astype(np.float32)
        rgb = np.round(linear_to_srgb(combined) * 255.0).astype(np.uint8)
        return rgb, depth, mask
