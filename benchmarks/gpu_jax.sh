#!/usr/bin/env bash
# The GPU figures through Keras' JAX backend (no TensorFlow needed): the DLT solvers, then the
# paper and resnet50 models in float32 and mixed_bfloat16 at batch 16, then the largest batch
# that trains. Tables go to stdout and to OUTPUT_DIR (default outputs/gpu).
#
#   KERAS_BACKEND is set here; needs jax with CUDA, keras, numpy, h5py.
#   bash benchmarks/gpu_jax.sh [OUTPUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-outputs/gpu}"
mkdir -p "$out"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.95
# Compiled programs are reused by a rerun on the same machine (ResNet-152 takes a minute to compile).
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/jax_cache}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" | tee -a "$out/gpu.txt"
status=0
SECONDS=0
python3 benchmarks/bench_dlt.py --repeats 30 | tee "$out/bench_dlt.txt" || status=1
python3 benchmarks/bench_model.py --configs paper resnet50 --policies float32 mixed_bfloat16 --batches 16 \
    --repeats 10 --find-max-batch --max-batch-probes 1 | tee "$out/bench_model.txt" || status=1
echo "all done in $SECONDS s" | tee -a "$out/gpu.txt"
exit $status
