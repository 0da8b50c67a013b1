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
import warnings

import torch
from e3nn import o3

from grasp_equi.graph import contact_pair_graph
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
    """Upper triangle (diagonal included) ``[n_c, n(n+1)/2]`` of square matrices ``[n_c, n, n]``."""
    n = gram.shape[-1]
    rows, cols = torch.triu_indices(n, n, device=gram.device)
    return gram.flatten(1).index_select(1, rows * n + cols)  # one flat gather: faster than [:, rows, cols]


def harmonic2(v: torch.Tensor) -> torch.Tensor:
    """``o3.spherical_harmonics(2, v, normalize=False, normalization="component")`` ``[..., 5]`` for
    ``v`` ``[..., 3]``: e3nn's polynomials (its y axis first among equals), without its l = 0, 1 terms."""
    x, y, z = v.unbind(-1)
    return torch.stack([
        _SQRT15 * x * z, _SQRT15 * x * y, _SQRT5 * (y * y - 0.5 * (x * x + z * z)), _SQRT15 * y * z,
        0.5 * _SQRT15 * (z * z - x * x),
    ], dim=-1)


_SQRT5, _SQRT15 = math.sqrt(5.0), math.sqrt(15.0)


def _quadratic_forms(tensors: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``v^T T v`` for every l=2 feature ``T`` ``[n, t, 5]`` and vector ``v`` ``[n, v, 3]`` -> ``[n, t * v]``.

    The l=2 harmonic of ``v`` (unnormalised: ``|v|^2`` times that of its direction) is the
    traceless part of ``v v^T`` in e3nn's basis, so its dot product with ``T`` is the quadratic
    form up to a constant: invariant, and continuous through ``v = 0``.
    """
    return (tensors @ harmonic2(vectors).transpose(1, 2)).flatten(1)  # [n, t * v]


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
                 hidden: int = 64, num_directions: int = 4, pair_vectors: int = 4, contact_normals: bool = True,
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
        n_pair = 2 * hidden + 1 + 2 * pair_vectors + pair_vectors**2 + 2 * n_tensor + 2 * (pair_vectors + 1)
        self.pair_embed = _mlp([n_pair, hidden, hidden])
        self.norm = torch.nn.LayerNorm(2 * hidden)
        self.readout = torch.nn.Sequential(torch.nn.Linear(2 * hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))

    # ------------------------------------------------------------------ per contact
    def gather(self, node_feats, node_pos, node_ptr, contact_pos, contact_cloud):
        """Equivariant features at each contact: ``h`` ``[C, hidden.dim]`` and directions ``[C, num_directions, 3]``.

        ``h_c = sum_j sum_b R_b(|r_cj|) W_b (*) x_j`` over the nodes within ``radius`` is one sparse
        matrix product per cloud: the radial basis of the contact-node edges as a CSR matrix
        ``[c, m * num_radial]`` times the node features weighted per basis function (and, for the
        directions ``sum_j R'(|r_cj|) (p_c - x_j)``, the node positions) ``[m * num_radial, width]``.
        One library call instead of gathering and scattering ~13 edges per contact.
        """
        c_all, nb = contact_pos.shape[0], self.radial.num_basis
        n_dir, dim = self.direction_weights.out_features, node_feats.shape[1]
        weight = self.node_weights.weight.t()[:, self.channel]  # [nb, dim], one weight per channel
        out = torch.zeros(c_all, dim + 4 * n_dir, dtype=node_feats.dtype, device=node_feats.device)
        single = node_ptr.numel() == 2  # the scorer's case: every contact belongs to the one cloud
        for b in range(node_ptr.numel() - 1):
            lo, hi = int(node_ptr[b]), int(node_ptr[b + 1])
            rows = slice(None) if single else torch.nonzero(contact_cloud == b, as_tuple=True)[0]  # [c]
            pos, nodes = contact_pos[rows], node_pos[lo:hi]  # [c, 3], [m, 3]
            if pos.shape[0] == 0:
                continue
            out[rows] = self._sparse_product(pos, nodes, node_feats[lo:hi], weight)  # [c, dim + 4 n_dir]
        scale = 1.0 / math.sqrt(self.avg_neighbors)
        summed = out[:, dim + 3 * n_dir:]  # [C, n_dir], sum_j R'(|r_cj|)
        weighted_pos = out[:, dim:dim + 3 * n_dir].reshape(c_all, n_dir, 3)  # [C, n_dir, 3], sum_j R' x_j
        # (p_c - x_j) / radius rather than a unit vector: continuous where a contact sits on a node
        directions = (summed[:, :, None] * contact_pos[:, None, :] - weighted_pos) * (scale / self.radius)
        return out[:, :dim] * scale, directions

    def _sparse_product(self, pos, nodes, feats, weight):
        """``[c, dim + 4 n_dir]``: per contact, ``sum_(j, b) R_b(|r_cj|) * [W_b (*) x_j, D_b x_j, D_b]`` over
        the nodes ``j`` within ``radius`` (``D`` = the direction weights)."""
        c, m, nb = pos.shape[0], nodes.shape[0], self.radial.num_basis
        # candidates by the fast distance matrix, with a margin for its rounding; exact lengths after (an edge
        # at or beyond the radius gets basis values and envelope exactly 0 and is dropped with the zeros)
        margin = 1e-3 * self.radius
        near_c, near_m = torch.nonzero(torch.cdist(pos, nodes) < self.radius + margin, as_tuple=True)  # [e] x2
        length = (pos[near_c] - nodes[near_m]).norm(dim=1)  # [e]
        # each smooth_finite bump spans two steps: only ~2 of the nb basis values of an edge are non-zero
        basis_index, basis_value = self.radial.nonzero(length)  # [e, 2] x2
        value = basis_value * polynomial_envelope(length, self.radius)[:, None]  # [e, 2]
        entry = torch.nonzero(((basis_index >= 0) & (value != 0)).flatten(), as_tuple=True)[0]  # [nnz] into [e * 2]
        rows = near_c.repeat_interleave(2).index_select(0, entry)  # [nnz], sorted: nonzero is row-major
        cols = (near_m[:, None] * nb + basis_index).flatten().index_select(0, entry)  # [nnz], ascending in a row
        crow = torch.zeros(c + 1, dtype=torch.long, device=pos.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=c), 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            edges = torch.sparse_csr_tensor(crow, cols, value.flatten().index_select(0, entry), size=(c, m * nb))
        directions = self.direction_weights.weight.t()  # [nb, n_dir]
        rhs = torch.cat([
            feats[:, None, :] * weight[None],  # [m, nb, dim]
            (directions[None, :, :, None] * nodes[:, None, None, :]).flatten(2),  # [m, nb, n_dir * 3]
            directions[None].expand(m, -1, -1),  # [m, nb, n_dir]
        ], dim=2).flatten(0, 1)  # [m * nb, dim + 4 n_dir]
        return edges @ rhs  # [c, dim + 4 n_dir]

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
    def pair_features(self, embed, mixed, tensors, contact_pos, arm, pair_index):
        """Embedding ``[P, hidden]`` of each ordered contact pair ``(i, j)`` of a grasp: the MLP of
        ``[embed_i, embed_j, geometry_ij]``, its first layer applied to each contact's embedding once
        (``C`` rows) rather than to each pair's copy of it. ``arm`` ``[C, 3]``: each contact from its
        grasp's centre."""
        i, j = pair_index  # [P] x2
        e = contact_pos[j] - contact_pos[i]  # [P, 3]
        mixed_i, mixed_j = mixed[i], mixed[j]  # [P, pair_vectors, 3] x2
        arm_i, arm_j = arm[i], arm[j]  # [P, 3] x2
        geometry = torch.cat([
            e.norm(dim=1, keepdim=True),  # [P, 1]
            (mixed_i * e[:, None, :]).sum(2), (mixed_j * e[:, None, :]).sum(2),  # [P, pair_vectors] x2
            (mixed_i[:, :, None, :] * mixed_j[:, None, :, :]).sum(3).flatten(1),  # [P, pair_vectors^2]
            _quadratic_forms(tensors[i], e[:, None]), _quadratic_forms(tensors[j], e[:, None]),  # [P, n_tensor] x2
            (mixed_i * arm_i[:, None, :]).sum(2), arm_i.norm(dim=1, keepdim=True),  # [P, pair_vectors + 1]
            (mixed_j * arm_j[:, None, :]).sum(2), arm_j.norm(dim=1, keepdim=True),  # [P, pair_vectors + 1]
        ], dim=1)
        first, hidden = self.pair_embed[0], embed.shape[1]
        from_i = embed @ first.weight[:, :hidden].t()  # [C, hidden]
        from_j = embed @ first.weight[:, hidden:2 * hidden].t()  # [C, hidden]
        pre = torch.addmm(first.bias, geometry, first.weight[:, 2 * hidden:].t()) + from_i[i] + from_j[j]  # [P, hidden]
        return self.pair_embed[1:](pre)  # [P, hidden]

    def forward(self, node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
                contact_normal=None):
        """Inputs as in ``grasp_equi.keys``; returns logits ``[G]``."""
        pooled = self.pool(node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
                           contact_normal)  # [G, 2 hidden]
        return self.readout(self.norm(pooled)).squeeze(1)  # [G]

    def pool(self, node_feats, node_pos, node_ptr, contact_pos, contact_grasp, grasp_cloud, num_contacts,
             contact_normal=None):
        """The invariant description ``[G, 2 hidden]`` of each grasp that the readout maps to its logit."""
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

        centre = torch.zeros(num_grasps, 3, dtype=contact_pos.dtype, device=contact_pos.device)
        centre.index_add_(0, contact_grasp, contact_pos)
        k = num_contacts.to(embed.dtype)[:, None]  # [G, 1]
        arm = contact_pos - (centre / k)[contact_grasp]  # [C, 3]
        pair_index = contact_pair_graph(contact_grasp, num_contacts)  # [2, P]
        pairs = self.pair_features(embed, mixed, tensors, contact_pos, arm, pair_index)  # [P, hidden]

        pooled_pairs = torch.zeros(num_grasps, pairs.shape[1], dtype=embed.dtype, device=embed.device)
        pooled_pairs.index_add_(0, contact_grasp[pair_index[0]], pairs)  # [G, hidden]
        pooled_contacts = torch.zeros(num_grasps, embed.shape[1], dtype=embed.dtype, device=embed.device)
        pooled_contacts.index_add_(0, contact_grasp, embed)  # [G, hidden]
        return torch.cat([pooled_contacts / k, pooled_pairs / (k * (k - 1))], dim=1)  # [G, 2 hidden], means
