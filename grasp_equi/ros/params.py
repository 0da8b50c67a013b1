"""The node's parameters: one table with types, ranges, read-only flags and descriptions.

Every parameter is declared with a ``ParameterDescriptor`` so ``ros2 param describe`` shows
its range, and rclpy itself rejects out-of-range or read-only changes. Choices (``sync``,
``device``, ``score_output``) are checked in an on-set callback, so a bad value is refused with a
reason both at start-up (from a params file) and at run time; whether the loaded model answers
the ``score_output`` chosen is checked once it is loaded (``output_check``). Unknown names in a params file are an
error at start-up: a typo must not silently leave a default in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from grasp_equi import limits as L
from grasp_equi.gripper import JawGeometry
from grasp_equi.planner import PlannerConfig
from grasp_equi.poses import GripperBody
from grasp_equi.limits import Limits
from grasp_equi.ros.outputs import OUTPUT_CHOICES, resolve_output
from grasp_equi.scene import SceneConfig

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
SYNC_CHOICES = ("exact", "latest")
MIN_POINTS = 4  # the scorer needs at least this many points


@dataclass(frozen=True)
class Spec:
    """One declared parameter."""

    name: str
    default: object
    description: str
    read_only: bool = False
    value_range: tuple | None = None  # (lo, hi), inclusive; int or float by the default's type
    choices: tuple[str, ...] | None = None


SPECS: tuple[Spec, ...] = (
    Spec("model_path", "", "safetensors checkpoint; '' = the shipped weights", read_only=True),
    Spec("allow_untrained", False, "if the shipped weights are missing, score with a random untrained "
         "model instead of exiting (demo/test use only)", read_only=True),
    Spec("device", "auto", "auto | cpu | cuda | cuda:N (auto = CUDA when present)", read_only=True),
    Spec("cpu_threads", 1, "torch CPU threads for inference; 0 = torch's default (one per core). 1 keeps "
         "OpenMP workers from contending with the DDS and executor threads on small robot CPUs",
         read_only=True, value_range=(0, 256)),
    Spec("score_output", "", "what scored_grasps' score (and markers' colours) carries: '' = the model's "
         "default (held when it has P(held) readouts, else force_closure), held = P(held) from physics trials, "
         "force_closure = P(robust force closure); a choice the model lacks is refused", choices=OUTPUT_CHOICES),
    Spec("sync", "exact", "match contacts to the cloud with the same header.stamp (exact) or to the "
         "latest cloud in the same frame (latest)", choices=SYNC_CHOICES),
    Spec("sync_timeout", 2.0, "seconds a request waits for its cloud before it is dropped", value_range=(0.0, 60.0)),
    Spec("max_points", L.MAX_POINTS, "clouds (and contacts messages) with more points are rejected before "
         "they are decoded", value_range=(MIN_POINTS, 50_000_000)),
    Spec("max_grasps", L.MAX_GRASPS, "requests with more grasps (contacts grasp_ids or grasp_poses) are rejected",
         value_range=(1, 10_000_000)),
    Spec("max_contacts_per_grasp", L.MAX_CONTACTS_PER_GRASP, "K: a grasp with more contacts rejects its request "
         "(the head's memory grows with K^2)", value_range=(2, 256)),
    Spec("min_object_radius", L.MIN_OBJECT_RADIUS, "m: clouds whose characteristic radius (max distance of a "
         "point from the centroid) is smaller are rejected as implausible", value_range=(1e-6, 1e3)),
    Spec("max_object_radius", L.MAX_OBJECT_RADIUS, "m: clouds whose characteristic radius is larger are rejected "
         "as implausible", value_range=(1e-6, 1e3)),
    Spec("sample_points", 0, "0 = score on every point; N = larger clouds are reduced to a fixed random "
         f"subset of N points first (N >= {MIN_POINTS})", value_range=(0, 50_000_000)),
    Spec("queue_size", 2, "scoring jobs waiting for the worker; when full the oldest is dropped",
         value_range=(1, 64)),
    Spec("cloud_buffer", 10, "recent clouds kept for exact-stamp matching", value_range=(1, 100)),
    Spec("gripper.max_width", 0.08, "grasp_poses: jaw opening in metres", value_range=(0.001, 1.0)),
    Spec("gripper.finger_depth", 0.03, "grasp_poses: pad length back from the fingertip, metres",
         value_range=(0.001, 0.5)),
    Spec("gripper.finger_width", 0.02, "grasp_poses: pad width across the closing direction, metres",
         value_range=(0.001, 0.5)),
    Spec("gripper.contact_tolerance", 0.002, "grasp_poses: points this close to the first touch form the "
         "contact patch, metres", value_range=(0.0001, 0.05)),
    Spec("gripper.finger_thickness", 0.008, "pad thickness outside the opening (collision checks, markers), "
         "metres", value_range=(0.0001, 0.5)),
    Spec("gripper.palm_depth", 0.02, "palm thickness behind the pads (collision checks, markers), metres",
         value_range=(0.0001, 0.5)),
    Spec("gripper.check_collisions", True, "grasp_poses: leave out (reason 'collision') poses whose open pads "
         "or palm hold cloud points"),
    Spec("propose.top_k", 10, "propose_cloud: ranked poses published on ranked_poses", value_range=(1, 1000)),
    Spec("propose.num_seeds", 256, "propose_cloud: seed points for antipodal pairs", value_range=(1, 512)),
    Spec("propose.approach_angles", 8, "propose_cloud: approach directions tried about each closing line",
         value_range=(1, 16)),
    Spec("propose.seed", 0, "propose_cloud: sampling seed (same cloud and seed, same proposals)",
         value_range=(0, 2**31 - 1)),
    Spec("scene.segment", False, "propose_cloud: the cloud is a scene; remove the dominant support plane and "
         "propose on the largest object cluster (the plane still counts for collisions)"),
    Spec("scene.plane_distance", 0.005, "scene.segment: support-plane inlier distance, metres",
         value_range=(0.0005, 0.1)),
    Spec("scene.cluster_radius", 0.01, "scene.segment: points closer than this belong to one object, metres",
         value_range=(0.001, 0.2)),
    Spec("markers.top_n", 5, "grippers drawn in markers (the best N; 0 = none)", value_range=(0, 100)),
    Spec("marker_size", 0.008, "diameter of the contact spheres in RViz, metres", value_range=(0.0001, 1.0)),
    Spec("diagnostics_period", 1.0, "seconds between /diagnostics messages", read_only=True,
         value_range=(0.1, 60.0)),
    Spec("log_throttle", 5.0, "seconds between repeated warnings of one kind", value_range=(0.0, 3600.0)),
)
BUILTIN = {"use_sim_time", "start_type_description_service"}


@dataclass
class Settings:
    """A snapshot of the parameter values the node reads while serving."""

    model_path: str = ""
    allow_untrained: bool = False
    device: str = "auto"
    cpu_threads: int = 1
    score_output: str = ""
    sync: str = "exact"
    sync_timeout: float = 2.0
    max_points: int = L.MAX_POINTS
    max_grasps: int = L.MAX_GRASPS
    max_contacts_per_grasp: int = L.MAX_CONTACTS_PER_GRASP
    min_object_radius: float = L.MIN_OBJECT_RADIUS
    max_object_radius: float = L.MAX_OBJECT_RADIUS
    sample_points: int = 0
    queue_size: int = 2
    cloud_buffer: int = 10
    jaw: JawGeometry = field(default_factory=JawGeometry)
    body: GripperBody = field(default_factory=GripperBody)
    check_collisions: bool = True
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    markers_top_n: int = 5
    scene: SceneConfig | None = None  # None: propose_cloud clouds are objects already
    marker_size: float = 0.008
    diagnostics_period: float = 1.0
    log_throttle: float = 5.0

    @property
    def limits(self) -> Limits:
        return Limits(max_contacts_per_grasp=self.max_contacts_per_grasp, max_grasps=self.max_grasps,
                      max_points=self.max_points, min_object_radius=self.min_object_radius,
                      max_object_radius=self.max_object_radius)


def choices_text(choices: tuple[str, ...]) -> str:
    """A descriptor's ``additional_constraints`` for a choice (the empty string shown as ``''``)."""
    return "one of: " + ", ".join(c or "''" for c in choices)


def _descriptor(spec: Spec) -> ParameterDescriptor:
    desc = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = choices_text(spec.choices)
    if spec.name == "device":
        desc.additional_constraints = "auto, cpu, cuda or cuda:N"
    if spec.value_range is not None:
        lo, hi = spec.value_range
        if isinstance(spec.default, int):
            desc.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return desc


def check_values(params: list[Parameter], current: dict | None = None) -> SetParametersResult:
    """On-set callback: the checks a descriptor cannot express (``current``: values now set)."""
    radii = {**(current or {}), **{p.name: p.value for p in params}}
    lo, hi = radii.get("min_object_radius"), radii.get("max_object_radius")
    if lo is not None and hi is not None and lo >= hi:
        return SetParametersResult(successful=False,
                                   reason=f"min_object_radius {lo} must be below max_object_radius {hi}")
    for p in params:
        if p.name == "sync" and p.value not in SYNC_CHOICES:
            return SetParametersResult(successful=False, reason=f"sync must be one of {SYNC_CHOICES}; got {p.value!r}")
        if p.name == "score_output" and p.value not in OUTPUT_CHOICES:
            return SetParametersResult(successful=False, reason=f"score_output must be one of {list(OUTPUT_CHOICES)} "
                                                                f"('' = the model's default); got {p.value!r}")
        if p.name == "device" and not DEVICE_PATTERN.match(str(p.value)):
            return SetParametersResult(successful=False,
                                       reason=f"device must be auto, cpu, cuda or cuda:N; got {p.value!r}")
        if p.name == "sample_points" and 0 < int(p.value) < MIN_POINTS:
            return SetParametersResult(successful=False,
                                       reason=f"sample_points must be 0 or >= {MIN_POINTS}; got {p.value}")
    return SetParametersResult(successful=True)


def output_check(outputs: tuple[str, ...], model: str, logger):
    """On-set callback once the model is loaded: refuse (and log) a ``score_output`` it cannot answer."""
    def check(params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "score_output":
                try:
                    resolve_output(p.value, outputs, model)
                except ValueError as err:
                    logger.warning(f"refused: {err}")
                    return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)
    return check


def declare_all(node: Node) -> None:
    """Declare every parameter; raise ``ValueError`` (with the reason) for a bad or unknown value."""
    def current() -> dict:
        return {name: node.get_parameter(name).value for name in ("min_object_radius", "max_object_radius")
                if node.has_parameter(name)}

    node.add_on_set_parameters_callback(lambda params: check_values(params, current()))
    known = {s.name for s in SPECS}
    unknown = sorted(set(getattr(node, "_parameter_overrides", {})) - known - BUILTIN)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
    for spec in SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except ParameterException as err:
            raise ValueError(f"parameter {spec.name}: {err}") from None
        except TypeError as err:  # e.g. rclpy on a value whose type does not match
            raise ValueError(f"parameter {spec.name}: expected {type(spec.default).__name__} ({err})") from None


def read_settings(node: Node) -> Settings:
    """The current values as a ``Settings`` snapshot."""
    value = {s.name: node.get_parameter(s.name).value for s in SPECS}
    jaw = JawGeometry(value["gripper.max_width"], value["gripper.finger_depth"], value["gripper.finger_width"],
                      value["gripper.contact_tolerance"])
    body = GripperBody(jaw, value["gripper.finger_thickness"], value["gripper.palm_depth"])
    planner = PlannerConfig(num_seeds=value["propose.num_seeds"], approach_angles=value["propose.approach_angles"],
                            top_k=value["propose.top_k"], seed=value["propose.seed"])
    plain = {f.name: value[f.name] for f in fields(Settings) if f.name in value}
    scene = (SceneConfig(plane_distance=value["scene.plane_distance"], cluster_radius=value["scene.cluster_radius"])
             if value["scene.segment"] else None)
    return Settings(jaw=jaw, body=body, check_collisions=value["gripper.check_collisions"], planner=planner,
                    markers_top_n=value["markers.top_n"], scene=scene, **plain)
