"""Candidate grasps for one object, mixed from the samplers, and their robust stability labels.

The sampler mix per K is chosen so that roughly 30-60 % of the candidates are stable
(robust P(force closure) >= 0.5) on the built-in families: jaw-reachable antipodal pairs are
mostly stable, random pairs almost never; opposition and radial K-finger grasps are stable
more often as K grows, random K-point grasps less so.
"""

from __future__ import annotations

import numpy as np

from grasp_equi.data.grasps import (perturb_grasps, sample_antipodal, sample_multifinger, sample_opposed,
                                    sample_random)
from grasp_equi.data.objects import ObjectInfo
from grasp_equi.quality import label_grasps

SOURCES = ("antipodal", "perturbed", "random", "opposed", "radial")

# fraction of each K's candidates drawn from each sampler (remainders go to "random")
MIX = {
    2: {"antipodal": 0.65, "perturbed": 0.15, "random": 0.20},
    3: {"opposed": 0.70, "radial": 0.20, "random": 0.10},
    4: {"opposed": 0.40, "radial": 0.30, "random": 0.30},
    5: {"opposed": 0.25, "radial": 0.25, "random": 0.50},
}


def _mix_for(k: int) -> dict:
    return MIX.get(k, MIX[5])


def _draw(obj: ObjectInfo, source: str, k: int, n: int, rng, max_width: float, mu: float):
    if n <= 0:
        return np.zeros((0, k, 3)), np.zeros((0, k, 3))
    if source == "antipodal":
        return sample_antipodal(obj, n, rng, max_width=max_width, mu=mu)
    if source == "perturbed":
        base, _ = sample_antipodal(obj, n, rng, max_width=max_width, mu=mu)
        if len(base) == 0:
            return np.zeros((0, k, 3)), np.zeros((0, k, 3))
        return perturb_grasps(obj, base, rng, scale=0.004)
    if source == "opposed":
        return sample_opposed(obj, k, n, rng, max_width=max_width, mu=mu)
    if source == "radial":
        return sample_multifinger(obj, k, n, rng)
    return sample_random(obj, k, n, rng)


def candidates(obj: ObjectInfo, k: int, n: int, rng: np.random.Generator, max_width: float = 0.085,
               mu: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` K-contact candidates ``(contacts [n, k, 3], normals [n, k, 3], source [n] int8)``.

    Samplers that fall short (an object too wide for the gripper) are topped up with random
    grasps, so the count is always ``n``.
    """
    mix = _mix_for(k)
    counts = {s: int(round(f * n)) for s, f in mix.items() if s != "random"}
    contacts, normals, sources = [], [], []
    for source, count in counts.items():
        c, nrm = _draw(obj, source, k, count, rng, max_width, mu)
        contacts.append(c)
        normals.append(nrm)
        sources.append(np.full(len(c), SOURCES.index(source), np.int8))
    short = n - sum(len(c) for c in contacts)
    if short > 0:
        c, nrm = sample_random(obj, k, short, rng)
        contacts.append(c)
        normals.append(nrm)
        sources.append(np.full(short, SOURCES.index("random"), np.int8))
    return np.concatenate(contacts)[:n], np.concatenate(normals)[:n], np.concatenate(sources)[:n]


def labelled_candidates(obj: ObjectInfo, k: int, n: int, rng: np.random.Generator, max_width: float = 0.085,
                        mu: float = 0.5, samples: int = 24, sigma: float = 0.003, mu_sigma: float = 0.1):
    """Candidates plus labels: ``(contacts, normals, source, P(force closure) [n], epsilon [n])``."""
    contacts, normals, source = candidates(obj, k, n, rng, max_width=max_width, mu=mu)
    labels, eps = label_grasps(contacts, normals, obj.center, obj.radius, samples=samples, sigma=sigma,
                               mu_sigma=mu_sigma, rng=rng, mu=mu)
    return contacts, normals, source, labels, eps
