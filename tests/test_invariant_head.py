"""The invariant grasp head: invariance by construction, contact order, locality, mixed K, legacy configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from e3nn.util.test import assert_equivariant

from conftest import SMALL_MODEL, ellipsoid_cloud, random_grasps
from grasp_equi.graph import cloud_options
from grasp_equi.model import ModelConfig, build_model
from grasp_equi.model.invariant_head import InvariantGraspHead

IRREPS = "8x0e + 4x1o + 2x2e"


@pytest.fixture
def encoded_object():
    """``(head, node_feats [M, hidden], node_pos [M, 3])`` of an untrained model on 40 random nodes."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(irreps_hidden=IRREPS, num_nodes=40, head="invariant"))
    pos = torch.randn(40, 3) * 0.5  # [M, 3]
    feats = model.encoder(pos, torch.nn.functional.normalize(torch.randn(40, 3), dim=1))  # [M, hidden]
    return model.head, feats, pos


def _logits(head, feats, pos, contact, normal, counts):
    grasp = torch.repeat_interleave(torch.arange(len(counts)), counts)  # [C]
    return head(feats, pos, torch.tensor([0, pos.shape[0]]), contact, grasp, torch.zeros(len(counts), dtype=torch.long),
                counts, normal)  # [G]


def test_head_is_invariant_under_rotations_and_reflections(encoded_object):
    head, feats, pos = encoded_object
    assert isinstance(head, InvariantGraspHead)
    assert head.irreps_in == o3.Irreps("1x0e + 2x1o") and head.irreps_out == o3.Irreps("1x0e")
    counts = torch.tensor([2, 3, 5])

    def logits(node_feats, node_pos, contact_pos, contact_normal):
        return _logits(head, node_feats, node_pos, contact_pos, contact_normal, counts)[:, None]

    contact = pos[[0, 5, 9, 11, 20, 1, 2, 3, 4, 6]] * 1.02  # [C, 3]
    normal = torch.nn.functional.normalize(torch.randn(10, 3), dim=1)  # [C, 3]
    # assert_equivariant draws a random rotation and also tests parity (reflections)
    assert_equivariant(logits, args_in=[feats, pos, contact, normal],
                       irreps_in=[head.irreps_hidden, o3.Irreps("1o"), o3.Irreps("1o"), o3.Irreps("1o")],
                       irreps_out=[o3.Irreps("0e")], tolerance=1e-4)
    # the contact normals are used, and their sign is decided by the head (away from the grasp centre)
    turned = torch.nn.functional.normalize(normal + 0.5 * torch.randn(10, 3), dim=1)
    assert (logits(feats, pos, contact, turned) - logits(feats, pos, contact, normal)).abs().max() > 1e-4
    torch.testing.assert_close(logits(feats, pos, contact, -normal), logits(feats, pos, contact, normal))


def test_every_feature_type_reaches_the_logit(encoded_object):
    """Scalars, vectors and l=2 features of the object each change the score (none is dropped)."""
    head, feats, pos = encoded_object
    counts = torch.tensor([2, 2])
    contact, normal = pos[[0, 5, 9, 11]] * 1.02, torch.nn.functional.normalize(pos[[0, 5, 9, 11]], dim=1)
    base = _logits(head, feats, pos, contact, normal, counts)
    for dims in (head.scalar_dims, head.vector_dims, head.tensor_dims):
        changed = feats.clone()
        changed[:, dims] *= 1.5
        assert (_logits(head, changed, pos, contact, normal, counts) - base).abs().max() > 1e-5


def test_contact_order_within_a_grasp_does_not_matter(encoded_object):
    head, feats, pos = encoded_object
    contact = pos[[3, 7, 12, 30]] * 1.01  # one K = 4 grasp
    normal = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    counts = torch.tensor([4])
    base = _logits(head, feats, pos, contact, normal, counts)
    for perm in ([1, 0, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1]):
        torch.testing.assert_close(_logits(head, feats, pos, contact[perm], normal[perm], counts), base)


def test_mixed_k_in_one_batch_equals_separate_calls(encoded_object):
    head, feats, pos = encoded_object
    counts = torch.tensor([2, 5, 3])
    contact = pos[:10] * 1.01
    normal = torch.nn.functional.normalize(pos[:10], dim=1)
    together = _logits(head, feats, pos, contact, normal, counts)
    starts = [0, 2, 7]
    for g, (start, k) in enumerate(zip(starts, counts.tolist())):
        alone = _logits(head, feats, pos, contact[start:start + k], normal[start:start + k], torch.tensor([k]))
        torch.testing.assert_close(alone[0], together[g])


def test_only_nodes_within_the_radius_matter_and_they_fade_in_smoothly(encoded_object):
    """Locality: a node beyond ``radius`` of every contact changes nothing; moving a node through the
    cutoff sphere changes the score without a jump (the radial basis and envelope vanish there)."""
    head, feats, pos = encoded_object
    pos = pos.clone()
    contact = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]])
    normal = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    counts = torch.tensor([2])
    far = (pos - contact[0]).norm(dim=1) > head.radius + 0.1  # nodes well outside both contacts' reach
    moved = pos.clone()
    moved[far] += 0.05 * torch.randn(int(far.sum()), 3)
    moved[far] = moved[far] * ((moved[far] - contact[0]).norm(dim=1, keepdim=True) > head.radius + 0.06)
    torch.testing.assert_close(_logits(head, feats, moved, contact, normal, counts),
                               _logits(head, feats, pos, contact, normal, counts))
    def scores_along(radii):
        out = []
        for r in radii:
            pos[0] = torch.tensor([0.0, float(r), 0.0])
            out.append(_logits(head, feats, pos, contact, normal, counts)[0])
        return torch.stack(out)  # [steps]

    radii = torch.linspace(0.5 * head.radius, 1.5 * head.radius, 300)
    scores = scores_along(radii)
    jumps = scores.diff().abs()  # [299]
    assert (scores[0] - scores[-1]).abs() > 1e-5  # the node matters inside
    assert jumps[-100:].max() == 0  # beyond the radius (of both contacts) it matters no more
    # ...and fades out without a jump: where the score changes most, 20x finer steps give ~20x smaller
    # changes (a steep continuous stretch); a discontinuity would keep one step as large as before
    worst = int(jumps.argmax())
    finer = scores_along(torch.linspace(float(radii[worst]), float(radii[worst + 1]), 21)).diff().abs().max()
    assert finer < 0.25 * jumps[worst]


def test_unsupported_irreps_and_config_rules_are_refused():
    with pytest.raises(ValueError, match="0e, 1o and 2e"):
        InvariantGraspHead("8x0e + 2x1e")
    with pytest.raises(ValueError, match="irreps_hidden"):
        ModelConfig(irreps_hidden="8x0e + 2x0o", head="invariant")
    with pytest.raises(ValueError, match="contact_normal_source"):
        ModelConfig(contact_normal_source="reference", normal_orientation="centroid")
    legacy = {k: v for k, v in ModelConfig().to_dict().items() if k not in ("head", "contact_normal_source")}
    old = ModelConfig.from_dict(legacy)  # checkpoints written before the invariant head
    assert (old.head, old.contact_normal_source) == ("convolution", "pca")
    assert type(build_model(old).head).__name__ == "GraspHead"


def test_scorer_with_the_invariant_head_is_invariant_on_a_tied_cloud():
    """End to end through GraspScorer (reference contact normals, surface orientation) on a grid box."""
    from grasp_equi import GraspScorer
    from grasp_equi.adversarial import adversarial_family, invariance_error, rigid_motions

    scorer = GraspScorer.untrained(seed=3, device="cpu", **{**SMALL_MODEL, "head": "invariant",
                                                            "normal_orientation": "surface",
                                                            "contact_normal_source": "reference"})
    case = next(c for c in adversarial_family() if "grid" in c.name)
    assert invariance_error(scorer.score, case, rigid_motions()) < 1e-5


def test_reference_contact_normals_point_out_of_an_ellipsoid(rng):
    from grasp_equi import GraspScorer

    points, true_normals = ellipsoid_cloud(3000, rng=rng)
    scorer = GraspScorer.untrained(seed=0, device="cpu", **{**SMALL_MODEL, "normal_orientation": "surface",
                                                            "contact_normal_source": "reference"})
    encoded = scorer.encode(points)
    from grasp_equi.graph import contact_normals, normalise_contacts

    contacts = normalise_contacts(torch.as_tensor(points[:200]), encoded.cloud, torch.float64)
    normals = contact_normals(contacts, None, 16, encoded.cloud.orientation, "reference").double()  # [200, 3]
    cosine = (torch.nn.functional.normalize(normals, dim=1) * torch.as_tensor(true_normals[:200])).sum(dim=1)
    assert float(cosine.min()) > 0.9 and float(normals.norm(dim=1).min()) > 0.9  # outward, nearly unit length
    scores = scorer.score(points, random_grasps(points, 30, 2, rng))
    assert np.isfinite(scores).all()


def _reference_scorer(seed: int = 0):
    from grasp_equi import GraspScorer
    from grasp_equi.train import SHIPPED_MODEL

    return GraspScorer.untrained(seed=seed, device="cpu", **SHIPPED_MODEL)


def test_contact_equidistant_from_its_reference_points_gets_a_reason():
    """Regression: on a cylinder's axis every reference point is equally far; the kernel weights all
    vanished (0/0 spacing and normal) and the grasp scored NaN without a reason."""
    from grasp_equi.adversarial import cylinder_vertices
    from grasp_equi.contacts import surface_limits

    cylinder = cylinder_vertices()  # r = 3 cm, h = 10 cm
    contacts = np.array([[[0.0, 0.0, 0.05 / 11], [0.03, 0.0, 0.05 / 11]]])  # the first on the axis, 3 cm inside
    scores, reasons = _reference_scorer().score(cylinder, contacts, return_reasons=True)
    assert np.isnan(scores[0]) and reasons[0].startswith("off_surface")
    gap, limit = surface_limits(cylinder, contacts[0], cloud_options(_reference_scorer().config))
    assert np.isfinite(limit).all() and gap[0] > limit[0]


def test_point_order_changes_nothing_on_a_cloud_without_ties():
    """Regression: reference points were ranked with an index bias of up to 2e-6 relative at 20k points, so two
    points of nearly equal distance from the centroid (3e-10 apart in this cloud) swapped with the point order and
    moved the reference contact normals and spacings (score changes up to 3e-4)."""
    rng = np.random.default_rng(4)
    d = rng.normal(size=(20000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cloud = d * [0.05, 0.03, 0.02] * (1 + rng.normal(scale=0.002, size=(20000, 1)))  # noisy: no exact ties
    contacts = cloud[rng.integers(0, 20000, (300, 2))]
    perm = rng.permutation(20000)
    scorer = _reference_scorer()
    np.testing.assert_array_equal(scorer.score(cloud, contacts), scorer.score(cloud[perm], contacts))


def test_given_normals_use_the_same_surface_check(rng):
    """With the caller's normals the local spacing still comes from the reference points, as in surface_limits."""
    from grasp_equi.contacts import surface_limits

    points, normals = ellipsoid_cloud(2000, rng=rng)
    depth = rng.uniform(0.0, 0.01, size=(300, 1))
    inside = points[rng.integers(0, 2000, 300)] * (1 - depth / 0.05)  # up to ~1 cm inside
    contacts = np.stack([inside, points[rng.integers(0, 2000, 300)]], axis=1)  # [300, 2, 3]
    scorer = _reference_scorer()
    gap, limit = surface_limits(points, contacts[:, 0], cloud_options(scorer.config))
    expected_nan = gap > limit
    assert 0 < expected_nan.sum() < 300  # both verdicts occur
    for given in (None, normals):
        scores = scorer.score(points, contacts, normals=given)
        np.testing.assert_array_equal(np.isnan(scores), expected_nan)
