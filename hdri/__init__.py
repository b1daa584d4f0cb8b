"""HDR environments for the renderer: the catalog (bundled Blender worlds, user folders of
.hdr/.exr, procedural skies) with a held-out split, validation, the Blender world, a contact sheet.

Importing the package imports neither bpy nor OpenEXR; the modules that need them do so
when called."""
