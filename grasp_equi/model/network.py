"""The SE(3)-invariant grasp stability network: object encoder + grasp head."""

from __future__ import annotations

import torch
from e3nn import o3

from grasp_equi import keys
from grasp_equi.model.config import ModelConfig
from grasp_equi.model.encoder import ObjectEncoder
from grasp_equi.model.ensemble import ReadoutEnsemble
from grasp_equi.model.head import GraspHead
from grasp_equi.model.invariant_head import InvariantGraspHead


class GraspStabilityNet(torch.nn.Module):
    """``encode`` runs once per cloud; ``score_grasps`` runs the cheap head for any number
    of grasps (any mix of K >= 2) on already-encoded clouds. ``forward`` does both."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        irreps = o3.Irreps(config.irreps_hidden).sort().irreps.simplify()
        self.encoder = ObjectEncoder(irreps, config.encoder_layers, config.lmax, config.radius,
                                     config.num_radial, config.radial_hidden, config.avg_neighbors)
        if config.head == "invariant":
            self.head = InvariantGraspHead(irreps, config.radius, config.num_radial, config.avg_neighbors,
                                           config.readout_hidden, contact_normals=config.contact_normals,
                                           contact_normal_sign=config.contact_normal_sign)
        else:
            self.head = GraspHead(irreps, config.pair_layers, config.lmax, config.radius, config.pair_range,
                                  config.num_radial, config.radial_hidden, config.avg_neighbors,
                                  config.readout_hidden, config.contact_normals, config.contact_normal_sign)

        # a last-layer ensemble on the pooled grasp features (None without members)
        self.pooled_dim = self.head.norm.normalized_shape[0]  # width of ``pooled``'s grasp description
        self.ensemble = (ReadoutEnsemble(self.pooled_dim, config.readout_hidden, config.ensemble_members)
                         if config.ensemble_members else None)
        # the second answer, P(held) from physics trials, as readouts on the same features (None without)
        self.held = (ReadoutEnsemble(self.pooled_dim, config.readout_hidden, config.held_members)
                     if config.held_members else None)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(batch[keys.NODE_POS], batch[keys.NODE_NORMAL], batch[keys.NODE_PTR],
                            batch.get(keys.NODE_AXIS))  # [M, hidden]

    def score_grasps(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        return self.head(node_feats, batch[keys.NODE_POS], batch[keys.NODE_PTR], batch[keys.CONTACT_POS],
                         batch[keys.CONTACT_GRASP], batch[keys.GRASP_CLOUD], batch[keys.GRASP_NUM_CONTACTS],
                         batch.get(keys.CONTACT_NORMAL))  # [G]

    def pooled(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        """The head's invariant grasp description ``[G, pooled_dim]`` (what the readouts see)."""
        return self.head.pool(node_feats, batch[keys.NODE_POS], batch[keys.NODE_PTR], batch[keys.CONTACT_POS],
                              batch[keys.CONTACT_GRASP], batch[keys.GRASP_CLOUD], batch[keys.GRASP_NUM_CONTACTS],
                              batch.get(keys.CONTACT_NORMAL))

    def ensemble_logits(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        """Logits ``[members, G]`` of the last-layer ensemble (``ValueError`` without one)."""
        if self.ensemble is None:
            raise ValueError("this model has no ensemble (ensemble_members = 0): fit one with grasp-equi fit-ensemble")
        return self.ensemble(self.pooled(batch, node_feats))

    def held_logits(self, batch: dict[str, torch.Tensor], node_feats: torch.Tensor) -> torch.Tensor:
        """Logits ``[held_members, G]`` of the P(held) readouts (``ValueError`` without them)."""
        if self.held is None:
            raise ValueError("this model has no P(held) output (held_members = 0): fit one with grasp-equi fit-held")
        return self.held(self.pooled(batch, node_feats))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.score_grasps(batch, self.encode(batch))  # [G] logits
