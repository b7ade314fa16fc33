# spinnet_lite: one entry point for set-up, the main job, the tests and the benchmarks.
#   make run     set up .venv and execute every notebook headless into output/
#   make test    set up .venv and run the test suite (unit tests + every notebook in quick mode)
# PyTorch: TORCH_SPEC picks the build. The default pins torch==2.13.0; on Linux PyPI serves a CUDA
# build for it, so for a CPU-only build use
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
export TQDM_DISABLE ?= 1

.PHONY: setup run test test-fast benchmark evaluate train-lite finetune-lite continue-lite subpixel-lite gpu-lite cpu-lite cpu-lite2 cpu-lite3 gpu-lite2 gpu-lite3 cpu-lite4 cpu-lite5 cpu-lite6 cpu-lite7 gpu-lite4 cpu-lite8 rim-lite rim-lite2 clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
	$(PY) -m pip install --quiet -e ".[dev,notebooks]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	touch $@

run: setup
	$(PY) tools/run_notebooks.py --output output

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not notebook and not browser"

benchmark: setup
	$(PY) benchmarks/simulate_speed.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/speed.py --device cuda

evaluate: setup
	$(PY) benchmarks/evaluate.py --method xst,spinnet --operating-range

# Reproduce the bundled weights (about 2 hours on a 2-core CPU), then evaluate and bundle them.
train-lite: setup
	$(PY) -m spinnet_lite train --preset lite --out runs/lite --minutes 91 --lr 1e-3 --threads 2 --workers 1 --patch 256 --batch-size 2 --epoch-pairs 64
	$(PY) tools/bundle_weights.py runs/lite --overwrite

# Second segment of the bundled weights: fine-tune the whole network on the wide distribution
# of spinnet_lite.data.PairSpec (95 minutes on 2 CPU cores), then evaluate and bundle.
finetune-lite: setup
	$(PY) -m spinnet_lite train --preset lite-finetune --init-from runs/lite/model.pt --out runs/lite-ft --minutes 95 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-ft --previous runs/lite/record.json --operating-range --overwrite

# Third segment: continue from the second segment's weights with a lower loss floor, more of the seed's own
# phantoms and shifts to 16 px (100 minutes on 2 CPU cores), then evaluate and bundle.
continue-lite: setup
	$(PY) -m spinnet_lite train --preset lite-continue --init-from runs/lite-ft/model.pt --out runs/lite-cont --minutes 100 --seed 0 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cont --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# (--seed 0: the bundled segments 3 and 4 ran before the CLI honoured a preset's own seed, with 0.)
# Fourth segment: from the third segment's weights, a quarter of the pairs with sub-pixel
# fields and a loss floor of 0.05 px^2 (80 minutes on 2 CPU cores), then evaluate and bundle.
subpixel-lite: setup
	$(PY) -m spinnet_lite train --preset lite-subpixel --init-from runs/lite-cont/model.pt --out runs/lite-subpixel --minutes 80 --seed 0 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-subpixel --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Fifth segment: from the fourth's weights on one GPU (7.5 minutes on an
# H100 with 14 data workers; on a CPU add --device cpu --workers 1 and expect days), then bundle.
gpu-lite: setup
	$(PY) -m spinnet_lite train --preset lite-gpu --init-from runs/lite-subpixel/model.pt --out runs/lite-gpu --minutes 7.5 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-gpu --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Sixth segment: from the fifth's weights on this 2-core CPU (100 minutes,
# one torch thread beside one data-loader worker), saving a moving average of the weights; then bundle.
cpu-lite: setup
	$(PY) -m spinnet_lite train --preset lite-cpu --init-from runs/lite-gpu/model.pt --out runs/lite-cpu --minutes 100 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cpu --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Seventh segment: the sixth's preset again from the sixth's weights, fresh
# pairs (seed 5) and a lower peak lr (105 minutes on this 2-core CPU), then bundle.
cpu-lite2: setup
	$(PY) -m spinnet_lite train --preset lite-cpu --init-from runs/lite-cpu/model.pt --out runs/lite-cpu7 --minutes 105 --seed 5 --lr 4e-5 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cpu7 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Eighth segment: the same preset once more from the seventh's weights,
# fresh pairs (seed 6), 108 minutes on this 2-core CPU, then bundle.
cpu-lite3: setup
	$(PY) -m spinnet_lite train --preset lite-cpu --init-from runs/lite-cpu7/model.pt --out runs/lite-cpu8 --minutes 108 --seed 6 --lr 4e-5 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cpu8 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Ninth segment: on one GPU from the eighth's weights (lite-gpu2: lite-gpu's batches at half its
# peak lr, a moving average, diffuser grains down to 1 px; 7.5 minutes on an H100), then bundle.
gpu-lite2: setup
	$(PY) -m spinnet_lite train --preset lite-gpu2 --init-from runs/lite-cpu8/model.pt --out runs/lite-gpu9 --minutes 7.5 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-gpu9 --previous spinnet_lite/weights/lite.json --overwrite

# Tenth segment (the bundled weights): the ninth's preset from its weights, fresh pairs (seed 8),
# peak lr 3e-5, 3 minutes on an H100, then bundle with the operating-range sweeps.
gpu-lite3: setup
	$(PY) -m spinnet_lite train --preset lite-gpu2 --init-from runs/lite-gpu9/model.pt --out runs/lite-gpu10 --minutes 3 --lr 3e-5 --seed 8 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-gpu10 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Eleventh segment, on this CPU: the tenth's weights, lite-cpu2 (lite-cpu's batches with diffuser
# grains down to 1 px, peak lr 3e-5, seed 9) for 95 minutes, then bundle (as a step of the chain).
cpu-lite4: setup
	$(PY) -m spinnet_lite train --preset lite-cpu2 --init-from runs/lite-gpu10/model.pt --out runs/lite-cpu11 --minutes 95 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cpu11 --previous spinnet_lite/weights/lite.json --overwrite

# Twelfth segment: the eleventh's weights in the network whose level-2
# prop layer warps the reference image at full resolution (model config image_warp_levels,
# issue 8), lite-cpu2 with fresh pairs (seed 10) for 45 minutes on this CPU, then bundle with
# the operating-range sweeps.
cpu-lite5: setup
	$(PY) -m spinnet_lite train --preset lite-cpu2 --init-from runs/lite-cpu11/model.pt --out runs/exp-img2os --minutes 45 --seed 10 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/exp-img2os --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Thirteenth segment (the bundled weights): the twelfth's bundled weights (lite.pt as of commit
# a0f0acf), lite-cpu2 with fresh pairs (seed 11) for 95 minutes on this CPU, then bundle with the
# operating-range sweeps.
cpu-lite6: setup
	$(PY) -m spinnet_lite train --preset lite-cpu2 --init-from spinnet_lite/weights/lite.pt --out runs/lite-cpu13 --minutes 95 --seed 11 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cpu13 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

cpu-lite7: setup
	$(PY) -m spinnet_lite train --preset lite-cpu3 --init-from spinnet_lite/weights/lite.pt --out runs/lite-cpu14 --minutes 120 --seed 12 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-cpu14 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Fifteenth segment (the bundled weights), on a lent GPU (one H100, 14 data workers; there:
# `PRESET=lite-gpu3 bash tools/gpu_segment.sh 7.5`): the fourteenth's bundled weights, lite-gpu3
# (lite-gpu2's batches of 16 in the network whose level 2 runs twice, peak lr 6e-5, seed 13) for
# 7.5 minutes, then bundle with the operating-range sweeps.
gpu-lite4: setup
	$(PY) -m spinnet_lite train --preset lite-gpu3 --init-from spinnet_lite/weights/lite.pt --out runs/lite-gpu15 --minutes 7.5 --no-progress
	$(PY) tools/bundle_weights.py runs/lite-gpu15 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Sixteenth segment (session 16 on): the fifteenth's bundled weights, lite-cpu3 with the loss
# floor 0.01 px^2 and fresh pairs (seed 14) for 90 minutes on this CPU, then bundle.
cpu-lite8: setup
	$(PY) -m spinnet_lite train --preset lite-cpu3 --init-from spinnet_lite/weights/lite.pt --out runs/exp-eps01 --minutes 90 --seed 14 --loss-eps 0.01 --threads 1 --no-progress
	$(PY) tools/bundle_weights.py runs/exp-eps01 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

# Seventeenth segment (sessions 21-22), on the corrected simulator: the
# sixteenth's weights, lite-rim-cpu (seed 21) for 70 minutes on this CPU, then lite-rim-gpu
# (seed 22) for 6.5 minutes on a GPU (on a lent H100 there: `PRESET=lite-rim-gpu EXTRA="--seed 22"
# bash tools/gpu_segment.sh 6.5 runs/psf-cpu21/model.pt`), then bundle with both runs' records.
rim-lite: setup
	$(PY) -m spinnet_lite train --preset lite-rim-cpu --seed 21 --init-from spinnet_lite/weights/lite.pt --out runs/psf-cpu21 --minutes 70 --threads 2 --no-progress
	$(PY) -m spinnet_lite train --preset lite-rim-gpu --seed 22 --init-from runs/psf-cpu21/model.pt --out runs/psf-gpu22 --minutes 6.5 --no-progress
	$(PY) tools/bundle_weights.py runs/psf-gpu22 --previous spinnet_lite/weights/lite.json --previous runs/psf-cpu21/record.json --operating-range --overwrite

# Eighteenth segment (the bundled weights; session 23): the seventeenth's weights, lite-rim-gpu
# (seed 24) for 8 minutes on a GPU (on a lent H200 there: `PRESET=lite-rim-gpu LIMIT_S=560
# EXTRA="--seed 24" bash tools/gpu_segment.sh 8`), then bundle.
rim-lite2: setup
	$(PY) -m spinnet_lite train --preset lite-rim-gpu --seed 24 --init-from spinnet_lite/weights/lite.pt --out runs/rim-gpu23 --minutes 8 --no-progress
	$(PY) tools/bundle_weights.py runs/rim-gpu23 --previous spinnet_lite/weights/lite.json --operating-range --overwrite

clean:
	rm -rf output .pytest_cache
