"""Non-equivariant baseline: PointNet-style on raw (centred, scaled, NOT rotation-normalised)
coordinates of the cloud and the contacts.

Same data, same interface as ``GraspStabilityNet`` (``encode`` once per cloud,
``score_grasps`` per grasp), so ``GraspScorer``, the GUI and the benchmarks treat both alike.
It sees the same inputs (node positions and estimated normals, contact positions) but as plain
xyz numbers, so a rotated object looks like a different object unless it was trained with
rotation augmentation. Layers:
  1. per node: MLP([pos, normal]) -> h_i; per cloud: max-pool -> global shape code;
  2. per contact: max over nodes within ``radius`` of MLP([h_i, pos_i - c]) (PointNet++-style
     local set abstraction), concatenated with the contact's xyz and the global code;
  3. ``pair_layers`` x message passing between the contacts of each grasp (mean of
     MLP([f_c, f_c', c' - c]) over the other contacts), residual;
  4. mean + max pooling over the grasp's contacts (order-free) -> MLP -> logit.
"""

from __future__ import annotations

import torch
from torch import nn

from grasp_equi import keys
from grasp_equi.graph import contact_object_graph, contact_pair_graph
from grasp_equi.model.config import ModelConfig
from grasp_equi.model.ensemble import ReadoutEnsemble


def mlp(*widths: int, last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(widths) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def _segment_max(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Max of ``values`` ``[E, W]`` per ``index`` ``[E]``; rows with no entry stay 0."""
    out = torch.zeros(size, values.shape[1], dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, index[:, None].expand_as(values), values, reduce="amax", include_self=False)


def _segment_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.zeros(size, values.shape[1], dtype=values.dtype, device=values.device)
    out.index_add_(0, index, values)
    count = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(
        0, index, torch.ones_like(index, dtype=values.dtype))
    return out / count.clamp(min=1.0)[:, None]


class PointNetBaseline(nn.Module):
    """PointNet-style grasp scorer on raw coordinates (see module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.baseline_width
        self.radius = config.radius
        self.point = mlp(6, w, w)
        self.local = mlp(w + 3, w, w)
        self.contact = mlp(3 + 2 * w, w, w)
        self.pair = nn.ModuleList(mlp(2 * w + 3, w, w) for _ in range(config.pair_layers))
        self.readout = mlp(2 * w, config.readout_hidden, 1, last_act=False)
        # a last-layer ensemble on the pooled grasp features (None without members), as the equivariant net's
        self.pooled_dim = 2 * w  # width of ``pooled``'s grasp description
        self.ensemble = (ReadoutEnsemble(self.pooled_dim, config.readout_hidden, config.ensemble_members)
                         if config.ensemble_members else None)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([batch[keys.NODE_POS], batch[keys.NODE_NORMAL]], dim=1)  # [M, 6]
        return self.point(x)  # [M, w]

    def score_grasps(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        return self.readout(self.pooled(batch, node_feats)).squeeze(1)  # [G]

    def ensemble_logits(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        """Logits ``[members, G]`` of the last-layer ensemble (``ValueError`` without one)."""
        if self.ensemble is None:
            raise ValueError("this model has no ensemble (ensemble_members = 0): fit one with grasp-equi fit-ensemble")
        return self.ensemble(self.pooled(batch, node_feats))

    def pooled(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        """Mean and max of the contacts' features per grasp ``[G, 2 w]`` (what the readouts see; NOT invariant)."""
        node_pos, node_ptr = batch[keys.NODE_POS], batch[keys.NODE_PTR]
        contact_pos, contact_grasp = batch[keys.CONTACT_POS], batch[keys.CONTACT_GRASP]
        num_contacts = batch[keys.GRASP_NUM_CONTACTS]
        num_clouds, num_grasps, num_c = node_ptr.numel() - 1, num_contacts.numel(), contact_pos.shape[0]
        node_cloud = torch.repeat_interleave(torch.arange(num_clouds, device=node_pos.device),
                                             node_ptr[1:] - node_ptr[:-1])  # [M]
        global_code = _segment_max(node_feats, node_cloud, num_clouds)  # [B, w]
        contact_cloud = batch[keys.GRASP_CLOUD][contact_grasp]  # [C]

        src, dst = contact_object_graph(contact_pos, contact_cloud, node_pos, node_ptr, self.radius)  # [E]
        local_msg = self.local(torch.cat([node_feats[src], node_pos[src] - contact_pos[dst]], dim=1))  # [E, w]
        local = _segment_max(local_msg, dst, num_c)  # [C, w]
        f = self.contact(torch.cat([contact_pos, local, global_code[contact_cloud]], dim=1))  # [C, w]

        a, b = contact_pair_graph(contact_grasp, num_contacts)  # [E_cc]: message from contact a to b
        for layer in self.pair:
            msg = layer(torch.cat([f[b], f[a], contact_pos[a] - contact_pos[b]], dim=1))  # [E_cc, w]
            f = f + _segment_mean(msg, b, num_c)
        return torch.cat([_segment_mean(f, contact_grasp, num_grasps),
                          _segment_max(f, contact_grasp, num_grasps)], dim=1)  # [G, 2w]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.score_grasps(batch, self.encode(batch))  # [G] logits
