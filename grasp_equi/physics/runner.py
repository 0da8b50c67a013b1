"""Run many grasp trials: one job per object (decompose + compile once), objects in parallel."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from tqdm import tqdm

from .scene import JawSpec


@dataclass
class ObjectJob:
    """Everything a worker needs to simulate the grasps of one object (picklable, no open3d state)."""

    vertices: np.ndarray  # [V, 3] mesh frame, metres
    faces: np.ndarray  # [F, 3]
    mass: float  # kg
    contacts: np.ndarray  # [G, K, 3] mesh frame (K = 2: parallel jaws; 3..5: fingertip hand)
    spec: JawSpec


def simulate_object(job: ObjectJob) -> list[dict]:
    """The trial results (as dicts of plain values) of one object's grasps, in order."""
    # imported in the worker: mujoco is not needed to plan jobs
    from .fingertips import FingertipSimulator
    from .trial import GraspSimulator

    mesh = trimesh.Trimesh(job.vertices, job.faces, process=False)
    hand = GraspSimulator if job.contacts.shape[1] == 2 else FingertipSimulator  # jaws for K = 2, else fingertips
    sim = hand(mesh, job.mass, job.spec)
    out = []
    for contacts in job.contacts:
        result = asdict(sim.trial(contacts))
        result["pieces"] = len(sim.pieces)
        out.append(result)
    return out


def run_jobs(jobs: list[ObjectJob], workers: int = 1, progress: bool = True) -> list[list[dict]]:
    """Results per job, in job order (deterministic whatever ``workers`` is)."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1; got {workers}")
    total = sum(len(j.contacts) for j in jobs)
    bar = tqdm(total=total, desc="physics trials", unit="trial", disable=not progress)
    results: list[list[dict]] = []
    if workers == 1:
        for job in jobs:
            results.append(simulate_object(job))
            bar.update(len(job.contacts))
    else:
        # spawn: no forked torch/open3d thread state in the workers
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for job, result in zip(jobs, pool.map(simulate_object, jobs)):
                results.append(result)
                bar.update(len(job.contacts))
    bar.close()
    return results
