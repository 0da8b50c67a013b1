#!/usr/bin/env bash
# GPU check in one call: install without dependencies, run the CUDA + core tests, benchmark on CUDA.
#
#   scripts/gpu_check.sh [OUT_DIR]        (default: $OUT, else ./gpu_check_out)
#
# Needs: an NVIDIA GPU, python3 with torch (CUDA build), e3nn, numpy, scipy, safetensors, tqdm,
# pytest (hypothesis, matplotlib optional). No internet, no rclpy/open3d/PySide6 needed.
# Every step has its own time limit; the whole script stays under 8 minutes. Everything it
# produces lands in OUT_DIR: gpu_check.log (this console), env.txt, nvidia-smi.txt,
# pytest.txt + junit.xml, bench_cuda.{json,png,txt}, bench_cuda_amp.{json,txt}, bench_cuda_compiled.*,
# bench_cpu_quick.{json,txt} and summary.txt (the figures to put in the README).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python3}"
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1
T0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
# limit N: N seconds, or what is left of the 7 min 40 s budget if less (0 = skip the step)
limit() { local left=$(( T0 + 460 - $(date +%s) )); [ "$left" -lt "$1" ] && echo $(( left > 5 ? left : 0 )) || echo "$1"; }
run_limited() { local secs; secs=$(limit "$1"); shift
    if [ "$secs" -le 0 ]; then echo "skipped: out of time"; return 124; fi
    timeout "$secs" "$@"; }
status=0

step "environment"
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available"
head -15 "$OUT_DIR/nvidia-smi.txt"
"$PY" - > "$OUT_DIR/env.txt" 2>&1 <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
print("cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
for name in ("e3nn", "numpy", "scipy", "safetensors", "tqdm", "pytest", "hypothesis", "matplotlib", "rclpy"):
    try:
        module = __import__(name)
        print(f"{name}: {getattr(module, '__version__', 'present')}")
    except ImportError:
        print(f"{name}: missing")
EOF
cat "$OUT_DIR/env.txt"

step "pip install --no-deps -e . (offline)"
if [ -n "${GPU_CHECK_SKIP_INSTALL:-}" ]; then
    echo "skipped (GPU_CHECK_SKIP_INSTALL set)"
elif ! timeout 60 "$PY" -m pip install --no-deps --no-build-isolation --no-index -q -e . \
        > "$OUT_DIR/pip.txt" 2>&1; then
    echo "pip install failed (see pip.txt); running from the source tree via PYTHONPATH"
    tail -5 "$OUT_DIR/pip.txt"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # harmless after a good install, needed after a bad one

step "tests: CUDA + core (no ROS/Qt)"
# test_cuda: CPU vs CUDA scores within 1e-4 and invariance on CUDA; the rest: invariance, model,
# API contract and the benchmark's own tests on the real pipeline.
run_limited 150 "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$OUT_DIR/junit.xml" \
    tests/test_cuda.py tests/test_invariance.py tests/test_model.py tests/test_invariant_head.py tests/test_api.py \
    tests/test_bench.py \
    > "$OUT_DIR/pytest.txt" 2>&1 || status=1
tail -15 "$OUT_DIR/pytest.txt"

step "bench: full grid on CUDA"
run_limited 110 "$PY" -m grasp_equi.cli bench --device cuda --json "$OUT_DIR/bench_cuda.json" \
    --plot "$OUT_DIR/bench_cuda.png" > "$OUT_DIR/bench_cuda.txt" 2>"$OUT_DIR/bench_cuda.err" || status=1
cat "$OUT_DIR/bench_cuda.txt"; tail -3 "$OUT_DIR/bench_cuda.err"

step "bench: half precision on CUDA (reported with its invariance error)"
run_limited 40 "$PY" -m grasp_equi.cli bench --device cuda --quick --precision bf16,fp16 \
    --json "$OUT_DIR/bench_cuda_amp.json" > "$OUT_DIR/bench_cuda_amp.txt" 2>"$OUT_DIR/bench_cuda_amp.err" || true
cat "$OUT_DIR/bench_cuda_amp.txt"; tail -3 "$OUT_DIR/bench_cuda_amp.err"

step "bench: torch.compile'd tensor products on CUDA (compile time reported, excluded from timings)"
run_limited 70 "$PY" -m grasp_equi.cli bench --device cuda --compile --n-points 20000 --n-grasps 64,512,4000 \
    --json "$OUT_DIR/bench_cuda_compiled.json" > "$OUT_DIR/bench_cuda_compiled.txt" \
    2>"$OUT_DIR/bench_cuda_compiled.err" || true
cat "$OUT_DIR/bench_cuda_compiled.txt"; tail -3 "$OUT_DIR/bench_cuda_compiled.err"

step "bench: quick CPU run on the same machine (for comparison)"
run_limited 40 "$PY" -m grasp_equi.cli bench --device cpu --quick --json "$OUT_DIR/bench_cpu_quick.json" \
    > "$OUT_DIR/bench_cpu_quick.txt" 2>"$OUT_DIR/bench_cpu_quick.err" || true
cat "$OUT_DIR/bench_cpu_quick.txt"; tail -3 "$OUT_DIR/bench_cpu_quick.err"

step "summary"
"$PY" - "$OUT_DIR" > "$OUT_DIR/summary.txt" 2>&1 <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print((out / "env.txt").read_text().strip())
tail = (out / "pytest.txt").read_text().strip().splitlines() if (out / "pytest.txt").exists() else []
print("tests:", tail[-1] if tail else "no output")
targets = {(20000, 4000): 10.0, (20000, 512): 5.0}
for name in ("bench_cuda.json", "bench_cuda_amp.json", "bench_cuda_compiled.json", "bench_cpu_quick.json"):
    path = out / name
    if not path.exists():
        print(f"{name}: missing")
        continue
    for r in json.loads(path.read_text()):
        key = (r["n_points"], r["n_grasps"])
        goal = targets.get(key) if r["device"] == "cuda" and r.get("precision", "fp32") == "fp32" else None
        verdict = "" if goal is None else (" (target <= %.0f ms: %s)" % (goal, "met" if r["total_ms_median"] <= goal else "MISSED"))
        inv = r.get("invariance_max_abs")
        variant = r.get("precision", "fp32") + (" compiled" if r.get("compiled") else "")
        print(f"{name}: {r['device']} {variant} N={key[0]} G={key[1]}: "
              f"{r['total_ms_median']:.2f} ms [{r['total_ms_p10']:.2f}-{r['total_ms_p90']:.2f}]"
              f"{verdict}; invariance {'n/a' if inv is None else f'{inv:.1e}'}; "
              f"stages " + ", ".join(f"{k} {v:.2f}" for k, v in r["stage_ms"].items()))
EOF
cat "$OUT_DIR/summary.txt"
echo
echo "=== done in $(( $(date +%s) - T0 )) s; results in $OUT_DIR (status $status)"
exit $status
