"""The network's parts: equivariance of encoder features, smooth cutoff, one encoder pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from e3nn.util.test import assert_equivariant

from conftest import ellipsoid_cloud, random_grasps
from grasp_equi.graph import contact_pair_graph, radius_graph
from grasp_equi.model import ModelConfig, build_model


def test_encoder_features_are_equivariant():
    torch.manual_seed(0)
    model = build_model(ModelConfig(irreps_hidden="8x0e + 4x1o + 2x2e"))
    encoder = model.encoder
    pos = torch.randn(60, 3) * 0.4  # > 25 points: exercises the exact-distance path
    normal = torch.nn.functional.normalize(torch.randn(60, 3), dim=1)
    assert_equivariant(
        lambda p, n: encoder(p, n),
        args_in=[pos, normal],
        irreps_in=[o3.Irreps("1o"), o3.Irreps("1o")],
        irreps_out=[encoder.irreps_out],
        tolerance=1e-4,
    )
    # and the l=1 features are really used (vectors rotate, not all zero)
    feats = encoder(pos, normal)
    vec = feats[:, encoder.irreps_out.slices()[1]]
    assert vec.abs().max() > 1e-3


def test_radius_graph_has_no_self_edges_and_is_symmetric():
    pos = torch.randn(80, 3)
    pos[5] = pos[6]  # duplicate point: distance 0 but still not a self-edge
    ptr = torch.tensor([0, 50, 80])
    edges = radius_graph(pos, ptr, 1.0)
    assert (edges[0] != edges[1]).all()
    pairs = set(map(tuple, edges.T.tolist()))
    assert (5, 6) in pairs and (6, 5) in pairs
    assert all((d, s) in pairs for s, d in pairs)
    # never across clouds
    assert not any((s < 50) != (d < 50) for s, d in pairs)


def test_contact_pairs_within_each_grasp_only():
    counts = torch.tensor([2, 3, 2])
    grasp = torch.repeat_interleave(torch.arange(3), counts)
    edges = contact_pair_graph(grasp, counts)
    assert edges.shape[1] == 2 + 6 + 2
    assert (grasp[edges[0]] == grasp[edges[1]]).all()
    assert (edges[0] != edges[1]).all()


def test_score_is_continuous_when_a_point_crosses_the_cutoff(small_scorer):
    """Move one point along a line through another node's cutoff sphere: no jumps."""
    points, normals = ellipsoid_cloud(60, rng=np.random.default_rng(7))  # N < num_nodes: no resampling
    contacts = points[[[0, 30], [10, 40]]]
    radius_m = small_scorer.config.radius * np.linalg.norm(points - points.mean(0), axis=1).max()
    start = points[1].copy()
    direction = points[2] - points[1]
    direction /= np.linalg.norm(direction)
    steps = np.linspace(0.0, 1.6 * radius_m, 400)

    def scores_along(path):
        out = []
        for s in path:
            moved = points.copy()
            moved[1] = start + s * direction
            out.append(small_scorer.score(moved, contacts, normals))
        return np.array(out)  # [steps, G]

    scores = scores_along(steps)
    jumps = np.abs(np.diff(scores, axis=0)).max(axis=1)
    assert np.abs(scores[-1] - scores[0]).max() > 1e-4  # the motion does matter
    # ...but never in a jump: where the score changes most, 20x finer steps give ~20x smaller changes
    # (a steep continuous stretch), where a discontinuity would keep one step as large as before
    worst = int(jumps.argmax())
    finer = np.abs(np.diff(scores_along(np.linspace(steps[worst], steps[worst + 1], 21)), axis=0)).max()
    assert finer < 0.25 * jumps[worst] + 1e-6


def test_encoder_runs_once_for_many_grasps(small_scorer, rng):
    points, _ = ellipsoid_cloud(2000, rng=rng)
    contacts = random_grasps(points, 64, 2, rng)
    calls = []
    handle = small_scorer.model.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        batched = small_scorer.score(points, contacts)
    finally:
        handle.remove()
    assert len(calls) == 1
    one_by_one = np.array([small_scorer.score(points, g[None])[0] for g in contacts[:8]])
    assert np.abs(batched[:8] - one_by_one).max() < 1e-5


def test_grasp_chunks_equal_one_pass(rng):
    from grasp_equi import GraspScorer
    from conftest import SMALL_MODEL

    points, _ = ellipsoid_cloud(500, rng=rng)
    contacts = random_grasps(points, 50, 3, rng)
    whole = GraspScorer.untrained(seed=1, device="cpu", **SMALL_MODEL)
    chunked = GraspScorer.untrained(seed=1, device="cpu", **SMALL_MODEL)
    chunked.grasp_chunk = 7
    assert np.abs(whole.score(points, contacts) - chunked.score(points, contacts)).max() < 1e-6


def test_contact_normals_point_out_of_a_sphere(rng):
    """The normal the head sees at a contact is the surface's, outward (here: radial)."""
    from grasp_equi.geometry import NeighbourIndex
    from grasp_equi.graph import contact_normals

    points = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(3000, 3)), dtype=torch.float32), dim=1)
    contacts = points[:40] * 1.01  # just off the surface, as fingertip contacts are
    normals = contact_normals(contacts, NeighbourIndex(points), k=16)  # [40, 3]
    cosine = (normals * torch.nn.functional.normalize(contacts, dim=1)).sum(dim=1)
    assert cosine.min() > 0.98


def test_head_with_contact_normals_is_invariant_and_uses_them():
    torch.manual_seed(0)
    model = build_model(ModelConfig(irreps_hidden="8x0e + 4x1o + 2x2e", num_nodes=40))
    head = model.head
    assert head.irreps_in == o3.Irreps("1x0e + 2x1o")
    pos = torch.randn(40, 3) * 0.5  # [M, 3]
    feats = model.encoder(pos, torch.nn.functional.normalize(torch.randn(40, 3), dim=1))  # [M, hidden]
    ptr = torch.tensor([0, 40])
    counts = torch.tensor([2, 3])
    grasp = torch.repeat_interleave(torch.arange(2), counts)  # [C]
    cloud = torch.zeros(2, dtype=torch.long)

    def logits(node_feats, node_pos, contact_pos, contact_normal):
        return head(node_feats, node_pos, ptr, contact_pos, grasp, cloud, counts, contact_normal)[:, None]

    contact = pos[[0, 5, 9, 11, 20]] * 1.02  # [C, 3]
    normal = torch.nn.functional.normalize(torch.randn(5, 3), dim=1)  # [C, 3]
    assert_equivariant(logits, args_in=[feats, pos, contact, normal],
                       irreps_in=[head.irreps_hidden, o3.Irreps("1o"), o3.Irreps("1o"), o3.Irreps("1o")],
                       irreps_out=[o3.Irreps("0e")], tolerance=1e-4)
    turned = torch.nn.functional.normalize(normal + 0.5 * torch.randn(5, 3), dim=1)  # [C, 3]
    assert (logits(feats, pos, contact, turned) - logits(feats, pos, contact, normal)).abs().max() > 1e-4  # used
    # PCA gives no sign: the head orients each normal away from its grasp's contact centroid
    torch.testing.assert_close(logits(feats, pos, contact, -normal), logits(feats, pos, contact, normal))


def test_contact_normals_are_turned_out_of_the_squeezed_material():
    """On a torus' inner ring the surface faces the object's centroid: a grasp across the tube
    must see that normal pointing into the hole (away from the grasp centre), not into the tube."""
    from grasp_equi.model.head import _away_from_grasp_centre

    inner, outer = torch.tensor([[0.6, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])  # across a ring's tube
    pos = torch.cat([inner, outer])  # [2, 3]
    wrong = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # both "away from the centroid"
    fixed = _away_from_grasp_centre(wrong, pos, torch.tensor([0, 0]), torch.tensor([2]))
    torch.testing.assert_close(fixed, torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_checkpoints_from_before_contact_normals_load_without_them():
    legacy = {k: v for k, v in ModelConfig().to_dict().items() if k != "contact_normals"}
    assert ModelConfig.from_dict(legacy).contact_normals is False
    first = {k: v for k, v in ModelConfig().to_dict().items() if k != "contact_normal_sign"}
    assert ModelConfig.from_dict(first).contact_normal_sign == "centroid"  # the first contact-normal model
    assert ModelConfig().uses_contact_normals
    assert not ModelConfig(architecture="pointnet").uses_contact_normals
    before_surface = {k: v for k, v in ModelConfig().to_dict().items() if k != "normal_orientation"}
    assert ModelConfig.from_dict(before_surface).normal_orientation == "centroid"
    with pytest.raises(ValueError, match="normal_orientation"):
        ModelConfig(normal_orientation="camera")
