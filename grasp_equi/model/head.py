"""Grasp head: the K contacts of each grasp as graph nodes -> one invariant logit per grasp."""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet

from grasp_equi.geometry import soft_sign
from grasp_equi.graph import contact_object_graph, contact_pair_graph
from grasp_equi.model.blocks import GatedConvolution, RadialEmbedding, polynomial_envelope


class _Edges:
    """Spherical harmonics, radial embedding and envelope of one edge set (plain holder)."""

    def __init__(self, index, vec, irreps_sh, radial: RadialEmbedding):
        length = vec.norm(dim=1)  # [E]
        self.index = index  # [2, E]
        self.sh = o3.spherical_harmonics(irreps_sh, vec, normalize=True, normalization="component")  # [E, sh.dim]
        self.radial = radial(length)  # [E, num_radial]
        self.envelope = polynomial_envelope(length, radial.cutoff)  # [E]

    def args(self):
        return self.index, self.sh, self.radial, self.envelope


def _away_from_grasp_centre(normal, pos, contact_grasp, num_contacts):
    """Flip each contact normal ``[C, 3]`` to point away from its grasp's contact centroid.

    A PCA normal has no sign; "away from the object's centroid" is wrong wherever the surface
    faces the centroid (a torus' inner ring, a mug's inside). The fingers squeeze the material
    between the contacts, so away from their centre is outward there too. Rotation-equivariant:
    only a dot product of relative vectors decides, and it fades through zero (``soft_sign``).
    """
    centre = torch.zeros(num_contacts.shape[0], 3, dtype=pos.dtype, device=pos.device)  # [G, 3]
    centre.index_add_(0, contact_grasp, pos)
    centre = centre / num_contacts[:, None].to(pos.dtype)
    arm = pos - centre[contact_grasp]  # [C, 3]
    arm = arm / arm.norm(dim=1, keepdim=True).clamp_min(1e-3)  # float32: a floor well above rounding
    return normal * soft_sign((arm * normal).sum(dim=1, keepdim=True))  # [C, 3], fades through 0 when ambiguous


class GraspHead(torch.nn.Module):
    """Scores grasps against an encoded object.

    Contact node inputs: a constant and the contact's position relative to the object's
    centroid (the torque arm), ``irreps_in`` = ``1x0e + 1x1o``; with ``contact_normals`` also
    the cloud's outward normal at the contact, ``irreps_in`` = ``1x0e + 2x1o``. Layers:
      1. object -> contact: gather encoder features of object nodes within ``radius``;
      2. ``pair_layers`` x contact <-> contact within the grasp, via relative vectors;
      3. invariant scalars, mean-pooled over the grasp's contacts (order-free), MLP -> logit.
    ``irreps_out`` = ``1x0e`` (the logit).
    """

    def __init__(self, irreps_hidden, pair_layers: int = 2, lmax: int = 2, radius: float = 0.5,
                 pair_range: float = 3.0, num_radial: int = 8, radial_hidden: int = 32,
                 avg_neighbors: float = 16.0, readout_hidden: int = 64, contact_normals: bool = False,
                 contact_normal_sign: str = "centroid"):
        super().__init__()
        self.contact_normals = contact_normals
        self.contact_normal_sign = contact_normal_sign
        self.irreps_in = o3.Irreps("1x0e + 2x1o" if contact_normals else "1x0e + 1x1o")
        self.irreps_hidden = o3.Irreps(irreps_hidden)
        self.irreps_out = o3.Irreps("1x0e")
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.radius = radius
        self.object_radial = RadialEmbedding(radius, num_radial)
        # Contacts of one grasp lie at most ~2 object radii apart (they must touch the cloud).
        self.pair_radial = RadialEmbedding(pair_range, num_radial)
        self.embed = o3.Linear(self.irreps_in, self.irreps_hidden)
        self.gather = GatedConvolution(self.irreps_hidden, self.irreps_hidden, self.irreps_sh, self.irreps_hidden,
                                       num_radial, radial_hidden, avg_neighbors)
        self.pair = torch.nn.ModuleList(
            GatedConvolution(self.irreps_hidden, self.irreps_hidden, self.irreps_sh, self.irreps_hidden,
                             num_radial, radial_hidden, avg_neighbors=2.0)
            for _ in range(pair_layers)
        )
        num_scalars = sum(mul for mul, ir in self.irreps_hidden if ir == o3.Irrep("0e"))
        self.scalar_slice = self.irreps_hidden.slices()[0]  # irreps are sorted: 0e first
        # Pooled invariants share a large common offset at init; LayerNorm (per grasp, over
        # channels) removes it so an untrained model still spreads its scores over (0, 1).
        self.norm = torch.nn.LayerNorm(num_scalars)
        self.readout = FullyConnectedNet([num_scalars, readout_hidden, readout_hidden, 1], torch.nn.functional.silu)
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
                contact_normal=None):
        """Inputs as in ``grasp_equi.keys``; returns logits ``[G]``."""
        pooled = self.pool(node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
                           contact_normal)  # [G, n_scalars]
        return self.readout(self.norm(pooled)).squeeze(1) + self.bias  # [G]

    def pool(self, node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
             contact_normal=None):
        """The invariant description ``[G, n_scalars]`` of each grasp that the readout maps to its logit."""
        contact_cloud = grasp_cloud[contact_grasp]  # [C]
        obj_index = contact_object_graph(contact_pos, contact_cloud, node_pos, node_ptr, self.radius)  # [2, E_oc]
        obj = _Edges(obj_index, contact_pos[obj_index[1]] - node_pos[obj_index[0]], self.irreps_sh,
                     self.object_radial)
        pair_index = contact_pair_graph(contact_grasp, num_contacts)  # [2, E_cc]
        pair = _Edges(pair_index, contact_pos[pair_index[1]] - contact_pos[pair_index[0]], self.irreps_sh,
                      self.pair_radial)

        ones = torch.ones_like(contact_pos[:, :1])  # [C, 1]
        inputs = [ones, contact_pos]
        if self.contact_normals:
            if contact_normal is None:
                raise ValueError("this model needs contact normals (batch key 'contact_normal')")
            if self.contact_normal_sign == "grasp":
                contact_normal = _away_from_grasp_centre(contact_normal, contact_pos, contact_grasp, num_contacts)
            inputs.append(contact_normal)  # [C, 3]
        x = self.embed(torch.cat(inputs, dim=1))  # [C, irreps_in.dim]  ->  [C, hidden.dim]
        x = self.gather(node_feats, x, *obj.args())
        for layer in self.pair:
            x = layer(x, x, *pair.args())
        scalars = x[:, self.scalar_slice]  # [C, n_scalars], invariant
        pooled = torch.zeros(num_contacts.shape[0], scalars.shape[1], dtype=x.dtype, device=x.device)
        pooled.index_add_(0, contact_grasp, scalars)
        return pooled / num_contacts[:, None].to(x.dtype)  # [G, n_scalars], mean over contacts
