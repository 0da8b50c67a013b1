"""The shipped weights: they load through the public API, rank grasps on objects generated
here (held-out families, real robust force-closure labels) well above chance, stay
invariant to rigid motions, fit the size budget and come with a model card."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grasp_equi import GraspScorer
from grasp_equi.geometry import random_rotation, transform_points
from grasp_equi.scorer import SHIPPED_WEIGHTS, WEIGHTS_DIR
from grasp_equi.training import metrics

pytestmark = pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(),
                                reason=f"no shipped weights at {SHIPPED_WEIGHTS} (train them with `make train`)")

HELD_OUT = ("mug", "torus", "superquadric")  # never seen in training (splits.json of the default dataset)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # small graphs; extra threads only fight over a busy machine's cores
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def scorer():
    return GraspScorer.from_checkpoint(device="cpu")


@pytest.fixture(scope="module")
def held_out_objects():
    """Complete clouds of two objects per held-out family with labelled K = 2 and K = 3..5 grasps,
    made by the data pipeline's own object, cloud and grasp generators."""
    from grasp_equi.data.clouds import complete_cloud
    from grasp_equi.data.labels import labelled_candidates
    from grasp_equi.data.objects import make_object

    rng = np.random.default_rng(2024)
    objects = []
    for family in HELD_OUT:
        for _ in range(2):
            obj = make_object(family, rng)
            points, _ = complete_cloud(obj, 2048, rng)
            grasps, labels = [], []
            for k, n in ((2, 24), (3, 6), (4, 6), (5, 6)):
                contacts, _, _, lab, _ = labelled_candidates(obj, k, n, rng)
                grasps += list(contacts)
                labels.append(lab)
            objects.append((family, points, grasps, np.concatenate(labels)))
    return objects


def test_shipped_weights_rank_grasps_on_unseen_objects(scorer, held_out_objects):
    """P(force closure) against the analytic label it was trained on (P(held) is checked against physics
    trials by validate-physics, docs/physics.md)."""
    scores = np.concatenate([scorer.score(points, grasps, output="force_closure")
                             for _, points, grasps, _ in held_out_objects])
    labels = np.concatenate([lab for *_, lab in held_out_objects])
    stable = labels >= metrics.STABLE_THRESHOLD
    assert 0.15 < stable.mean() < 0.85, "generated grasps should contain both classes"
    auc = metrics.auc(scores, stable)
    assert auc >= 0.8, f"AUC {auc:.3f} on {len(labels)} grasps of held-out families"
    assert np.all((scores >= 0) & (scores <= 1))


def test_shipped_weights_are_invariant_to_rigid_motions(scorer, held_out_objects):
    rng = np.random.default_rng(7)
    for i, (_, points, grasps, _) in enumerate(held_out_objects[:3]):
        rot, trans = random_rotation(rng, reflect=bool(i % 2)), rng.uniform(-2, 2, size=3)
        moved_points, moved_grasps = transform_points(points, rot, trans), [transform_points(g, rot, trans) for g in grasps]
        for output in scorer.outputs:  # P(held) (the default) and P(force closure)
            moved = scorer.score(moved_points, moved_grasps, output=output)
            assert np.abs(moved - scorer.score(points, grasps, output=output)).max() < 1e-4, output


def test_shipped_weights_fit_budget_and_have_a_card(scorer):
    assert SHIPPED_WEIGHTS.stat().st_size <= 5 * 1024 * 1024
    assert scorer.config.architecture == "equivariant"
    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    assert "grasp_equi.safetensors" in card and "Held-out results" in card
    assert "heldout" in scorer.info and scorer.info["heldout"]["families"] == sorted(HELD_OUT)


def test_make_train_retrains_the_shipped_architecture(scorer):
    """``make train`` runs ``grasp-equi train`` with its default model config: it must be the
    shipped file's (a default that drifted, e.g. the contact-normal sign, would silently
    retrain another model)."""
    import argparse

    from grasp_equi.train import add_arguments, model_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = model_config(parser.parse_args(["--data", "d", "--out", "o"]))
    after_training = ("held_members", "ensemble_members")  # readouts fit-held / fit-ensemble add to a trained network
    shipped = {k: v for k, v in scorer.config.to_dict().items() if k not in after_training}
    assert {k: v for k, v in default.to_dict().items() if k not in after_training} == shipped


def test_shipped_baseline_loads_with_the_same_interface():
    path = WEIGHTS_DIR / "baseline.safetensors"
    if not path.is_file():
        pytest.skip(f"no baseline weights at {path}")
    baseline = GraspScorer.from_checkpoint(path, device="cpu")
    assert baseline.config.architecture == "pointnet"
    rng = np.random.default_rng(0)
    d = rng.normal(size=(600, 3))
    points = 0.04 * d / np.linalg.norm(d, axis=1, keepdims=True)
    p = baseline.score(points, points[rng.integers(0, 600, size=(5, 2))])
    assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))
