"""One persistent Blender scene per worker process, built from Python (no .blend file).

The scene holds the dense render mesh (vertices rewritten with foreach_set for
every pose), the forearm that closes its wrist (synth/forearm.py), a pool of
occluder objects (synth/occluders.py), a Principled-BSDF skin with subsurface
scattering, the HDRI world (hdri.blender_world) and the rig camera. Each render
writes one multilayer EXR with the Combined, Depth (planar camera z, metres)
and Object Index passes (hand 1, arm 2, occluders 3), so RGB, depth and the
labelled mask come from the same render; the RGB is the Combined
pass through the sRGB transfer function (Blender's 'Standard' view transform).

A sample is shown with one call, `apply(scene)` of a synth.scene.SampleScene;
the setters it calls stay public for tests and benchmarks that place one part.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import tempfile
import weakref

import numpy as np

from .camera import to_blender
from .render_config import SUBSURFACE_METHODS, RenderConfig
from .skin import linear_to_srgb, srgb_to_linear

HAND_PASS_INDEX = 1
ARM_PASS_INDEX = 2
OCCLUDER_PASS_INDEX = 3
SKIN_SOCKETS = {"skin_color": "Base Color", "skin_roughness": "Roughness",
                "skin_subsurface_weight": "Subsurface Weight", "skin_subsurface_radius": "Subsurface Radius",
                "skin_subsurface_scale": "Subsurface Scale"}


TMP_ROOT_ENV = "HANDS_RENDER_TMP"   # a folder (set by synth.distribute for a local Ray) to make temp folders in
MEMORY_TMP = "/dev/shm"


def temp_parent() -> str | None:
    """Where the per-frame EXR's folder goes: memory-backed /dev/shm when there is one (Linux; the frame is
    read back at once, and writing it there costs about 3 ms less per frame than a disk-backed /tmp), unless
    TMPDIR names another folder; None: tempfile's default."""
    if os.environ.get("TMPDIR") or not os.path.isdir(MEMORY_TMP) or not os.access(MEMORY_TMP, os.W_OK | os.X_OK):
        return None
    return MEMORY_TMP


@contextlib.contextmanager
def blender_output_captured():
    """Blender's C code writes a line per frame ("Saved: '.../frame.exr'") and its GPU-library probes
    ("CUEW initialization failed") to the process's stdout, past Python's sys.stdout: they are captured at
    the file-descriptor level, so the console shows the progress bar and the summary, and replayed on
    stderr only when the call fails (where they may say why)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            libc.fflush(None)          # C's buffered lines go to the sink, not to the restored stdout
            os.dup2(saved, 1)
            os.close(saved)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))


def _gpu_available(bpy) -> bool:
    with blender_output_captured():
        return _probe_gpu(bpy)


def _probe_gpu(bpy) -> bool:
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


def _plain_skin(bpy, name: str):
    """One Principled BSDF whose inputs are the object's SKIN_SOCKETS properties (the flat skin)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    for prop, socket in SKIN_SOCKETS.items():
        node = nt.nodes.new("ShaderNodeAttribute")
        node.attribute_type, node.attribute_name = "OBJECT", prop
        vector = socket in ("Base Color", "Subsurface Radius")
        nt.links.new(node.outputs["Color" if vector else "Fac"], bsdf.inputs[socket])
    return mat


class BlenderScene:
    def __init__(self, cfg: RenderConfig, dense_faces: np.ndarray, num_dense: int, regions: dict | None = None,
                 rest_vertices: np.ndarray | None = None, arm=None):
        """`regions` (synth.skin_regions.region_weights of the dense mesh) selects the procedural skin, which
        also needs the dense mesh's `rest_vertices` (the noise sticks to the rest pose); None: the plain
        one-colour skin. `arm`: the body's arm (synth.body_arm.BodyArm) or None: the tube forearm."""
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
        r.film_transparent = bool(cfg.backdrop_folders)   # photo backdrops go behind the alpha
        self.backdrop = None
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
            scene.cycles.denoising_prefilter = cfg.prefilter()
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
        r.image_settings.exr_codec = "NONE"   # a temporary file read back at once: compressing it costs time only
        # the render's EXR goes to a folder of its own, removed when the scene is closed or collected and at
        # the process's exit (Ray's recycled workers skip exit handlers: distribute._render_shard_task closes it;
        # a local Ray's workers, ended at ray.shutdown, write inside the driver's TMP_ROOT_ENV folder, which the
        # driver removes)
        root = os.environ.get(TMP_ROOT_ENV)
        self.tmp_dir = self._tmp = tempfile.mkdtemp(prefix="hands-render-",
                                                    dir=root if root and os.path.isdir(root) else temp_parent())
        self._remove_tmp = weakref.finalize(self, shutil.rmtree, self._tmp, ignore_errors=True)
        r.filepath = os.path.join(self._tmp, "frame.exr")

        mesh = bpy.data.meshes.new("hand")
        mesh.from_pydata(np.zeros((num_dense, 3)).tolist(), [], np.asarray(dense_faces).tolist())
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
        mesh.update()
        self.mesh = mesh
        obj = bpy.data.objects.new("hand", mesh)
        obj.pass_index = HAND_PASS_INDEX
        scene.collection.objects.link(obj)

        # the skin's parameters are object properties read by Attribute nodes: changing
        # them per sample costs Cycles an object update, not a shader re-sync (3x cheaper)
        self.detail = None
        if regions is not None:  # the procedural skin (synth/skin_shader.py, synth/skin_bake.py)
            from .skin_shader import build_skin_material, check_regions

            if rest_vertices is None or np.shape(rest_vertices) != (num_dense, 3):
                raise ValueError("the procedural skin needs the dense mesh's rest vertices "
                                 f"({num_dense} x 3), got {None if rest_vertices is None else np.shape(rest_vertices)}")
            build_skin_material(bpy, obj, regions)
            self.detail = {"regions": check_regions(regions, num_dense), "rest": np.asarray(rest_vertices, dtype=float),
                           "faces": np.asarray(dense_faces)}
        else:  # no regions: the plain one-colour skin
            mesh.materials.append(_plain_skin(bpy, "skin"))
        for mat in mesh.materials:      # the forearm shares these
            for node in mat.node_tree.nodes:
                if node.type == "BSDF_PRINCIPLED":
                    node.subsurface_method = SUBSURFACE_METHODS[cfg.skin_subsurface]
        self.hand = obj
        self._hand_co = np.zeros((num_dense, 3))
        self._skin = None
        self._baked: dict = {}     # mesh name -> the skin its albedo attribute holds

        cam_data = bpy.data.cameras.new("camera")
        cam_data.sensor_fit = "AUTO"
        cam_data.clip_start = 0.01
        cam_data.clip_end = 100.0
        self.camera = bpy.data.objects.new("camera", cam_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        self._world_key = None
        self.body_arm = arm
        self._build_forearm(bpy, scene, dense_faces, num_dense)
        self._build_occluders(bpy, scene)

    def _build_forearm(self, bpy, scene, dense_faces, num_dense) -> None:
        """The arm object (the body's, synth/body_arm.py, or the tube, synth/forearm.py): its own mesh and pass
        index, the hand's skin material."""
        from .forearm import forearm_faces, wrist_loop_indices

        self._wrist = wrist_loop_indices(dense_faces)     # the arm's first ring, in the hand's vertex ids
        if self.body_arm is not None and not np.array_equal(self.body_arm.wrist_loop, self._wrist):
            raise ValueError("the body arm's first ring is not the render mesh's wrist loop")
        faces = forearm_faces(len(self._wrist)) if self.body_arm is None else self.body_arm.faces
        mesh = bpy.data.meshes.new("forearm")
        mesh.from_pydata(np.zeros((faces.max() + 1, 3)).tolist(), [], faces.tolist())
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
        mesh.update()
        for mat in self.hand.data.materials:   # (a flat, non-scattering arm material measured no cheaper)
            mesh.materials.append(mat)
        self.arm = bpy.data.objects.new("forearm", mesh)
        self.arm.pass_index = ARM_PASS_INDEX
        self.arm.hide_render = True
        self._arm_co = self._arm_skin_points = None
        self._arm_faces = faces
        scene.collection.objects.link(self.arm)

    def _build_occluders(self, bpy, scene) -> None:
        """`occluder_max` slots, each with one object per kind (its own copy of the kind's unit mesh), always
        rendered. A sample moves the used object's vertices into place and collapses every other one to a
        point (no area, never seen). Why not hide, swap meshes or move objects: with persistent data Cycles'
        pixels then depended on which occluders earlier samples had shown; vertex updates, like the hand's
        and the forearm's, keep every sample's pixels a function of that sample alone."""
        from .occluders import KINDS, unit_mesh

        mat = bpy.data.materials.new("occluder")
        self.occluders = []    # per slot: {kind: (object, unit vertices)}
        self._occluder_co: dict = {}   # object name -> the vertices it holds
        for i in range(max(0, self.cfg.occluder_max)):
            slot = {}
            for kind in KINDS:
                v, f = unit_mesh(kind)
                mesh = bpy.data.meshes.new(f"occluder_{i}_{kind}")
                mesh.from_pydata(np.zeros_like(v).tolist(), [], f.tolist())
                mesh.polygons.foreach_set("use_smooth", np.full(len(mesh.polygons), kind != "box"))
                mesh.update()
                mesh.materials.append(mat)
                obj = bpy.data.objects.new(mesh.name, mesh)
                obj.pass_index = OCCLUDER_PASS_INDEX
                scene.collection.objects.link(obj)
                slot[kind] = (obj, v)
            self.occluders.append(slot)
        mat.use_nodes = True
        nt = mat.node_tree
        bsdf = nt.nodes["Principled BSDF"]

        def prop(name, vector=False):
            node = nt.nodes.new("ShaderNodeAttribute")
            node.attribute_type, node.attribute_name = "OBJECT", name
            return node.outputs["Color" if vector else "Fac"]

        coords = nt.nodes.new("ShaderNodeTexCoord").outputs["Object"]
        noise, checker = nt.nodes.new("ShaderNodeTexNoise"), nt.nodes.new("ShaderNodeTexChecker")
        for tex in (noise, checker):
            nt.links.new(coords, tex.inputs["Vector"])
            nt.links.new(prop("occ_pattern_scale"), tex.inputs["Scale"])
        pick = nt.nodes.new("ShaderNodeMix")           # noise (0) or checker (1) pattern
        nt.links.new(prop("occ_checker"), pick.inputs["Factor"])
        nt.links.new(noise.outputs["Fac"], pick.inputs["A"])
        nt.links.new(checker.outputs["Fac"], pick.inputs["B"])
        colour = nt.nodes.new("ShaderNodeMix")
        colour.data_type = "RGBA"
        nt.links.new(pick.outputs["Result"], colour.inputs["Factor"])
        nt.links.new(prop("occ_colour_a", True), colour.inputs["A"])
        nt.links.new(prop("occ_colour_b", True), colour.inputs["B"])
        nt.links.new(colour.outputs["Result"], bsdf.inputs["Base Color"])
        nt.links.new(prop("occ_roughness"), bsdf.inputs["Roughness"])

    def close(self) -> None:
        """Remove the scene's temporary folder (its last frame.exr); the scene renders no more after it."""
        self._remove_tmp()

    def apply(self, scene) -> None:
        """Show one sample (synth.scene.SampleScene): its hand, backdrop, world, skin, arm, occluders and
        camera. What is unchanged since the last sample costs no Blender update."""
        if not np.array_equal(scene.hand_vertices, self._hand_co):
            self.set_vertices(scene.hand_vertices)
        self.set_backdrop(scene.backdrop_image)
        self.set_world(scene.hdri_entry, scene.world["rotation_deg"], scene.world["strength"])
        self.set_skin(scene.skin)
        self.set_forearm(scene.arm_vertices, scene.arm_skin_points)
        self.set_occluders(scene.occluders)
        self.set_camera(scene.K, scene.R, scene.t)

    def set_vertices(self, dense_vertices: np.ndarray) -> None:
        self._hand_co = np.asarray(dense_vertices, dtype=np.float64)
        self.mesh.vertices.foreach_set("co", self._hand_co.astype(np.float32).ravel())
        self.mesh.update()

    def set_forearm(self, vertices: np.ndarray | None, skin_points: np.ndarray | None = None) -> None:
        """The posed forearm's vertices (synth.forearm layout) and, for the procedural skin, the points its
        noise is painted at (synth.scene.forearm_skin_points); None: no forearm."""
        self.arm.hide_render = vertices is None
        if vertices is None:
            return
        if self.detail is not None and skin_points is None:
            raise ValueError("the procedural skin needs the forearm's skin points (set_forearm(vertices, skin_points))")
        self._arm_skin_points = None if skin_points is None else np.asarray(skin_points, dtype=np.float64)
        co = np.asarray(vertices, dtype=np.float32).ravel()
        if self._arm_co is None or not np.array_equal(co, self._arm_co):   # unchanged: no geometry re-sync
            self.arm.data.vertices.foreach_set("co", co)
            self.arm.data.update()
            self._arm_co = co

    def set_occluders(self, records: list) -> None:
        """Put the recorded occluders (synth.occluders.draw) into the first len(records) slots."""
        if len(records) > len(self.occluders):
            raise ValueError(f"{len(records)} occluders, but the scene has {len(self.occluders)} (occluder_max)")
        for i, slot in enumerate(self.occluders):
            rec = records[i] if i < len(records) else None
            for kind, (obj, unit) in slot.items():
                if rec is None or rec["kind"] != kind:
                    self._set_occluder_vertices(obj, np.zeros(unit.size, dtype=np.float32))
                    continue
                rot, size = np.asarray(rec["rotation"]), np.asarray(rec["size"])
                verts = (unit * size) @ rot.T + np.asarray(rec["location"])
                self._set_occluder_vertices(obj, verts.astype(np.float32).ravel())
                obj["occ_colour_a"] = [float(c) for c in srgb_to_linear(rec["colour_a"])]
                obj["occ_colour_b"] = [float(c) for c in srgb_to_linear(rec["colour_b"])]
                obj["occ_checker"] = 1.0 if rec["pattern"] == "checker" else 0.0
                obj["occ_pattern_scale"] = float(rec["pattern_scale"])
                obj["occ_roughness"] = float(rec["roughness"])
                obj.update_tag()   # Cycles re-reads an object's properties only when it is tagged

    def _set_occluder_vertices(self, obj, co: np.ndarray) -> None:
        """Unchanged vertices (an unused slot stays collapsed): no geometry re-sync, as for the forearm."""
        if not np.array_equal(self._occluder_co.get(obj.name), co):
            obj.data.vertices.foreach_set("co", co)
            obj.data.update()
            self._occluder_co[obj.name] = co

    def _skin_to_arm(self) -> None:
        """The forearm wears the hand's skin: the same material reads the same object properties."""
        for key in self.hand.keys():
            self.arm[key] = self.hand[key]

    def set_backdrop(self, image_linear: np.ndarray | None) -> None:
        """The photo (linear RGB, the render's size) the next renders are composited over; None: the HDRI."""
        if image_linear is not None and not self.scene.render.film_transparent:
            raise ValueError("a photo backdrop needs a scene built with backdrop_folders (a transparent film)")
        self.backdrop = image_linear

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
        """The sample's skin (synth.skin.sample_skin) as the object properties the material reads
        (synth.skin_shader.SKIN_PROPERTIES; the plain skin reads the SKIN_SOCKETS ones among them)."""
        from .skin_shader import shader_values

        for prop, value in shader_values(skin).items():
            self.hand[prop] = value
        self.hand.update_tag()
        self._skin = skin

    def _bake_skin(self) -> None:
        """The procedural skin's per-vertex part (synth/skin_bake.py): albedo attributes and shading normals of
        the hand and, when shown, the forearm, whose normals join the hand's at the wrist. An albedo is
        written only when it changed: Cycles re-syncs a mesh whose attribute changed at about 40 ms a time
        for the hand (new normals or vertices cost next to nothing), which is why skins come in runs of
        views (RenderConfig.skin_run_length)."""
        from .meshops import vertex_normals
        from .skin_bake import (body_arm_palm_weights, detail_normals, forearm_palm_weights, joined_normals,
                                vertex_albedo)
        from .skin_regions import CREASE_COORD
        from .skin_shader import set_surface

        if self._skin is None:
            raise RuntimeError("set_skin before render: the procedural skin has no sample to bake")
        d, skin = self.detail, self._skin
        parts = {"hand": (self.mesh, d["rest"], d["regions"])}
        if self.arm.hide_render:
            normals = {"hand": vertex_normals(self._hand_co, d["faces"])}
        else:
            arm_co = self._arm_co.reshape(-1, 3).astype(np.float64)
            normals = dict(zip(("hand", "arm"), joined_normals(self._hand_co, d["faces"], arm_co, self._arm_faces,
                                                               self._wrist)))
            loop_palm = d["regions"].get("palm", np.zeros(len(self._hand_co)))[self._wrist]
            palm = forearm_palm_weights(loop_palm, len(arm_co)) if self.body_arm is None else \
                body_arm_palm_weights(loop_palm, self.body_arm.nearest_loop, self.body_arm.hand_share)
            parts["arm"] = (self.arm.data, self._arm_skin_points, {"palm": palm})
        for name, (mesh, points, regions) in parts.items():
            if self._baked.get(name) != skin:
                set_surface(mesh, vertex_albedo(skin, points, regions), regions.get(CREASE_COORD))
                self._baked[name] = skin
            mesh.normals_split_custom_set_from_vertices(
                detail_normals(normals[name], points, skin, regions.get("crease")).tolist())
            mesh.update()

    def set_world(self, entry, rotation_deg: float, strength: float) -> None:
        key = (entry.id, rotation_deg, strength)
        if key == self._world_key:  # unchanged world: Cycles keeps its importance map
            return
        from hdri.blender_world import apply_world

        apply_world(self.scene, entry, rotation_deg, strength,
                    sample_map_resolution=self.cfg.sample_map_resolution)
        self._world_key = key

    def render(self) -> tuple:
        """(rgb uint8 HxWx3, depth float32 HxW metres of hand and arm with 0 elsewhere, labels uint8 HxW in
        synth.shards.MASK_VALUES: what each pixel shows, from the Object Index pass)."""
        lin, depth, labels = self.render_linear()
        return np.round(linear_to_srgb(lin) * 255.0).astype(np.uint8), depth, labels

    def prepare_frame(self) -> None:
        """What the next frame needs besides `apply`: the arm wearing the hand's skin and the procedural
        skin's per-vertex bake (render_linear calls it; a benchmark's bare render calls it untimed)."""
        if not self.arm.hide_render:
            self._skin_to_arm()
        if self.detail is not None:
            self._bake_skin()

    def render_linear(self) -> tuple:
        """`render` with the image as the renderer's linear intensities (before exposure and 8-bit
        encoding, so a camera model can expose it without banding)."""
        import OpenEXR

        from .shards import MASK_VALUES

        self.prepare_frame()
        with blender_output_captured():
            self.bpy.ops.render.render(write_still=True)
        channels = {}
        with OpenEXR.File(self.scene.render.filepath) as exr:
            for part in exr.parts:
                for name, ch in part.channels.items():
                    channels[name.split(".", 1)[-1]] = ch.pixels
        combined = channels["Combined"][..., :3]
        if self.backdrop is not None:
            from .backdrops import composite

            combined = composite(combined, channels["Combined"][..., 3], self.backdrop)
        index = np.rint(channels["Object Index.X"]).astype(np.int64)
        labels = np.zeros(index.shape, dtype=np.uint8)
        for pass_index, name in ((HAND_PASS_INDEX, "hand"), (ARM_PASS_INDEX, "arm"), (OCCLUDER_PASS_INDEX, "occluder")):
            labels[index == pass_index] = MASK_VALUES[name]
        body = (index == HAND_PASS_INDEX) | (index == ARM_PASS_INDEX)
        depth = np.where(body, channels["Depth.Z"], 0.0).astype(np.float32)
        return combined, depth, labels
