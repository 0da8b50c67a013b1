"""Field names of the graph dictionaries, in one place (NequIP's ``_keys.py`` is the model).

A *graph batch* is a plain ``dict[str, torch.Tensor]`` holding one or more object clouds and
their candidate grasps. Positions inside a batch are already centred on each cloud's centroid
and divided by its characteristic radius, so every tensor below is translation- and
scale-free; only rotations act on them.
"""

# Object nodes (farthest-point samples of each cloud).
NODE_POS = "node_pos"  # [n_nodes, 3] float32, (p - centroid) / radius
NODE_NORMAL = "node_normal"  # [n_nodes, 3] float32, outward normals (unit; shorter where the sign is ambiguous)
NODE_AXIS = "node_axis"  # [n_nodes, 3] float32, unit normal direction of arbitrary sign (its l=2 harmonic is used)
NODE_CLOUD = "node_cloud"  # [n_nodes] int64, index of the cloud each node belongs to
NODE_PTR = "node_ptr"  # [n_clouds + 1] int64, nodes of cloud b are ptr[b]:ptr[b+1]
NODE_FEATS = "node_feats"  # [n_nodes, irreps_hidden.dim] encoder output

# Per cloud.
CLOUD_CENTER = "cloud_center"  # [n_clouds, 3] float64, centroid in the input frame
CLOUD_SCALE = "cloud_scale"  # [n_clouds] float64, max distance of a point from the centroid

# Contacts and grasps.
CONTACT_POS = "contact_pos"  # [n_contacts, 3] float32, same normalisation as NODE_POS
CONTACT_NORMAL = "contact_normal"  # [n_contacts, 3] float32, outward PCA normal of the cloud at the contact (as NODE_NORMAL)
CONTACT_GRASP = "contact_grasp"  # [n_contacts] int64, grasp each contact belongs to
GRASP_CLOUD = "grasp_cloud"  # [n_grasps] int64, cloud each grasp is scored on
GRASP_NUM_CONTACTS = "grasp_num_contacts"  # [n_grasps] int64, K of each grasp
GRASP_LOGIT = "grasp_logit"  # [n_grasps] float32, model output before the sigmoid

# Training targets (written by the data pipeline, read by train/evaluate).
GRASP_LABEL = "grasp_label"  # [n_grasps] float32, robust P(force closure) in [0, 1]
GRASP_HELD = "grasp_held"  # [n_grasps] float32, P(held) from physics trials in [0, 1] (NaN: not simulated)

# What a score means (GraspScorer.score(..., output=...), the node's fields).
OUTPUT_HELD = "held"  # P(the object stays in the hand through close, lift and shake): physics trials
OUTPUT_FORCE_CLOSURE = "force_closure"  # P(robust force closure): the analytic label (Ferrari-Canny, noise)
OUTPUTS = (OUTPUT_HELD, OUTPUT_FORCE_CLOSURE)
