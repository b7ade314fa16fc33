#!/usr/bin/env bash
# One training segment on a lent GPU machine (the device tool's machine: one H100, 16 cores, no
# network), run from the repository root:
#     bash tools/gpu_segment.sh MINUTES [INIT_WEIGHTS]
# It continues the bundled weights with the `lite-gpu` preset (batches of 16, 14 data workers,
# cosine lr over MINUTES) and leaves model.pt, record.json, history.csv, checkpoint.pt and the log
# in $OUT (or ./runs/lite-gpu-out without one). Back on a CPU machine, evaluate and bundle with
#     python tools/bundle_weights.py RUN --previous spinnet_lite/weights/lite.json --operating-range --overwrite
# RESUME=RUN_FOLDER continues an unfinished run (its checkpoint.pt, e.g. one stopped by a time
# limit; a finished run has nothing left to run) instead, MINUTES then being the run's
# total budget; LIMIT_S caps the training command's seconds (default MINUTES * 60 + 150).
# PRESET names the training preset (default lite-gpu; lite-gpu2 for the ninth segment, lite-gpu3
# for the fifteenth).
# EXTRA adds train options (a dry run on a CPU: EXTRA="--device cpu --workers 2 --epoch-pairs 32").
# The machine has PyTorch but not h5netcdf: a wheel of it in .whl/ is installed first when there.
set -u -o pipefail
MINUTES=${1:?usage: tools/gpu_segment.sh MINUTES [INIT_WEIGHTS]}
INIT=${2:-spinnet_lite/weights/lite.pt}
OUT=${OUT:-runs/lite-gpu-out}
PRESET=${PRESET:-lite-gpu}
RUN=/tmp/lite-gpu-run
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
# 14 data workers hand batches through shared memory: make sure /dev/shm can hold them
if [ "$(id -u)" = 0 ]; then
  mount -o remount,size=32G /dev/shm 2>/dev/null || { mkdir -p /dev/shm && mount -t tmpfs -o size=32G tmpfs /dev/shm; } || true
fi
df -h /dev/shm | tail -1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
python3 -c "import torch, numpy, scipy, xarray, skimage, h5netcdf; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)" || exit 3
start=$(date +%s)
FROM=(--init-from "$INIT")
if [ -n "${RESUME:-}" ]; then
  mkdir -p "$RUN" && cp "$RESUME/checkpoint.pt" "$RUN/" && FROM=(--resume)
fi
timeout "${LIMIT_S:-$(( ${MINUTES%.*} * 60 + 150 ))}" python3 -m spinnet_lite train --preset "$PRESET" "${FROM[@]}" --out "$RUN" \
  --minutes "$MINUTES" --no-progress ${EXTRA:-} 2>&1 | tee "$OUT/train.log"
rc=$?
if [ $rc -ne 0 ] && [ -z "${RESUME:-}" ] && [ $(( $(date +%s) - start )) -lt 120 ]; then
  # a start-up failure (e.g. shared memory): once more with fewer workers and a shorter budget
  echo "train failed early (rc $rc): again with 6 workers" | tee -a "$OUT/train.log"
  timeout $(( ${MINUTES%.*} * 60 + 30 )) python3 -m spinnet_lite train --preset "$PRESET" --init-from "$INIT" --out "$RUN" \
    --minutes "$(python3 -c "print(max(float('$MINUTES') - 2.5, 1))")" --overwrite --no-progress ${EXTRA:-} --workers 6 2>&1 \
    | tee -a "$OUT/train.log"
  rc=$?
fi
for f in model.pt record.json history.csv checkpoint.pt; do
  [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"
done
ls -la "$OUT"
exit $rc
