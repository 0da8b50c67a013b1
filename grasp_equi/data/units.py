"""Mesh units and file suffixes (standard library only, so the CLI can offer them in ``--help``)."""

# Units accepted by ``load_mesh_object`` / ``--units``: metres per unit.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
MESH_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf", ".off")
