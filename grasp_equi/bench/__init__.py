"""``grasp-equi bench``: latency and memory of the scoring pipeline, stage by stage.

Grid: N in {5k, 20k, 100k} cloud points x G in {1, 64, 512, 4000} grasps (K = 2), on the
CPU and on CUDA when present. Each configuration: warm-up calls (excluded), then repeated
``GraspScorer.score`` calls; the records hold per-stage medians (decode, sampling, normals,
graph, encoder, head, encode), the end-to-end median with its spread, peak host/GPU memory
and the invariance error of that configuration. ``--ros`` adds the end-to-end latency over
ROS 2 next to an echo node (the transport floor).

Imports only torch/numpy (and the ROS codec lazily, when present), so it runs on a GPU box
without rclpy, open3d or Qt.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grasp_equi.cli_types import nonneg_float, positive_int

FULL_POINTS = (5_000, 20_000, 100_000)
FULL_GRASPS = (1, 64, 512, 4_000)
# --quick: a subset that includes the CPU target point (N=20k, G=64); < 50 s on 2 cores.
QUICK_GRID = ((5_000, 1), (5_000, 64), (20_000, 1), (20_000, 64), (20_000, 512))
INVARIANCE_MAX_GRASPS = 512  # the invariance check re-scores twice; skip it for the biggest G


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _config_overrides(text: str) -> dict:
    """``"num_nodes=128,radius=0.4"`` -> ``{"num_nodes": 128, "radius": 0.4}``, typed like ModelConfig."""
    import dataclasses

    from grasp_equi.model import ModelConfig

    types = {f.name: type(f.default) for f in dataclasses.fields(ModelConfig)}
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise argparse.ArgumentTypeError(f"{item!r}: expected KEY=VALUE with KEY one of {sorted(types)}")
        try:
            out[key] = types[key](value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a {types[key].__name__}") from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="auto = the CPU, and CUDA too when present (default)")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {len(QUICK_GRID)} configurations (incl. N=20000, G=64), fewer repeats")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the records as a JSON list")
    parser.add_argument("--plot", type=Path, metavar="PATH",
                        help="latency plot (PNG); default: next to --json with .png (full grid only)")
    parser.add_argument("--n-points", type=_int_list, metavar="N,N,...", help="override the cloud sizes")
    parser.add_argument("--n-grasps", type=_int_list, metavar="G,G,...", help="override the grasp counts")
    parser.add_argument("--k", type=positive_int, default=2, help="contacts per grasp (default 2)")
    parser.add_argument("--weights", type=Path, metavar="PATH",
                        help="checkpoint to time (default: shipped weights if present, else an untrained "
                             "default-size model; latency does not depend on the weights' values)")
    parser.add_argument("--model-config", type=_config_overrides, default={}, metavar="KEY=VALUE,...",
                        help="untrained model with these ModelConfig fields changed, e.g. "
                             "num_nodes=128,irreps_hidden=16x0e+4x1o+2x2e (to price another model size)")
    parser.add_argument("--precision", default="fp32", metavar="P,P,...",
                        help="fp32 (default) and/or bf16, fp16 (torch.autocast; reported with their "
                             "invariance error, which must stay < 1e-3 to be usable, or as not running)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the tensor-product kernels first (GraspScorer.compile); the "
                             "compile time is reported, the warm-ups exclude it")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads while scoring (default: the library default, 1; see --contention)")
    parser.add_argument("--budget", type=nonneg_float, help="seconds of repeats per configuration after the minimum")
    parser.add_argument("--propose", action="store_true",
                        help="also time GraspPlanner.propose on one N=20000 cloud (candidates, collision checks, "
                             "one batched scoring call) next to scoring the same number of grasps")
    parser.add_argument("--ros", action="store_true",
                        help="also measure end to end over ROS 2 (grasp_node vs an echo node); needs rclpy")
    parser.add_argument("--scaling", action="store_true",
                        help="instead of the grid: cost vs number of grasps at N=20000 (G = 64 ... 4000), the "
                             "marginal ms per 1,000 grasps and the head's FLOPs per grasp (CPU)")
    parser.add_argument("--compare", type=Path, metavar="PATH",
                        help="with --scaling: a second checkpoint (e.g. the previous weights) timed in the same run")
    parser.add_argument("--contention", action="store_true",
                        help="instead of the grid: a scoring call with a competing CPU-bound process on one core "
                             "vs a quiet machine (the bench starts and stops that process itself), for the "
                             "library's default threads and for one thread per core")


def _grid(args) -> list[tuple[int, int]]:
    if args.n_points or args.n_grasps:
        points = args.n_points or ([20_000] if args.quick else list(FULL_POINTS))
        grasps = args.n_grasps or ([64] if args.quick else list(FULL_GRASPS))
        return [(n, g) for n in points for g in grasps]
    if args.quick:
        return list(QUICK_GRID)
    return [(n, g) for n in FULL_POINTS for g in FULL_GRASPS]


def _devices(choice: str) -> list[str]:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available (torch.cuda.is_available() is False)")
    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [choice]


def _precisions(text: str) -> list[str]:
    values = [p.strip() for p in text.split(",") if p.strip()]
    bad = sorted(set(values) - {"fp32", "bf16", "fp16"})
    if bad or not values:
        raise ValueError(f"--precision takes fp32, bf16, fp16; got {text!r}")
    return values


def _scorer(weights: Path | None, device: str, overrides: dict, threads: int | None = None):
    """The scorer to time; ``threads`` None = the library's default (``DEFAULT_THREADS``)."""
    from grasp_equi.scorer import DEFAULT_THREADS, SHIPPED_WEIGHTS, GraspScorer

    threads = threads or DEFAULT_THREADS
    if overrides:
        if weights is not None:
            raise ValueError("--model-config prices an untrained model; it cannot be combined with --weights")
        return GraspScorer.untrained(seed=0, device=device, threads=threads, **overrides)
    if weights is not None:
        return GraspScorer.from_checkpoint(weights, device=device, threads=threads)
    if SHIPPED_WEIGHTS.is_file():
        return GraspScorer.from_checkpoint(None, device=device, threads=threads)
    return GraspScorer.untrained(seed=0, device=device, threads=threads)


def _run_cpu_studies(args) -> int:
    """``--scaling`` and/or ``--contention`` (CPU): tables on the console, records in ``--json``."""
    import torch

    from grasp_equi.bench.report import write_json

    records = []
    with torch.inference_mode():
        if args.scaling:
            from grasp_equi.bench.scaling import measure_scaling, plot_scaling, scaling_table

            main = _scorer(args.weights, "cpu", args.model_config, args.threads)
            scorers = {main.name: main}
            if args.compare is not None:
                other = _scorer(args.compare, "cpu", {}, args.threads)
                scorers[f"{other.name} ({args.compare})" if other.name == main.name else other.name] = other
            grasps = args.n_grasps or None
            scaling = measure_scaling(scorers, (args.n_points or [20_000])[0], **({"grasps": grasps} if grasps else {}),
                                      k=args.k)
            print(scaling_table(scaling))
            records += scaling
            plot_path = args.plot or (args.json.with_name(args.json.stem + "_scaling.png") if args.json else None)
            if plot_path and plot_scaling(plot_path, scaling):
                print(f"wrote {plot_path}")
        if args.contention:
            from grasp_equi.bench.contention import contention_table, measure_contention

            contention = measure_contention(lambda threads: _scorer(args.weights, "cpu", args.model_config, threads),
                                            (args.n_points or [20_000])[0], (args.n_grasps or [64])[0])
            print(contention_table(contention))
            records += contention
    if args.json:
        write_json(args.json, records, {"torch": torch.__version__})
        print(f"wrote {args.json}")
    return 0


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _compile(scorer, k: int) -> float:
    """Compile ``scorer``'s kernels and run them once; returns the seconds that took."""
    import time

    from grasp_equi.bench.measure import make_workload

    start = time.perf_counter()
    work = make_workload(5_000, 8, k=k)
    scorer.compile().score(work.points, work.contacts)
    return time.perf_counter() - start


def _adversarial_invariance(scorer) -> dict[str, float]:
    """Max |score change| per cloud of the adversarial family (``grasp_equi.adversarial``)."""
    from grasp_equi.adversarial import adversarial_family, invariance_error, rigid_motions

    motions = rigid_motions()
    return {case.name: invariance_error(scorer.score, case, motions) for case in adversarial_family()}


def run(args) -> int:
    if args.k < 2:
        raise ValueError("--k must be >= 2 (a grasp needs at least two contacts)")
    if args.ros and (args.compile or args.precision != "fp32"):
        raise ValueError("--ros compares the node with the plain fp32 API; run it without --compile/--precision")
    devices, precisions, grid = _devices(args.device), _precisions(args.precision), _grid(args)
    if args.model_config and args.weights is not None:
        raise ValueError("--model-config prices an untrained model; it cannot be combined with --weights")
    if args.compare is not None and not args.scaling:
        raise ValueError("--compare goes with --scaling")
    if args.scaling or args.contention:
        if args.compile or args.precision != "fp32" or args.device == "cuda" or args.ros or args.propose:
            raise ValueError("--scaling/--contention time the fp32 API on the CPU; drop --compile, --precision, "
                             "--device cuda, --ros and --propose")
        return _run_cpu_studies(args)
    from grasp_equi.bench.cli_help import help_line, help_seconds

    help_s = help_seconds(repeats=1 if args.quick else 3)  # before torch is loaded here, on a quiet machine
    import torch
    from tqdm import tqdm

    from grasp_equi.bench import measure as m
    from grasp_equi.bench.report import markdown_table, plot, ros_table, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, min_repeats, max_repeats = (1, 3, 10) if args.quick else (2, 5, 30)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 2.0)
    codec = m.Codec.load()
    if codec is None:
        print("bench: ROS message packages not importable: decode/encode stages left out", file=sys.stderr)

    records, machines = [], {}
    jobs = [(d, p, n, g) for d in devices for p in precisions for n, g in grid]
    scorers, compile_s, failed = {}, {}, {}
    with torch.inference_mode(), tqdm(jobs, desc="bench", unit="config", file=sys.stderr) as progress:
        for device, precision, n_points, n_grasps in progress:
            progress.set_postfix_str(f"{device} {precision} N={n_points} G={n_grasps}")
            if device not in scorers:
                scorers[device] = _scorer(args.weights, device, args.model_config, args.threads)
                machines[device] = m.machine_description(scorers[device].device)
                if args.compile:
                    compile_s[device] = _compile(scorers[device], args.k)
                    machines[device] += f"; tensor products compiled in {compile_s[device]:.0f} s"
            scorer = scorers[device]
            work = m.make_workload(n_points, n_grasps, k=args.k)
            try:
                record = m.measure(scorer, work, codec, warmup, min_repeats, max_repeats, budget, precision)
                record["invariance_max_abs"] = (m.invariance_error(scorer, work, precision)
                                                if n_grasps <= INVARIANCE_MAX_GRASPS else None)
            except RuntimeError as err:
                if precision == "fp32":
                    raise
                # e.g. e3nn 0.6 mixes dtypes under autocast (tensordot: "both inputs should have same dtype")
                failed.setdefault((device, precision), str(err).splitlines()[0])
                continue
            record["machine"] = machines[device]
            record["load_avg_1min"] = _load_average()  # other processes' demand while it ran
            record["mode"] = "api"
            record["compiled"] = bool(args.compile)
            records.append(record)
            if device == "cuda":
                torch.cuda.empty_cache()

    busy = [r["load_avg_1min"] for r in records if r["load_avg_1min"] is not None]
    if busy and max(busy) > (os.cpu_count() or 1) and torch.get_num_threads() > 1:
        print(f"bench: the machine was busy (load average up to {max(busy):.1f} on {os.cpu_count()} cores): "
              "wall times include waiting for other processes, and torch's threads stall each other; "
              "see cpu_ms_median, or rerun with --threads 1", file=sys.stderr)
    for (device, precision), reason in failed.items():
        print(f"bench: {precision} on {device} does not run: {reason}", file=sys.stderr)
    model = scorers[devices[0]].name
    print(markdown_table(records))
    for device, text in machines.items():
        print(f"{device}: {text}")
    print(f"model: {model}; times in ms, medians over repeats (warm-ups excluded); "
          "total = GraspScorer.score end to end; pipeline = decode + total + encode")
    worst = [r["invariance_max_abs"] for r in records if r["invariance_max_abs"] is not None]
    if worst:
        print(f"invariance: max |score change| under a random rigid motion = {max(worst):.2e}")

    print(help_line(help_s))
    adversarial = {device: _adversarial_invariance(scorer) for device, scorer in scorers.items()}
    for device, errors in adversarial.items():
        name = max(errors, key=errors.get)
        print(f"invariance on {len(errors)} adversarial clouds (grids, symmetric meshes, repeated points, depth "
              f"views; rigid motions up to 100 m) on {device}: max |score change| {errors[name]:.2e} ({name})")
    meta = {"model": model, "torch": torch.__version__, "quick": bool(args.quick), "cli_help_s": help_s,
            "adversarial_invariance": adversarial}
    if args.propose:
        from grasp_equi.bench.propose import measure_propose, propose_table

        with torch.inference_mode():
            propose_records = [measure_propose(scorers[d]) for d in devices]
        print(propose_table(propose_records))
        records += propose_records
    if args.ros:
        from grasp_equi.ros.bench_e2e import measure_ros  # rclpy lives only under ros/

        ros_records = measure_ros(args, scorers, records)
        print(ros_table(ros_records))
        records += ros_records
    if args.json:
        write_json(args.json, records, meta)
        print(f"wrote {args.json}")
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json and not args.quick else None)
    if plot_path:
        title = "; ".join(f"{d}: {t}" for d, t in machines.items()) + f"; model {model}"
        if plot(plot_path, records, title):
            print(f"wrote {plot_path}")
        else:
            print("bench: matplotlib not importable: no plot", file=sys.stderr)
    return 0
