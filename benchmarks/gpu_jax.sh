#!/usr/bin/env bash
# The GPU memory and predict figures through Keras' JAX backend (no TensorFlow needed), in about 7 minutes
# on an H200: for paper and resnet50, float32 and mixed_bfloat16, the peak memory of a training step at
# batches 16, 32 and 64 and the predict (forward) throughput in 4-view frames/s at batch 1 and 64; then
# the measured peaks as devices.PEAK_MEMORY_GIB entries and the per-card table they give (TRAINING.md,
# "Memory"). Tables go to stdout and to OUTPUT_DIR (default outputs/gpu).
#
#   KERAS_BACKEND is set here; needs jax with CUDA, keras, numpy, h5py.
#   bash benchmarks/gpu_jax.sh [OUTPUT_DIR] [--quick]
#   --quick: the tiny model at batches 1 and 2, to try the script on a CPU (jax without CUDA) in minutes.
#   TIME_BUDGET=seconds (default 390) bounds the sweep: rows not measured by then are listed as such.
# The DLT table (README, "GPU") is not rerun here: KERAS_BACKEND=jax python3 benchmarks/bench_dlt.py --repeats 30
set -uo pipefail
cd "$(dirname "$0")/.."
out="outputs/gpu"
quick=0
for argument in "$@"; do
    if [ "$argument" = "--quick" ]; then quick=1; else out="$argument"; fi
done
mkdir -p "$out"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.95
# Compiled programs are reused by a rerun on the same machine (ResNet-152 takes about a minute to compile),
# so a rerun after a partial run measures what is left.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/jax_cache}"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
else
    echo "no nvidia-smi: no NVIDIA GPU here" | tee "$out/gpu.txt"
fi
python3 -c "import jax, keras, sys; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__); \
assert 'tensorflow' not in sys.modules, 'the JAX path imported tensorflow'" | tee -a "$out/gpu.txt"
if [ "$quick" = 1 ]; then
    sweep=(--configs tiny --sweep-batches 1 2 --predict-batches 1 2 --repeats 1 --time-budget 600)
else
    sweep=(--configs paper resnet50 --sweep-batches 16 32 64 --predict-batches 1 64 --repeats 3 --time-budget "${TIME_BUDGET:-390}")
fi
SECONDS=0
python3 benchmarks/bench_model.py --memory-sweep --policies float32 mixed_bfloat16 "${sweep[@]}" \
    | tee "$out/memory_and_predict.md"
status=${PIPESTATUS[0]}
echo "all done in $SECONDS s" | tee -a "$out/gpu.txt"
exit "$status"
