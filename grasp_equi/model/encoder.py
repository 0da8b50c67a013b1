"""Object encoder: the cloud's sampled nodes -> equivariant node features (run once per cloud)."""

from __future__ import annotations

import torch
from e3nn import o3

from grasp_equi.graph import radius_graph
from grasp_equi.model.blocks import GatedConvolution, RadialEmbedding, polynomial_envelope


class ObjectEncoder(torch.nn.Module):
    """Radius-graph message passing over object nodes.

    Node inputs (``irreps_in`` = ``1x0e + 2x1o + 1x2e``): a constant, the node's position
    relative to the centroid (translation-free), its outward normal, and the l=2 harmonic of
    the normal (sign-free, so it carries the surface orientation even where the sign of the
    normal is ambiguous). Output: ``irreps_hidden`` per node.

    Args:
        irreps_hidden: hidden/output features, e.g. ``"32x0e + 8x1o + 4x2e"``.
        num_layers: number of gated convolutions.
        lmax: degree of the edge spherical harmonics.
        radius: neighbour radius in normalised units (object radius = 1).
        num_radial, radial_hidden: radial embedding size and radial MLP width.
        avg_neighbors: expected neighbour count, used to normalise sums.
    """

    def __init__(self, irreps_hidden, num_layers: int = 2, lmax: int = 2, radius: float = 0.5,
                 num_radial: int = 8, radial_hidden: int = 32, avg_neighbors: float = 16.0):
        super().__init__()
        self.irreps_in = o3.Irreps("1x0e + 2x1o + 1x2e")
        self.irreps_out = o3.Irreps(irreps_hidden)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.radius = radius
        self.radial = RadialEmbedding(radius, num_radial)
        self.embed = o3.Linear(self.irreps_in, self.irreps_out)
        self.layers = torch.nn.ModuleList(
            GatedConvolution(self.irreps_out, self.irreps_out, self.irreps_sh, self.irreps_out,
                             num_radial, radial_hidden, avg_neighbors)
            for _ in range(num_layers)
        )

    def node_inputs(self, node_pos: torch.Tensor, node_normal: torch.Tensor,
                    node_axis: torch.Tensor | None = None) -> torch.Tensor:
        """``[M, 12]``: 1, position, signed normal, and the l=2 harmonic of the unit normal direction
        ``node_axis`` (sign-free; taken from ``node_normal`` when None). The signed normal may be
        shortened where its sign is ambiguous; normalising it would amplify rounding there."""
        ones = torch.ones_like(node_pos[:, :1])  # [M, 1]
        axis = node_normal if node_axis is None else node_axis  # [M, 3]
        sh2 = o3.spherical_harmonics(2, axis, normalize=True, normalization="component")  # [M, 5]
        return torch.cat([ones, node_pos, node_normal, sh2], dim=1)  # [M, 12]

    def forward(self, node_pos: torch.Tensor, node_normal: torch.Tensor, node_ptr: torch.Tensor | None = None,
                node_axis: torch.Tensor | None = None):
        """``node_pos``/``node_normal``/``node_axis`` ``[M, 3]`` (see ``node_inputs``); ``node_ptr`` ``[B+1]``
        (None: one cloud)."""
        if node_ptr is None:
            node_ptr = torch.tensor([0, node_pos.shape[0]], device=node_pos.device)
        edge_index = radius_graph(node_pos, node_ptr, self.radius)  # [2, E]
        vec = node_pos[edge_index[1]] - node_pos[edge_index[0]]  # [E, 3]
        length = vec.norm(dim=1)  # [E]
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        edge_radial = self.radial(length)  # [E, num_radial]
        envelope = polynomial_envelope(length, self.radius)  # [E]
        x = self.embed(self.node_inputs(node_pos, node_normal, node_axis))  # [M, hidden.dim]
        for layer in self.layers:
            x = layer(x, x, edge_index, edge_sh, edge_radial, envelope)
        return x  # [M, hidden.dim]
