"""A last-layer ensemble: several readouts on the head's invariant grasp description.

Each member is ``LayerNorm -> Linear -> SiLU -> Linear`` on the pooled features the grasp head
computes (``head.pool``), trained on its own bootstrap sample with the rest of the network
frozen (``grasp_equi.training.ensemble``). The spread of the members' probabilities is the
model's uncertainty about a grasp. The pooled features are invariant by construction, so the
mean and the spread are too: a rotated copy of an object gets the same sigma as the original.
All members run as one batched product (``[M, G, ...]``), so M members cost about one readout.
"""

from __future__ import annotations

import math

import torch


class ReadoutEnsemble(torch.nn.Module):
    """``members`` readouts ``[G, in_dim] -> [members, G]`` logits (``irreps_in`` = ``in_dim x 0e``,
    ``irreps_out`` = ``members x 0e``)."""

    def __init__(self, in_dim: int, hidden: int, members: int):
        super().__init__()
        self.in_dim, self.hidden, self.members = in_dim, hidden, members
        self.norm_weight = torch.nn.Parameter(torch.ones(members, in_dim))
        self.norm_bias = torch.nn.Parameter(torch.zeros(members, in_dim))
        self.w1 = torch.nn.Parameter(torch.randn(members, in_dim, hidden) / math.sqrt(in_dim))
        self.b1 = torch.nn.Parameter(torch.zeros(members, hidden))
        self.w2 = torch.nn.Parameter(torch.randn(members, hidden) / math.sqrt(hidden))
        self.b2 = torch.nn.Parameter(torch.zeros(members))

    @classmethod
    def from_readout(cls, norm: torch.nn.LayerNorm, readout: torch.nn.Sequential, members: int) -> "ReadoutEnsemble":
        """``members`` copies of a head's ``norm`` and ``readout`` (``Linear -> SiLU -> Linear(1)``): a start that
        answers exactly what the head answers (e.g. for readouts of a related target)."""
        first, last = readout[0], readout[-1]
        ensemble = cls(first.in_features, first.out_features, members)
        with torch.no_grad():
            ensemble.norm_weight.copy_(norm.weight.expand(members, -1))
            ensemble.norm_bias.copy_(norm.bias.expand(members, -1))
            ensemble.w1.copy_(first.weight.T.expand(members, -1, -1))
            ensemble.b1.copy_(first.bias.expand(members, -1))
            ensemble.w2.copy_(last.weight[0].expand(members, -1))
            ensemble.b2.copy_(last.bias.expand(members))
        return ensemble

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits ``[members, G]`` for pooled grasp features ``[G, in_dim]`` (every member on every row).

        The same function as ``member_logits`` on ``pooled`` repeated per member, computed without the
        repeat: the LayerNorm statistics once per grasp, each member's affine folded into its first
        layer, and all members' first layers as one matrix product (``[G, in_dim] @ [in_dim, M hidden]``)."""
        x = torch.nn.functional.layer_norm(pooled, (self.in_dim,))  # [G, in_dim]
        w1 = self.norm_weight[:, :, None] * self.w1  # [M, in_dim, hidden] the affine's scale folded in
        b1 = self.b1 + torch.einsum("md,mdh->mh", self.norm_bias, self.w1)  # [M, hidden] and its shift
        w1 = w1.permute(1, 0, 2).reshape(self.in_dim, -1)  # [in_dim, M hidden]
        h = torch.nn.functional.silu(torch.addmm(b1.reshape(-1), x, w1))  # [G, M hidden]
        h = h.view(len(pooled), self.members, self.hidden)  # [G, M, hidden]
        return (h * self.w2[None]).sum(dim=2).T + self.b2[:, None]  # [M, G]

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[members, B]``: member m on its own rows ``x[m]`` (``x`` ``[members, B, in_dim]``)."""
        x = torch.nn.functional.layer_norm(x, (self.in_dim,))  # statistics per grasp, as the readout's LayerNorm
        x = x * self.norm_weight[:, None, :] + self.norm_bias[:, None, :]  # [M, B, in_dim]
        h = torch.nn.functional.silu(torch.baddbmm(self.b1[:, None, :], x, self.w1))  # [M, B, hidden]
        return (h * self.w2[:, None, :]).sum(dim=2) + self.b2[:, None]  # [M, B]
