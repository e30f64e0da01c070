#!/usr/bin/env bash
# Here, before a GPU lease: what bench/device/ecg_session.sh needs and the device image lacks.
# Wheels (cp312, manylinux) -> .whl/, the 924 Chapman records -> .device-data/chapman.tar.xz; both are
# git-ignored through .git/info/exclude and travel as `carry`. Prints the size that will travel (limit 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.device-data/' .git/info/exclude 2>/dev/null || echo '/.device-data/' >> .git/info/exclude
mkdir -p .whl .device-data
# the versions this checkout's .venv runs, so the device computes with the same libraries
WHEELS=(annotated-types pydantic pydantic_core typing-inspection wfdb PyWavelets Bottleneck soundfile cffi pycparser
        librosa audioread soxr pooch platformdirs decorator mir_eval)
PINS=()
for name in "${WHEELS[@]}"; do PINS+=("$name==$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${PINS[@]}"
if [ ! -s .device-data/chapman.tar.xz ]; then
  tar cf - -C ../shared/data/ecg chapman chapman-extra | xz -9 -T0 > .device-data/chapman.tar.xz.tmp
  mv .device-data/chapman.tar.xz.tmp .device-data/chapman.tar.xz
fi
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carried=$(du -cb .whl .device-data | tail -1 | cut -f1)
echo "travels: tracked $((tracked / 1048576)) MiB + carried $((carried / 1048576)) MiB = $(((tracked + carried) / 1048576)) MiB (limit 64)"
