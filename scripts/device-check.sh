#!/usr/bin/env bash
# The GPU check of egobench, in one short script (about 8 minutes on one H200-class GPU).
#
#   scripts/device-check.sh [OUT_DIR]          (run from a fresh clone's root)
#
# 1. installs egobench into the current python ($PYTHON, default python3: the one that holds a
#    CUDA build of torch) with `pip install -e ".[test]"`; on a machine without a package
#    registry, set EGOBENCH_WHEELS=<folder of wheels> for the packages that python lacks: they
#    and egobench are then installed offline without dependency resolution, and every import
#    egobench needs is checked instead (DEVICE_CHECK_OPTIONAL=av,... names imports that may be
#    missing there, e.g. av, which only `egobench prepare ego4d` uses);
# 2. runs the tests marked `gpu` (tests/test_gpu.py: metrics under fp16 / bf16 autocast against
#    fp32, the diffusion methods in fp16 twice with one seed, sharding over two processes on one
#    GPU), each measurement appended to a JSON-lines file;
# 3. runs `egobench bench --profile full-arch --device cuda` (real-size architectures with random
#    weights: images per second per evaluator stage, the speed ratios; then the memory item);
# 4. writes everything to OUT_DIR/device-check.json (environment, each stage's exit status and
#    time, every test's outcome and skip reason, the measurements, the bench report).
# Each stage has a time limit (DEVICE_CHECK_BUDGET seconds in all, default 480); a stage that
# fails or runs out of time is recorded and the script goes on to the next.
set -u
PYTHON=${PYTHON:-python3}
left() { echo $((BUDGET - ($(date +%s) - START))); }

# stage NAME MAX_SECONDS COMMAND... : run with a limit of min(MAX_SECONDS, time left), log to OUT/NAME.log
stage() {
    local name=$1 max=$2 limit rc t0 ms
    shift 2
    limit=$(left)
    [ "$limit" -gt "$max" ] && limit=$max
    t0=$(date +%s%N)
    if [ "$limit" -le 5 ]; then
        rc=124
        echo "skipped: no time left" >"$OUT/$name.log"
    else
        echo "== $name (limit ${limit}s)"
        timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
        rc=$?
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '{"stage": "%s", "rc": %d, "limit_s": %d, "seconds": %d.%03d}\n' \
        "$name" "$rc" "$limit" $((ms / 1000)) $((ms % 1000)) >>"$STAGES"
    tail -n 5 "$OUT/$name.log"
    return 0
}

install() {
    if [ -n "${EGOBENCH_WHEELS:-}" ]; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-cache-dir "$EGOBENCH_WHEELS"/*.whl &&
            "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir -e . &&
            "$PYTHON" - <<'EOF'
import importlib
import egobench._compat as c
c.ensure_torchvision()
names = ["torch", "torchvision", "numpy", "PIL", "pandas", "pyarrow", "yaml", "click", "jinja2", "tqdm", "lpips",
         "av", "huggingface_hub", "transformers", "open_clip", "torch_fidelity", "cleanfid", "scipy", "safetensors",
         "diffusers", "accelerate", "tokenizers", "markupsafe", "pytest", "hypothesis", "skimage", "pytorch_fid"]
missing = []
for n in names:
    try:
        importlib.import_module(n)
    except Exception as e:  # noqa: BLE001
        missing.append(f"{n}: {type(e).__name__}: {e}")
import os
optional = set(os.environ.get("DEVICE_CHECK_OPTIONAL", "").split(","))  # e.g. av: read by `prepare ego4d` only
print("\n".join(missing) or "every dependency imports")
raise SystemExit(1 if any(m.split(":")[0] not in optional for m in missing) else 0)
EOF
    else
        "$PYTHON" -m pip install -q -e ".[test]"
    fi
}

environment() {
    "$PYTHON" - "$OUT/environment.json" <<'EOF'
import json, platform, subprocess, sys
from importlib import metadata
import torch
env = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
       "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
       "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count(),
               capability=f"{p.major}.{p.minor}")
for d in ("egobench", "transformers", "diffusers", "open_clip_torch", "torch_fidelity", "lpips", "clean-fid",
          "accelerate", "huggingface_hub", "numpy", "torchvision", "pytorch-fid"):
    try:
        env[f"version:{d}"] = metadata.version(d)
    except metadata.PackageNotFoundError:
        env[f"version:{d}"] = None
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                        "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError) as e:
    env["nvidia_smi"] = f"unavailable: {e}"
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(json.dumps(env, indent=1))
EOF
}

# `device-check.sh --stage NAME`: one of the functions above, run by `stage` under `timeout`
if [ "${1:-}" = "--stage" ]; then
    "$2"
    exit $?
fi

OUT=${1:-device-check}
BUDGET=${DEVICE_CHECK_BUDGET:-480}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
START=$(date +%s)
STAGES="$OUT/stages.jsonl"
: >"$STAGES"
: >"$OUT/gpu-measurements.jsonl"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

export OUT

stage install 120 bash "$0" --stage install
stage environment 30 bash "$0" --stage environment
EGOBENCH_DEVICE_REPORT="$OUT/gpu-measurements.jsonl" \
    stage gpu-tests 240 "$PYTHON" -m pytest -m gpu tests -q -rs -p no:cacheprovider --junitxml "$OUT/gpu-tests.xml"
stage bench-speed 240 "$PYTHON" -m egobench bench --profile full-arch --device cuda --items metrics,pipeline,startup \
    --weights-dir "${TMPDIR:-/tmp}/egobench-full-arch" --json "$OUT/bench-speed.json" --quiet
stage bench-memory 150 "$PYTHON" -m egobench bench --profile full-arch --device cuda --items memory \
    --weights-dir "${TMPDIR:-/tmp}/egobench-full-arch" --json "$OUT/bench-memory.json" --quiet

"$PYTHON" - "$OUT" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
report = {"environment": load("environment.json"),
          "stages": [json.loads(l) for l in (out / "stages.jsonl").read_text().splitlines() if l.strip()],
          "gpu_measurements": [json.loads(l) for l in (out / "gpu-measurements.jsonl").read_text().splitlines()
                               if l.strip()],
          "bench_speed": load("bench-speed.json"), "bench_memory": load("bench-memory.json"), "tests": []}
try:
    for case in ET.parse(out / "gpu-tests.xml").getroot().iter("testcase"):
        outcome, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                detail = (el.get("message") or "")[:2000]
        report["tests"].append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                                "seconds": float(case.get("time") or 0), "detail": detail})
except (OSError, ET.ParseError) as e:
    report["tests_error"] = f"no test report: {e}"
(out / "device-check.json").write_text(json.dumps(report, indent=1, sort_keys=True))
counts = {}
for t in report["tests"]:
    counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
print("device-check:", json.dumps([(s["stage"], s["rc"], s["seconds"]) for s in report["stages"]]), counts)
print(f"written: {out / 'device-check.json'}")
EOF
