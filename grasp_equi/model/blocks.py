"""e3nn building blocks: radial embedding, edge convolution, gated equivariant layer.

One concept per class, irreps passed in and exposed as ``irreps_in``/``irreps_out`` (the
style of e3nn's ``nn/_gate.py`` and ``gate_points_2101``).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate


def polynomial_envelope(r: torch.Tensor, cutoff: float, p: int = 6) -> torch.Tensor:
    """Smooth cutoff (DimeNet/NequIP): 1 at r=0, 0 with vanishing first and second
    derivatives at ``r = cutoff``, 0 beyond. An edge crossing the radius fades in/out."""
    x = (r / cutoff).clamp(max=1.0)
    env = (1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1)
           - p * (p + 1) / 2 * x ** (p + 2))
    return env * (r < cutoff)


class RadialEmbedding(torch.nn.Module):
    """Edge length -> ``num_basis`` smooth basis values that vanish at ``cutoff``.

    Output irreps: ``num_basis x 0e``.
    """

    def __init__(self, cutoff: float, num_basis: int = 8):
        super().__init__()
        self.cutoff = cutoff
        self.num_basis = num_basis
        self.irreps_out = o3.Irreps(f"{num_basis}x0e")

    def forward(self, length: torch.Tensor) -> torch.Tensor:
        return smooth_finite_basis(length, self.cutoff, self.num_basis) * math.sqrt(self.num_basis)  # [E, num_basis]


    def nonzero(self, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (at most) two basis functions that are non-zero at each ``length`` ``[E]``: their indices
        ``[E, 2]`` (-1 where none) and values ``[E, 2]`` (0 there), equal to ``forward``'s entries.

        Each smooth_finite bump spans one step either side of its centre (centres at
        ``(k + 1) * step``), so a length between two centres meets only those two."""
        step = self.cutoff / (self.num_basis + 1)
        k = torch.floor(length / step).long()[:, None] - 1 + torch.arange(2, device=length.device)  # [E, 2]
        d = length[:, None] / step - (k + 1).to(length.dtype)  # [E, 2], in steps from each centre
        inside = 1.0 - d * d
        valid = (inside > 0.0) & (k >= 0) & (k < self.num_basis)
        safe = torch.where(valid, inside, torch.ones_like(inside))
        value = torch.where(valid, _SMOOTH_FINITE_SCALE * torch.exp(-2.0 / safe), torch.zeros_like(inside))
        return torch.where(valid, k, -torch.ones_like(k)), value * math.sqrt(self.num_basis)


# e3nn's smooth_finite normalisation constant: 1.14136 e^2
_SMOOTH_FINITE_SCALE = 1.14136 * math.exp(2.0)


def smooth_finite_basis(x: torch.Tensor, cutoff: float, number: int) -> torch.Tensor:
    """``e3nn.math.soft_one_hot_linspace(x, 0, cutoff, number, basis="smooth_finite", cutoff=True)``
    ``[..., number]``, evaluated with one exponential per value instead of two plus masks.

    e3nn's bump ``u(1 + d) u(1 - d)`` with ``u(t) = exp(-1/t)`` for ``t > 0`` equals
    ``exp(-2 / (1 - d^2))`` for ``|d| < 1`` and 0 elsewhere (``d`` = distance to the centre in
    steps); the same function to float rounding, at a third of the cost on many edges.
    """
    step = cutoff / (number + 1)
    centres = torch.arange(1, number + 1, dtype=x.dtype, device=x.device) * step  # [number]
    d = (x[..., None] - centres) / step  # [..., number]
    inside = 1.0 - d * d  # > 0 within one step of the centre
    mask = inside > 0.0
    safe = torch.where(mask, inside, torch.ones_like(inside))  # no division by zero (nor its gradient)
    return torch.where(mask, _SMOOTH_FINITE_SCALE * torch.exp(-2.0 / safe), torch.zeros_like(inside))


class EdgeConvolution(torch.nn.Module):
    """Equivariant message passing from ``src`` nodes to ``dst`` nodes along edges.

    message_e = TP(x_src[src_e], Y(r_e); w(|r_e|)) * envelope(|r_e|)
    out_i     = Linear(x_dst_i) + Linear(sum_{e -> i} message_e / sqrt(avg_neighbors))

    Normalising by a *constant* expected neighbour count (not the actual count) keeps the
    output continuous when an edge crosses the cutoff.

    Args:
        irreps_src: features of sending nodes.
        irreps_dst: features of receiving nodes.
        irreps_sh: spherical harmonics of the edge vectors.
        irreps_out: output features of receiving nodes.
        num_radial: size of the radial embedding (``num_radial x 0e``).
        radial_hidden: width of the radial MLP.
        avg_neighbors: expected number of edges per receiving node.
    """

    def __init__(self, irreps_src, irreps_dst, irreps_sh, irreps_out, num_radial: int,
                 radial_hidden: int, avg_neighbors: float):
        super().__init__()
        self.irreps_src = o3.Irreps(irreps_src)
        self.irreps_in = o3.Irreps(irreps_dst)
        self.irreps_sh = o3.Irreps(irreps_sh)
        self.irreps_out = o3.Irreps(irreps_out)
        self.avg_neighbors = avg_neighbors

        irreps_mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(self.irreps_src):
            for j, (_, ir_edge) in enumerate(self.irreps_sh):
                for ir_out in ir_in * ir_edge:
                    if ir_out in self.irreps_out:
                        instructions.append((i, j, len(irreps_mid), "uvu", True))
                        irreps_mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(irreps_mid)
        irreps_mid_sorted, perm, _ = irreps_mid.sort()
        instructions = [(a, b, perm[c], mode, train) for a, b, c, mode, train in instructions]

        self.tp = o3.TensorProduct(self.irreps_src, self.irreps_sh, irreps_mid_sorted, instructions,
                                   internal_weights=False, shared_weights=False)
        self.radial = FullyConnectedNet([num_radial, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu)
        self.lin_msg = o3.Linear(irreps_mid_sorted.simplify(), self.irreps_out)
        self.lin_self = o3.Linear(self.irreps_in, self.irreps_out)

    def forward(self, x_src, x_dst, edge_index, edge_sh, edge_radial, edge_envelope):
        src, dst = edge_index  # [E], [E]
        # The tensor product is linear in its weights, so scaling the [E, weight_numel]
        # weights by the envelope equals scaling the 3x wider [E, mid.dim] message (and is cheaper).
        weight = self.radial(edge_radial) * edge_envelope[:, None]  # [E, weight_numel]
        msg = self.tp(x_src[src], edge_sh, weight)  # [E, mid.dim]
        agg = torch.zeros(x_dst.shape[0], msg.shape[1], dtype=msg.dtype, device=msg.device)
        agg.index_add_(0, dst, msg)  # [n_dst, mid.dim]
        return self.lin_self(x_dst) + self.lin_msg(agg / math.sqrt(self.avg_neighbors))  # [n_dst, out.dim]


def gated_irreps(irreps_hidden: o3.Irreps) -> tuple[o3.Irreps, Gate]:
    """The irreps a convolution must produce so that a ``Gate`` returns ``irreps_hidden``.

    Scalars pass through SiLU (even) / tanh (odd); every non-scalar irrep gets one extra
    ``0e`` gate scalar passed through a sigmoid.
    """
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l > 0])
    gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
    act = {1: torch.nn.functional.silu, -1: torch.tanh}
    gate = Gate(scalars, [act[ir.p] for _, ir in scalars], gates,
                [torch.sigmoid] * len(gates), gated)
    return gate.irreps_in, gate


class GatedConvolution(torch.nn.Module):
    """``EdgeConvolution`` followed by a ``Gate`` nonlinearity, with a residual when shapes match.

    ``irreps_in`` = receiving features, ``irreps_out`` = ``irreps_hidden``.
    """

    def __init__(self, irreps_src, irreps_dst, irreps_sh, irreps_hidden, num_radial: int,
                 radial_hidden: int, avg_neighbors: float):
        super().__init__()
        irreps_hidden = o3.Irreps(irreps_hidden)
        irreps_conv_out, self.gate = gated_irreps(irreps_hidden)
        self.conv = EdgeConvolution(irreps_src, irreps_dst, irreps_sh, irreps_conv_out,
                                    num_radial, radial_hidden, avg_neighbors)
        self.irreps_in = self.conv.irreps_in
        self.irreps_out = self.gate.irreps_out
        self.residual = self.irreps_in == self.irreps_out

    def forward(self, x_src, x_dst, edge_index, edge_sh, edge_radial, edge_envelope):
        out = self.gate(self.conv(x_src, x_dst, edge_index, edge_sh, edge_radial, edge_envelope))
        return x_dst + out if self.residual else out  # [n_dst, hidden.dim]
