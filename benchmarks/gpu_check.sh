#!/usr/bin/env bash
# The course's GPU check: every GPU figure in one run of at most 8 minutes, no network.
#
#   bash benchmarks/gpu_check.sh                  on one H100 or H200: the real run
#   bash benchmarks/gpu_check.sh --dry-run [--out DIR]   the same steps, tiny, on a CPU
#
# NOT YET RUN ON A GPU: no GPU was lent to the session that wrote it (issue 29); only
# --dry-run has run (on a 2-core CPU, tests/test_gpu_check.py). The first lent GPU runs
# it once and commits benchmarks/results/gpu-<device>.txt.
#
# What it runs, each step under its own time cap (the caps add up to under 8 minutes):
#   1. benchmarks/train_throughput.py: images/s of the course CNN in float32,
#      mixed_bfloat16 and mixed_float16, each with and without XLA, and the fraction of
#      the GPU's data-sheet peak                                        (cap 80 s)
#   2. the photos: the shipped CIFAR-10 subsets (data/cifar10-source.tar.gz and
#      data/cifar10-target.tar.gz, checked by SHA-256 and unpacked by
#      helpers.acquire.photos.photo_tree) joined into one 10-class split tree: 25,000
#      train (4,000 a source class, 1,000 a target class) and 7,500 test photos, 32,500
#      in all. If ~/.keras/datasets already holds CIFAR-10 (cifar-10-batches-py), 06
#      uses all of it instead (DATASET=cifar10: 50,000 train, 10,000 test); nothing is
#      downloaded either way                                              (cap 40 s)
#   3. notebook 06 in `full` on that tree, the final model trained to a 60-second budget
#      (TIME_BUDGET_MIN=1), the step table cut to 4 epochs on 10,000 photos, XLA on if
#      step 1 measured it faster in mixed_bfloat16                       (cap 210 s)
#   4. notebook 07 in a reduced `full`: pretrain on the source tree for 45 s, no
#      worker rehearsal                                                  (cap 75 s)
#   5. notebook 08 in a reduced `full`: fine-tune 07's backbone on the target tree at
#      10 and 20 labels a class, one seed                                (cap 75 s)
# Knobs a notebook's parameters cell no longer has are skipped and listed (07 and 08
# are changing), so a renamed knob costs a line in the report, not the run.
#
# Everything goes to benchmarks/results/gpu-<device>.txt (--out DIR puts it elsewhere):
# sections "## machine", "## train_throughput", "## photos", "## 06_cnn",
# "## 07_pretrain", "## 08_finetune", "## summary". Work files (unpacked photos, the
# notebooks' data, executed notebooks) go to a temporary folder, COURSE_DATA_DIR points
# there, so the project's data/ is left as it was. Exit 0 when every step passed.
#
# --dry-run: the same steps on the CPU at tiny sizes (the smoke profile, a few steps,
# 100 photos a class and split), the report in a temporary folder unless --out says;
# 5.5 minutes on 2 cores shared with other jobs (load 3.4), less on idle ones.
#
# Needs: the project's Python environment with a CUDA build of TensorFlow (the script
# uses $PYTHON, else .venv/bin/python, else python3), nvidia-smi, GNU timeout.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --out=*) OUT="${1#--out=}" ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (use --dry-run, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
STARTED=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
export COURSE_DATA_DIR="$WORK/data"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$COURSE_DATA_DIR"
cd "$ROOT" || exit 2

if [ "$DRY" = 1 ]; then
    PROFILE=smoke
    DEVICE="cpu-dry-run"
    OUT="${OUT:-$WORK/report}"
    CAP_THROUGHPUT=240; CAP_PHOTOS=60; CAP_06=300; CAP_07=240; CAP_08=300
    THROUGHPUT_ARGS=(--size small --batch 16 --steps 2)
    LIMIT=100  # photos a class and split: 07's 5-step check needs 5 batches of 64
    export CUDA_VISIBLE_DEVICES=""
else
    PROFILE=full
    NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
    if [ -z "$NAME" ]; then
        echo "error: nvidia-smi finds no GPU; on a CPU run: bash $0 --dry-run" >&2
        exit 2
    fi
    DEVICE="$(echo "$NAME" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
    OUT="${OUT:-$ROOT/benchmarks/results}"
    CAP_THROUGHPUT=80; CAP_PHOTOS=40; CAP_06=210; CAP_07=75; CAP_08=75
    THROUGHPUT_ARGS=(--size large --batch 512 --steps 30)
    LIMIT=""
fi
mkdir -p "$OUT" || { echo "error: cannot make $OUT" >&2; exit 2; }
REPORT="$OUT/gpu-$DEVICE.txt"
PARTIAL="$WORK/report.txt"
SUMMARY=()
FAILED=0

say() { echo "$*" | tee -a "$PARTIAL"; }
section() { printf '\n## %s\n' "$1" | tee -a "$PARTIAL"; }
elapsed() { echo $(( $(date +%s) - STARTED )); }
step_done() {  # name, exit status, seconds
    local status="ok"
    if [ "$2" = 124 ] || [ "$2" = 137 ]; then status="stopped at its time cap"; FAILED=1
    elif [ "$2" != 0 ]; then status="failed (exit $2)"; FAILED=1; fi
    SUMMARY+=("$1: $status, $3 s")
    say "-> $1: $status, $3 s"
}
finish() {
    section summary
    for line in "${SUMMARY[@]}"; do say "$line"; done
    say "total: $(elapsed) s (the real run must stay under 480 s); all steps passed: $([ "$FAILED" = 0 ] && echo yes || echo no)"
    mv -f "$PARTIAL" "$REPORT.tmp" && mv -f "$REPORT.tmp" "$REPORT"
    echo "report: $REPORT"
    rm -rf "$WORK"
}
trap finish EXIT
trap 'SUMMARY+=("interrupted after $(elapsed) s"); FAILED=1; exit 130' INT TERM

# Run "$@" under a cap; its output goes to the terminal and to $WORK/<name>.log.
capped() {  # name, cap in seconds, command...
    local name="$1" cap="$2"; shift 2
    local t0=$(date +%s)
    timeout -k 10 "$cap" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    step_done "$name" "$rc" $(( $(date +%s) - t0 ))
    return "$rc"
}

# Only the knobs the notebook's parameters cell still assigns; the others are reported.
knobs() {  # notebook number, KEY=VALUE...
    "$PY" - "$@" <<'EOF'
import sys

import nbformat

from helpers.runner import notebook_parameters, resolve_notebooks

nb = nbformat.read(str(resolve_notebooks([sys.argv[1]])[0]), as_version=4)
known = set(notebook_parameters(nb))
for pair in sys.argv[2:]:
    key = pair.split("=", 1)[0]
    if key in known:
        print(f"-p\n{pair}")
    else:
        print(f"skipped knob {key}: notebook {sys.argv[1]} has none", file=sys.stderr)
EOF
}

# Run notebook NN in the profile with the given knobs; report its metrics and key lines.
notebook() {  # name, cap, NN, KEY=VALUE...
    local name="$1" cap="$2" nn="$3"; shift 3
    section "$name"
    local args
    mapfile -t args < <(knobs "$nn" "$@" 2>>"$PARTIAL")
    say "python -m helpers run $nn --profile $PROFILE ${args[*]}"
    capped "$name" "$cap" "$PY" -m helpers run "$nn" --profile "$PROFILE" "${args[@]}" \
        --out "$WORK/runs/$name"
    local rc=$?
    "$PY" - "$WORK/runs/$name" "$WORK/$name.log" >> "$PARTIAL" <<'EOF'
import re
import sys
from pathlib import Path

import nbformat

run, log = Path(sys.argv[1]), Path(sys.argv[2])
# The lines that carry the figures: precision, plan, speed, accuracy, seconds.
wanted = re.compile(r"precision|plan|images/s|img/s|accura|epochs in|budget|backbone|"
                    r"fine-tun|scratch|labels|source|error|assert", re.I)
progress = re.compile(r"^\s*(Epoch \d|\d+/\d+ )")  # Keras's per-epoch lines: too many
for path in sorted(run.glob("*.ipynb")):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") or "".join(output.get("traceback", []))
            for line in re.sub(r"\x1b\[[0-9;]*m", "", str(text)).splitlines():
                if wanted.search(line) and not progress.match(line) and len(line) < 300:
                    print("  " + line)
results = run / "results.md"
if results.is_file():  # its tables up to the parameters (the machine is described above)
    print(results.read_text(encoding="utf-8").split("## Parameters given")[0].rstrip())
else:
    print("(no results.md; the runner's log ends:)")
    if log.is_file():
        print("\n".join(log.read_text(errors="replace").splitlines()[-25:]))
EOF
    return "$rc"
}

# -- 0. the machine ------------------------------------------------------------------
: > "$PARTIAL"
say "# GPU check, $( [ "$DRY" = 1 ] && echo "DRY RUN on the CPU (smoke sizes; no GPU figures)" || echo "$NAME")"
section machine
say "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
if [ "$DRY" = 0 ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 | tee -a "$PARTIAL"
fi
# Installed versions only: importing TensorFlow here would cost a start-up that step 1
# pays again; its header says which version runs and which GPU TensorFlow sees.
"$PY" - <<'EOF' 2>&1 | tee -a "$PARTIAL"
from importlib.metadata import PackageNotFoundError, version

found = []
for name in ("tensorflow", "tensorflow-cpu", "keras"):
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        pass
print("installed:", ", ".join(found) or "no tensorflow", "(the GPU TensorFlow sees: step 1's 'gpu:')")
EOF

# -- 1. throughput -------------------------------------------------------------------
section train_throughput
capped train_throughput "$CAP_THROUGHPUT" "$PY" benchmarks/train_throughput.py \
    "${THROUGHPUT_ARGS[@]}" --note "gpu_check.sh $([ "$DRY" = 1 ] && echo --dry-run)" \
    --out "$WORK/throughput.txt"
if [ -f "$WORK/throughput.txt" ]; then cat "$WORK/throughput.txt" >> "$PARTIAL"
else tail -20 "$WORK/train_throughput.log" >> "$PARTIAL"; fi
# XLA for notebook 06 where it measured faster than plain mixed_bfloat16 on this device.
JIT=False
if [ "$DRY" = 0 ] && [ -f "$WORK/throughput.txt" ]; then
    JIT="$("$PY" - "$WORK/throughput.txt" <<'EOF'
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
ratio = dict(re.findall(r"ratio (.+?) / float32: ([0-9.]+)x", text))
print("True" if float(ratio.get("mixed_bfloat16 + XLA", 0)) > float(ratio.get("mixed_bfloat16", 1)) else "False")
EOF
)"
fi
say "notebook 06 gets JIT_COMPILE=$JIT"

# -- 2. the photos -------------------------------------------------------------------
section photos
KERAS_CIFAR="${KERAS_HOME:-$HOME/.keras}/datasets/cifar-10-batches-py"
capped photos "$CAP_PHOTOS" "$PY" - "$WORK/photos-union" "${LIMIT:-0}" <<'EOF'
import os
import shutil
import sys
from pathlib import Path

from helpers.acquire.photos import photo_tree

union, limit = Path(sys.argv[1]), int(sys.argv[2]) or None
for part in ("source", "target"):
    tree = photo_tree(part, limit_per_class=limit, full=False)  # the shipped archive, offline
    (union.parent / f"tree-{part}").symlink_to(tree)
    for split in ("train", "test"):
        for folder in sorted((tree / split).iterdir()):
            if folder.is_dir():
                target = union / split / folder.name
                target.mkdir(parents=True)
                for photo in folder.iterdir():
                    try:
                        os.link(photo, target / photo.name)  # no copy on one file system
                    except OSError:
                        shutil.copyfile(photo, target / photo.name)
for split in ("train", "test"):
    counts = {c.name: len(list(c.iterdir())) for c in sorted((union / split).iterdir())}
    print(f"union {split}: {sum(counts.values())} photos, {counts}")
EOF
tail -2 "$WORK/photos.log" | tee -a "$PARTIAL"
SOURCE_TREE="$(readlink -f "$WORK/tree-source" 2>/dev/null)"
TARGET_TREE="$(readlink -f "$WORK/tree-target" 2>/dev/null)"
if [ "$DRY" = 0 ] && [ -d "$KERAS_CIFAR" ]; then
    DATA_06=(DATASET=cifar10)
    say "06 uses CIFAR-10 from $KERAS_CIFAR: 50,000 train, 10,000 test"
else
    DATA_06=(DATASET=folder "DATA_DIR=$WORK/photos-union")
    say "06 uses the shipped photos' union (no CIFAR-10 in ~/.keras/datasets$([ "$DRY" = 1 ] && echo ', or a dry run'))"
fi

# -- 3-5. the notebooks --------------------------------------------------------------
if [ "$DRY" = 1 ]; then  # the real run's knobs at tiny values: the same branches, fewer steps
    notebook 06_cnn "$CAP_06" 06 "${DATA_06[@]}" TIME_BUDGET_MIN=0.1 STEP_EPOCHS=1 \
        STEP_LIMIT=128 EPOCHS=2 "JIT_COMPILE=$JIT"
    notebook 07_pretrain "$CAP_07" 07 DATASET=folder "DATA_DIR=$SOURCE_TREE" \
        REHEARSE_WORKERS=False
    notebook 08_finetune "$CAP_08" 08 DATASET=folder "DATA_DIR=$TARGET_TREE" FLIP=True \
        "LABELS_PER_CLASS=[5]" "SEEDS=[0]" HEAD_STEPS=8 FINETUNE_STEPS=8 SCRATCH_STEPS=16
else
    notebook 06_cnn "$CAP_06" 06 "${DATA_06[@]}" TIME_BUDGET_MIN=1.0 STEP_EPOCHS=4 \
        STEP_LIMIT=10000 "JIT_COMPILE=$JIT"
    notebook 07_pretrain "$CAP_07" 07 DATASET=folder "DATA_DIR=$SOURCE_TREE" \
        TIME_BUDGET_MIN=0.75 REHEARSE_WORKERS=False
    notebook 08_finetune "$CAP_08" 08 DATASET=folder "DATA_DIR=$TARGET_TREE" FLIP=True \
        "LABELS_PER_CLASS=[10, 20]" "SEEDS=[0]" HEAD_STEPS=150 FINETUNE_STEPS=200 \
        SCRATCH_STEPS=600
fi
[ "$FAILED" = 0 ]
