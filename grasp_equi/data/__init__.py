"""Training data: objects, clouds, candidate grasps, labels and the sharded dataset format.

``objects`` (procedural families, user meshes), ``clouds`` (complete and ray-cast partial
views), ``grasps`` (samplers on the true surface), ``labels`` (sampler mix + robust labels
from ``grasp_equi.quality``), ``worker`` (everything for one object), ``shards`` (format and
``load_dataset``; numpy only), ``manifest`` and ``generate`` (the ``grasp-equi generate`` CLI).
Nothing is imported here, so loading a dataset never pulls in open3d or trimesh.
"""
