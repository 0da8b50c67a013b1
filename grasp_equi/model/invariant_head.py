"""Invariant grasp head: each contact's invariant description once, then a small MLP per grasp.

The convolution head (``head.py``) runs an equivariant tensor product on every object-node ->
contact edge and on every contact pair; its cost grows ~140 ms per 1,000 grasps on one CPU
thread. Here the equivariant work per contact is a weighted sum of node features (no tensor
product), and everything after that is invariant by construction: dot products and quadratic
forms of the contact's vectors (Gram matrices, ``v^T T v``), which no rotation or reflection
changes. Per grasp only small MLPs run on those invariants.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3

from grasp_equi.graph import contact_object_graph, contact_pair_graph
from grasp_equi.model.blocks import RadialEmbedding, polynomial_envelope
from grasp_equi.model.head import _away_from_grasp_centre

SUPPORTED = (o3.Irrep("0e"), o3.Irrep("1o"), o3.Irrep("2e"))


def _mlp(sizes: list[int]) -> torch.nn.Sequential:
    """Linear layers with SiLU between and after them (the last layer too: callers pool the output)."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.SiLU()]
    return torch.nn.Sequential(*layers)


def _upper(gram: torch.Tensor) -> torch.Tensor:
    """Upper triangle (diagonal included) ``[..., n(n+1)/2]`` of square matrices ``[..., n, n]``."""
    n = gram.shape[-1]
    rows, cols = torch.triu_indices(n, n, device=gram.device)
    return gram[..., rows, cols]


def _quadratic_forms(tensors: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``v^T T v`` for every l=2 feature ``T`` ``[n, t, 5]`` and vector ``v`` ``[n, v, 3]`` -> ``[n, t * v]``.

    The l=2 harmonic of ``v`` (unnormalised: ``|v|^2`` times that of its direction) is the
    traceless part of ``v v^T`` in e3nn's basis, so its dot product with ``T`` is the quadratic
    form up to a constant: invariant, and continuous through ``v = 0``.
    """
    harmonic = o3.spherical_harmonics(2, vectors, normalize=False, normalization="component")  # [n, v, 5]
    return torch.einsum("ntm,nvm->ntv", tensors, harmonic).flatten(1)  # [n, t * v]


class InvariantGraspHead(torch.nn.Module):
    """Scores grasps against an encoded object (``irreps_hidden`` = the encoder's ``irreps_hidden``,
    of ``0e``, ``1o`` and ``2e`` only).

    Per contact ``c`` at ``p_c`` (``irreps_in`` = ``1x0e + 1x1o``, with ``contact_normals``
    ``1x0e + 2x1o``: the arm ``p_c`` from the object's centroid and the outward normal ``n_c``):
      1. object -> contact: ``h_c = sum_j R(|r_cj|) * x_j`` over object nodes within ``radius``
         (one learned radial weight per channel: equivariant, no tensor product) and
         ``num_directions`` vectors ``d_c = sum_j R'(|r_cj|) r_cj``;
      2. invariants: the scalars of ``h_c``, the Gram matrix of its vectors ``{h_c^1o, d_c, p_c, n_c}``,
         the quadratic forms ``v^T T v`` of its l=2 features with each vector, and ``T . T'``;
         an MLP embeds them (``hidden``).
    Per grasp (contacts and ordered contact pairs of one grasp, any K >= 2):
      3. each pair ``(i, j)``: both embeddings and the invariants of ``e = p_j - p_i`` with
         ``pair_vectors`` learned mixtures of each contact's vectors (``F_i . e``, ``F_j . e``,
         ``F_i . F_j``, ``|e|``, ``e^T T e``);
      4. each contact relative to the grasp's centre ``a_c``: ``F_c . a_c``, ``|a_c|``;
      5. means over pairs and contacts (order-free), LayerNorm, MLP -> logit (``irreps_out`` = ``1x0e``).
    """

    def __init__(self, irreps_hidden, radius: float = 0.4, num_radial: int = 8, avg_neighbors: float = 8.0,
                 hidden: int = 64, num_directions: int = 8, pair_vectors: int = 4, contact_normals: bool = True,
                 contact_normal_sign: str = "centroid"):
        super().__init__()
        self.irreps_hidden = o3.Irreps(irreps_hidden)
        unsupported = [str(ir) for _, ir in self.irreps_hidden if ir not in SUPPORTED]
        if unsupported:
            raise ValueError(f"the invariant head takes 0e, 1o and 2e node features; got {unsupported}")
        self.contact_normals = contact_normals
        self.contact_normal_sign = contact_normal_sign
        self.irreps_in = o3.Irreps("1x0e + 2x1o" if contact_normals else "1x0e + 1x1o")
        self.irreps_out = o3.Irreps("1x0e")
        self.radius, self.avg_neighbors = radius, avg_neighbors
        dims = {ir: [] for ir in SUPPORTED}  # feature dimensions of each irrep type, e3nn's mul-major layout
        channel = []  # [dim] the multiplicity channel each feature dimension belongs to
        for (mul, ir), sl in zip(self.irreps_hidden, self.irreps_hidden.slices()):
            dims[ir] += list(range(sl.start, sl.stop))
            first = channel[-1] + 1 if channel else 0
            channel += [first + u for u in range(mul) for _ in range(ir.dim)]
        self.register_buffer("channel", torch.tensor(channel), persistent=False)  # [dim]
        for name, ir in zip(("scalar_dims", "vector_dims", "tensor_dims"), SUPPORTED):
            self.register_buffer(name, torch.tensor(dims[ir], dtype=torch.long), persistent=False)
        n_scalar, n_tensor = len(dims[SUPPORTED[0]]), len(dims[SUPPORTED[2]]) // 5
        n_vector = len(dims[SUPPORTED[1]]) // 3 + num_directions + 1 + int(contact_normals)

        self.radial = RadialEmbedding(radius, num_radial)
        self.node_weights = torch.nn.Linear(num_radial, self.irreps_hidden.num_irreps, bias=False)
        self.direction_weights = torch.nn.Linear(num_radial, num_directions, bias=False)
        n_contact = n_scalar + n_vector * (n_vector + 1) // 2 + n_tensor * n_vector + n_tensor * (n_tensor + 1) // 2
        self.contact_embed = torch.nn.Sequential(torch.nn.LayerNorm(n_contact), _mlp([n_contact, hidden, hidden]))
        self.pair_mix = torch.nn.Parameter(torch.randn(n_vector, pair_vectors) / math.sqrt(n_vector))
        n_pair = 2 * hidden + 1 + 2 * pair_vectors + pair_vectors**2 + 2 * n_tensor
        self.pair_embed = _mlp([n_pair, hidden, hidden])
        self.centre_embed = _mlp([hidden + pair_vectors + 1, hidden])
        self.norm = torch.nn.LayerNorm(2 * hidden)
        self.readout = torch.nn.Sequential(torch.nn.Linear(2 * hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))

    # ------------------------------------------------------------------ per contact
    def gather(self, node_feats, node_pos, node_ptr, contact_pos, contact_cloud):
        """Equivariant features at each contact: ``h`` ``[C, hidden.dim]`` and directions ``[C, num_directions, 3]``."""
        src, dst = contact_object_graph(contact_pos, contact_cloud, node_pos, node_ptr, self.radius)  # [E] x2
        vec = contact_pos[dst] - node_pos[src]  # [E, 3]
        length = vec.norm(dim=1)  # [E]
        basis = self.radial(length) * polynomial_envelope(length, self.radius)[:, None]  # [E, num_radial]
        # one weight per channel, spread over its 2l+1 dimensions by the (pre-indexed) matrix
        weight = basis @ self.node_weights.weight.t()[:, self.channel]  # [E, hidden.dim]
        h = torch.zeros(contact_pos.shape[0], node_feats.shape[1], dtype=node_feats.dtype, device=node_feats.device)
        h.index_add_(0, dst, weight * node_feats[src])  # [C, hidden.dim]
        # vec / radius, not its unit direction: continuous where a contact sits on a node
        per_edge = self.direction_weights(basis)[:, :, None] * (vec / self.radius)[:, None, :]  # [E, n_dir, 3]
        directions = torch.zeros(contact_pos.shape[0], *per_edge.shape[1:], dtype=h.dtype, device=h.device)
        directions.index_add_(0, dst, per_edge)  # [C, n_dir, 3]
        scale = 1.0 / math.sqrt(self.avg_neighbors)
        return h * scale, directions * scale

    def contact_invariants(self, h, directions, contact_pos, contact_normal):
        """``(invariants [C, n_contact], vectors [C, n_vector, 3], tensors [C, n_tensor, 5])`` of each contact."""
        vectors = [h[:, self.vector_dims].reshape(h.shape[0], -1, 3), directions, contact_pos[:, None]]
        if self.contact_normals:
            vectors.append(contact_normal[:, None])
        vectors = torch.cat(vectors, dim=1)  # [C, n_vector, 3]
        tensors = h[:, self.tensor_dims].reshape(h.shape[0], -1, 5)  # [C, n_tensor, 5]
        invariants = torch.cat([
            h[:, self.scalar_dims],  # [C, n_scalar]
            _upper(vectors @ vectors.transpose(1, 2)),  # [C, n_vector (n_vector + 1) / 2]
            _quadratic_forms(tensors, vectors),  # [C, n_tensor n_vector]
            _upper(tensors @ tensors.transpose(1, 2)),  # [C, n_tensor (n_tensor + 1) / 2]
        ], dim=1)
        return invariants, vectors, tensors

    # ------------------------------------------------------------------ per grasp
    def pair_features(self, embed, mixed, tensors, contact_pos, pair_index):
        """Embedding ``[P, hidden]`` of each ordered contact pair ``(i, j)`` of a grasp."""
        i, j = pair_index  # [P] x2
        e = contact_pos[j] - contact_pos[i]  # [P, 3]
        return self.pair_embed(torch.cat([
            embed[i], embed[j], e.norm(dim=1, keepdim=True),  # [P, hidden] x2, [P, 1]
            (mixed[i] @ e[:, :, None]).squeeze(2), (mixed[j] @ e[:, :, None]).squeeze(2),  # [P, pair_vectors] x2
            (mixed[i] @ mixed[j].transpose(1, 2)).flatten(1),  # [P, pair_vectors^2]
            _quadratic_forms(tensors[i], e[:, None]), _quadratic_forms(tensors[j], e[:, None]),  # [P, n_tensor] x2
        ], dim=1))

    def forward(self, node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
                contact_normal=None):
        """Inputs as in ``grasp_equi.keys``; returns logits ``[G]``."""
        if self.contact_normals:
            if contact_normal is None:
                raise ValueError("this model needs contact normals (batch key 'contact_normal')")
            if self.contact_normal_sign == "grasp":
                contact_normal = _away_from_grasp_centre(contact_normal, contact_pos, contact_grasp, num_contacts)
        num_grasps = num_contacts.shape[0]
        h, directions = self.gather(node_feats, node_pos, node_ptr, contact_pos, grasp_cloud[contact_grasp])
        invariants, vectors, tensors = self.contact_invariants(h, directions, contact_pos, contact_normal)
        embed = self.contact_embed(invariants)  # [C, hidden]
        mixed = torch.einsum("cvk,vw->cwk", vectors, self.pair_mix)  # [C, pair_vectors, 3]

        pair_index = contact_pair_graph(contact_grasp, num_contacts)  # [2, P]
        pairs = self.pair_features(embed, mixed, tensors, contact_pos, pair_index)  # [P, hidden]
        centre = torch.zeros(num_grasps, 3, dtype=contact_pos.dtype, device=contact_pos.device)
        centre.index_add_(0, contact_grasp, contact_pos)
        arm = contact_pos - (centre / num_contacts[:, None].to(centre.dtype))[contact_grasp]  # [C, 3]
        around = self.centre_embed(torch.cat([embed, (mixed @ arm[:, :, None]).squeeze(2),
                                              arm.norm(dim=1, keepdim=True)], dim=1))  # [C, hidden]

        k = num_contacts.to(embed.dtype)[:, None]  # [G, 1]
        pooled_pairs = torch.zeros(num_grasps, pairs.shape[1], dtype=embed.dtype, device=embed.device)
        pooled_pairs.index_add_(0, contact_grasp[pair_index[0]], pairs)  # [G, hidden]
        pooled_contacts = torch.zeros(num_grasps, around.shape[1], dtype=embed.dtype, device=embed.device)
        pooled_contacts.index_add_(0, contact_grasp, around)  # [G, hidden]
        pooled = torch.cat([pooled_contacts / k, pooled_pairs / (k * (k - 1))], dim=1)  # [G, 2 hidden], means
        return self.readout(self.norm(pooled)).squeeze(1)  # [G]
