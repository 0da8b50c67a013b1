"""grasp_equi: SE(3)-invariant grasp stability scoring for ROS 2.

The public names below load torch and e3nn on first use (PEP 562), so ``import grasp_equi``
(and ``grasp-equi --help``) stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["CheckpointError", "GraspPlanner", "GraspScorer", "GripperBody", "PlannerConfig", "Proposals",
           "__version__", "score_poses"]

_LAZY = {"GraspScorer": "grasp_equi.scorer", "CheckpointError": "grasp_equi.checkpoint",
         "GraspPlanner": "grasp_equi.planner", "PlannerConfig": "grasp_equi.planner", "Proposals": "grasp_equi.planner",
         "GripperBody": "grasp_equi.poses", "score_poses": "grasp_equi.poses"}


def __getattr__(name: str):
    """Import a public name's module when the name is first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grasp_equi' has no attribute {name!r}")
