#!/usr/bin/env bash
# One GPU lease for the ECG ensemble (issue 9) and the CUDA timings (issue 13), as one command.
#
# Here, once:  bash bench/device/pack.sh         (wheels -> .whl/, Chapman records -> .device-data/)
# There:       run(command="bash bench/device/ecg_session.sh", carry=[".whl", ".device-data"], timeout_s=600)
# Smoke test on a CPU (2 folds, 1 epoch, 1 seed, a scratch store that borrows the feature cache):
#              SMOKE=1 PYTHON=.venv/bin/python bash bench/device/ecg_session.sh
#
# Steps, each bounded so that the results come back inside one 10-minute command:
#   1. install the wheels the device image lacks; unpack the records to ../shared/data/ecg
#   2. prepare every record once (scalograms on CUDA), so the parallel trainings share the cache
#   3. train every (view, seed) of CONFIG as its own process, all at once (bench/device/split_ensemble.py)
#   4. the full config: out-of-fold selection from the cached members, publish, internal test once
#   5. CUDA timings: scalogram rows and the paper-scale projection
# Everything lands in $OUT/results.tar (logs, metrics, the model folder).
# Budget inside the 600-s command limit: install + unpack ~30 s, records ~30 s, parts <= 330 s (PART_LIMIT),
# full run <= 120 s (FULL_LIMIT); the timings (<= 150 s) run only if under 400 s have passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PY=${PYTHON:-python3}  # the device image's python; PYTHON=.venv/bin/python for the smoke test here
OUT=${OUT:-/tmp/device-out}
R=$OUT/r
mkdir -p "$R"
exec > >(tee -a "$R/session.log") 2>&1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
finish() { stamp "packing results"; tar cf "$OUT/results.tar" -C "$OUT" r && rm -rf "$R"; }
trap finish EXIT

if [ -d .whl ] && ! "$PY" -c "import pydantic, wfdb, pywt, bottleneck, soundfile" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$REPO PYTHONUNBUFFERED=1
if [ ! -d ../shared/data/ecg/chapman ]; then
  mkdir -p ../shared/data/ecg && tar xJf .device-data/chapman.tar.xz -C ../shared/data/ecg || exit 1
fi
CONFIG=${CONFIG:-configs/ecg/ecg-gpu.yaml}
PARTS=$(mktemp -d)
SHRINK=()
if [ -n "${SMOKE:-}" ]; then
  SHRINK=(--epochs 1 --folds 2 --seeds 1)
  export PIPELINE_STORE=$(mktemp -d) PIPELINE_WORK=$(mktemp -d)
  ln -s "$REPO/artifacts/features" "$PIPELINE_STORE/features"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || stamp "no nvidia-smi: CPU run"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
"$PY" bench/device/split_ensemble.py "$CONFIG" "$PARTS" "${SHRINK[@]}" || exit 1

stamp "preparing records"
"$PY" - "$PARTS/full.yaml" <<'PY' || exit 1
import sys
from pipeline.config import EcgConfig, load_config
from pipeline.ecg.train import holdout_names, load_dataset, training_sources
from pipeline.store import Store
cfg = load_config(sys.argv[1], EcgConfig)
data = load_dataset(cfg, training_sources(cfg), Store.open(), progress=False, exclude=holdout_names(cfg))
print(f"{len(data.records)} records prepared, {len(data.skipped)} skipped")
PY

stamp "training the parts"
pids=()
for part in "$PARTS"/part-*.yaml; do
  name=$(basename "$part" .yaml)
  timeout "${PART_LIMIT:-330}" "$PY" -m pipeline.cli train ecg --config "$part" > "$R/$name.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"  # not a bare wait: that also waits for the tee above, which never ends
grep -h "^member " "$R"/part-*.log | sort | tail -n 60

stamp "selecting and scoring the full ensemble"
TEST=(--test)
[ -n "${SMOKE:-}" ] && TEST=()  # a smoke model does not look at the internal test split
timeout "${FULL_LIMIT:-120}" "$PY" -m pipeline.cli train ecg --config "$PARTS/full.yaml" "${TEST[@]}" --bundle "$R/bundle"
cp "$PARTS/full.yaml" "$R/config-run.yaml"

if [ -z "${SMOKE:-}" ] && [ $(( $(date +%s) - t0 )) -lt 400 ]; then
  stamp "CUDA timings"
  timeout 60 "$PY" bench/scalogram.py --json > "$R/scalogram.json" 2> "$R/scalogram.err"
  timeout 90 "$PY" bench/paper_scale.py --device cuda --records 1024 --epochs 1 --json > "$R/paper_scale.json" 2> "$R/paper_scale.err"
fi
stamp "done"
