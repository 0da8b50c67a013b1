"""Fitting a last-layer ensemble (``grasp_equi.model.ensemble``) on a trained network's grasp features.

The network is frozen; each grasp of the training split is described once by the head's pooled
invariant features (one forward pass), and ``members`` readouts are trained on their own bootstrap
samples of those rows (Efron's bootstrap; "last-layer" ensembles as in Osband et al. 2016,
"Deep exploration via bootstrapped DQN"), with the training loop's class-balanced soft-target
BCE. Deterministic for a seed.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch

from grasp_equi import keys
from grasp_equi.model.ensemble import ReadoutEnsemble
from grasp_equi.training.dataset import CloudRecord, label_weights, make_batch


def _targets(record: CloudRecord, target: str) -> np.ndarray:
    """Labels ``[G]`` of ``record`` for ``target`` (``keys.OUTPUTS``; NaN where a grasp has none)."""
    if target == keys.OUTPUT_FORCE_CLOSURE:
        return record.labels
    if target == keys.OUTPUT_HELD:
        return record.p_held if record.p_held is not None else np.full(record.num_grasps, np.nan, np.float32)
    raise ValueError(f"unknown target {target!r}; expected one of {keys.OUTPUTS}")


def labelled_batches(records: Sequence[CloudRecord], target: str = keys.OUTPUT_FORCE_CLOSURE, batch_clouds: int = 16,
                     progress: bool = False):
    """``(batch, labels [g] float32)`` over every grasp of ``records`` that has a ``target`` label (force
    closure: all; held: those with physics trials), ``batch_clouds`` clouds at a time (``make_batch``)."""
    from tqdm import tqdm

    picks = [(i, np.flatnonzero(np.isfinite(_targets(r, target)))) for i, r in enumerate(records)]
    picks = [(i, rows) for i, rows in picks if len(rows)]
    for lo in tqdm(range(0, len(picks), batch_clouds), desc="grasp features", unit="batch", disable=not progress):
        chunk = picks[lo:lo + batch_clouds]
        yield make_batch(records, chunk), torch.as_tensor(
            np.concatenate([_targets(records[i], target)[rows] for i, rows in chunk])).float()


@torch.no_grad()
def pooled_features(model, records: Sequence[CloudRecord], batch_clouds: int = 16, progress: bool = False,
                    target: str = keys.OUTPUT_FORCE_CLOSURE) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [G, pooled_dim] float32, labels [G] float32)`` of every grasp of ``records`` that has a
    ``target`` label (``labelled_batches``)."""
    model.eval()
    features, labels = [], []
    for batch, y in labelled_batches(records, target, batch_clouds, progress):
        features.append(model.pooled(batch, model.encode(batch)))
        labels.append(y)
    if not features:
        raise ValueError(f"no grasps with a {target} label to fit readouts on")
    return torch.cat(features).float(), torch.cat(labels).float()


def fit_readout_ensemble(features: torch.Tensor, labels: torch.Tensor, members: int, hidden: int,
                         epochs: int = 10, seed: int = 0, lr: float = 3e-3, batch: int = 1024,
                         progress: bool = False, min_steps: int = 1, balanced: bool = True,
                         start: ReadoutEnsemble | None = None) -> ReadoutEnsemble:
    """``members`` readouts on ``features`` ``[G, d]`` / soft ``labels`` ``[G]``, each on its own bootstrap sample;
    ``epochs`` passes of ``batch`` rows, at least ``min_steps`` steps (small labelled sets). ``balanced``:
    the training loop's class weights (better ranking); without, plain BCE (calibrated probabilities).
    ``start``: readouts to train from (a copy; default: random), e.g. ``ReadoutEnsemble.from_readout``."""
    from tqdm import tqdm

    from grasp_equi.training.metrics import STABLE_THRESHOLD

    num = features.shape[0]
    if num == 0:
        raise ValueError("no labelled grasps to fit an ensemble on")
    w_stable, w_unstable = label_weights(labels.numpy(), STABLE_THRESHOLD) if balanced else (1.0, 1.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ensemble = copy.deepcopy(start) if start is not None else ReadoutEnsemble(features.shape[1], hidden, members)
        gen = torch.Generator().manual_seed(seed)
        boot = torch.randint(0, num, (members, num), generator=gen)  # [M, G] each member's bootstrap rows
        optimiser = torch.optim.Adam(ensemble.parameters(), lr=lr)
        steps = max(min_steps, epochs * num // batch)
        for _ in tqdm(range(steps), desc="ensemble", unit="step", disable=not progress):
            cols = torch.randint(0, num, (members, min(batch, num)), generator=gen)  # [M, B]
            rows = torch.gather(boot, 1, cols)  # [M, B] rows of each member's own sample
            y = labels[rows]  # [M, B]
            logits = ensemble.member_logits(features[rows])  # [M, B]
            weight = torch.where(y >= STABLE_THRESHOLD, w_stable, w_unstable)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * weight).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return ensemble.eval()


def with_ensemble(model, config, ensemble: ReadoutEnsemble):
    """A copy of ``model`` (and its config) carrying ``ensemble``; the network's own weights unchanged."""
    return with_readouts(model, config, "ensemble", ensemble)


def with_readouts(model, config, name: str, readouts: ReadoutEnsemble):
    """A copy of ``model`` (and its config) with ``readouts`` as its ``name`` module ("ensemble": force
    closure; "held": P(held)); every other weight unchanged."""
    import dataclasses

    from grasp_equi.model import build_model

    if readouts.hidden != config.readout_hidden:
        raise ValueError(f"readout width {readouts.hidden} != the model's readout_hidden {config.readout_hidden}")
    new_config = dataclasses.replace(config, **{f"{name}_members": readouts.members})
    new_model = build_model(new_config)
    state = {k: v for k, v in copy.deepcopy(model.state_dict()).items() if not k.startswith(f"{name}.")}
    new_model.load_state_dict({**state, **{f"{name}.{k}": v for k, v in readouts.state_dict().items()}})
    return new_model.eval(), new_config


KNOWN_RADIUS = 0.05  # feature distance (over the median feature norm) within which a grasp counts as already labelled


def acquisition_scores(sigma: torch.Tensor, features: torch.Tensor, labelled: torch.Tensor,
                       radius: float = KNOWN_RADIUS) -> torch.Tensor:
    """Which grasps to label next ``[G]``: the spread ``sigma`` ``[G]``, faded to 0 for a grasp whose pooled
    features ``[G, d]`` lie within ``radius`` (relative to the labelled grasps' median feature norm) of a
    labelled grasp's ``[L, d]``: its label is known already. ``ValueError`` for mismatched shapes.

    With invariant features a rotated or moved copy of a labelled object is such a grasp (its
    features equal the original's up to float rounding, ~1e-3 of this radius), so no label is spent
    on it; a non-invariant model's features move with the pose and cannot tell. Linear in the
    distance below ``radius``: no threshold that rounding could flip.
    """
    if features.ndim != 2 or labelled.ndim != 2 or labelled.shape[1] != features.shape[1] or \
            sigma.shape != features.shape[:1]:
        raise ValueError(f"acquisition_scores: sigma [G], features [G, d] and labelled [L, d] expected; got "
                         f"{tuple(sigma.shape)}, {tuple(features.shape)}, {tuple(labelled.shape)}")
    if labelled.shape[0] == 0:
        return sigma
    labelled = labelled.to(features.dtype)
    # the labelled set's scale: a candidate's score does not depend on which other candidates are asked about
    scale = labelled.norm(dim=1).median().clamp_min(1e-12)
    nearest = torch.cdist(features, labelled).min(dim=1).values / scale  # [G]
    return sigma * (nearest / radius).clamp(max=1.0)


def diverse_batch(scores: torch.Tensor, features: torch.Tensor, labelled: torch.Tensor, batch: int,
                  candidates: int = 4) -> np.ndarray:
    """Indices ``[min(batch, G)]`` of the grasps to label next: uncertain and unlike each other.

    Ranking by ``scores`` ``[G]`` alone (e.g. ``acquisition_scores``) fills a batch with near copies of
    one uncertain kind of grasp, and one label of each would have told as much. Here the
    ``candidates * batch`` highest-scoring grasps are kept and picked greedily by score × distance
    (pooled features ``[G, d]``) to the nearest grasp already labelled (``[L, d]``) or picked in this
    batch: a weighted form of k-centre greedy selection (Sener & Savarese 2018, "Active learning for
    convolutional neural networks: a core-set approach"). Deterministic: ties go to the lower index.
    The features are invariant, so a rigidly moved copy of a labelled grasp sits at distance ~0 and
    is never picked before a new grasp. ``ValueError`` for mismatched shapes, non-finite values or
    ``batch < 1``. Arrays or tensors on any device; the work is done on the CPU in float64.
    """
    scores, features, labelled = (torch.as_tensor(x).detach().cpu().double() for x in (scores, features, labelled))
    if features.ndim != 2 or labelled.ndim != 2 or labelled.shape[1] != features.shape[1] or \
            scores.shape != features.shape[:1] or batch < 1 or candidates < 1:
        raise ValueError(f"diverse_batch: scores [G], features [G, d], labelled [L, d], batch >= 1 and "
                         f"candidates >= 1 expected; got {tuple(scores.shape)}, {tuple(features.shape)}, "
                         f"{tuple(labelled.shape)}, {batch}, {candidates}")
    if not (scores.isfinite().all() and features.isfinite().all() and labelled.isfinite().all()):
        raise ValueError("diverse_batch: scores, features and labelled must be finite (a NaN would be picked first)")
    order = np.argsort(-scores.numpy(), kind="stable")[:candidates * batch]  # [m] candidate indices
    pool, weight = features[order], scores[order].clamp_min(0.0)  # [m, d], [m]
    if labelled.shape[0]:
        nearest = torch.cdist(pool, labelled).min(dim=1).values  # [m]
    else:
        nearest = torch.full((len(order),), float("inf"), dtype=torch.float64)
    picked: list[int] = []
    for _ in range(min(batch, len(order))):
        gain = weight * nearest.clamp(max=torch.finfo(torch.float64).max)  # [m]
        gain[picked] = -1.0
        best = int(torch.argmax(gain))  # first maximum: ties go to the higher score, then the lower index
        picked.append(best)
        nearest = torch.minimum(nearest, (pool - pool[best]).norm(dim=1))
    return order[picked]


def uncertainty_report(mean: np.ndarray, std: np.ndarray, labels: np.ndarray) -> dict:
    """How useful the spread is on labelled grasps: the AUC of σ for finding misclassified grasps,
    accuracy on all grasps and on the 80 % with the smallest σ."""
    from grasp_equi.training.metrics import STABLE_THRESHOLD, auc

    ok = np.isfinite(mean) & np.isfinite(std)
    mean, std, stable = mean[ok], std[ok], labels[ok] >= STABLE_THRESHOLD
    wrong = (mean >= 0.5) != stable
    certain = std <= np.quantile(std, 0.8) if len(std) else np.zeros(0, bool)
    return {"grasps": int(ok.sum()), "auc": auc(mean, stable), "sigma_error_auc": auc(std, wrong),
            "accuracy": float((~wrong).mean()) if len(wrong) else float("nan"),
            "accuracy_80pct_most_certain": float((~wrong[certain]).mean()) if certain.any() else float("nan"),
            "mean_sigma": float(std.mean()) if len(std) else float("nan")}
