"""grasp_equi: SE(3)-invariant grasp stability scoring for ROS 2."""

from grasp_equi.checkpoint import CheckpointError
from grasp_equi.planner import GraspPlanner, PlannerConfig, Proposals
from grasp_equi.poses import GripperBody, score_poses
from grasp_equi.scorer import GraspScorer

__version__ = "0.1.0"
__all__ = ["CheckpointError", "GraspPlanner", "GraspScorer", "GripperBody", "PlannerConfig", "Proposals",
           "__version__", "score_poses"]
