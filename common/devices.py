"""What trains, and on what: the device report, the precision, XLA, GPU memory and its errors.

* ``configure(args)``: sets the Keras dtype policy of ``--precision`` (before any model is built).
* ``start_report(args, mode, config_name, model)``: the text printed when train, test or predict
  starts: the devices (GPU names, compute capability, memory), the precision, whether XLA
  compiles the step, the batch; on a machine without a GPU, for ``paper`` and ``resnet50``, a
  warning that names the GPU install and the expected time per step on the CPU.
* ``largest_batch`` / ``memory_table``: the memory a training step of ``paper`` or ``resnet50``
  needs, from the figures measured on a GPU (``PEAK_MEMORY_GIB``), per card size.
* ``import_tensorflow_quietly()``: TensorFlow's start-up lines printed not at all (twice otherwise),
  nor CUDA's cuInit error on a machine without an NVIDIA driver.
* ``explain_out_of_memory(args, config_name)``: the message that replaces TensorFlow's
  out-of-memory trace: the batch, the precision, the GPU and its memory, the three flags that help.

Pure functions on plain values, except ``list_gpus`` (asks TensorFlow) and ``configure`` (sets
Keras' global dtype policy). Memory in GiB (2**30 bytes) unless a name says bytes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import re
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Keras loads only where a function needs it: options.py reads the lists here
    import keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_CHOICES = ("auto", "on", "off")
TRAINING_DOC = "docs/TRAINING.md"
GPU_INSTALL = "pip install -r requirements-gpu.txt"

# Seconds per 4-view sample on a CPU (README, "Model" benchmark: random weights, TensorFlow 2.21,
# measured on a 2-core machine; more cores are faster): forward+backward for train, forward otherwise.
CPU_SECONDS_PER_SAMPLE = {"paper": {"train": 1.840, "forward": 0.409},
                          "resnet50": {"train": 0.776, "forward": 0.172}}

# Peak GPU memory (GiB) of one training step (forward, backward, Adam) by batch size, measured under
# Keras' JAX backend (XLA) on an NVIDIA H200 on 2026-12-04 (benchmarks/gpu_jax.sh, TRAINING.md
# "Memory"); TensorFlow could not be installed there. mixed_float16 keeps 2-byte activations like
# mixed_bfloat16 and is taken to need the same.
PEAK_MEMORY_GIB = {("paper", "float32"): {16: 15.82, 32: 30.31, 64: 59.66},
                   ("paper", "mixed_bfloat16"): {16: 8.31, 32: 15.33},
                   ("resnet50", "float32"): {16: 8.24, 32: 15.61, 64: 30.71},
                   ("resnet50", "mixed_bfloat16"): {16: 4.31, 32: 7.77, 64: 15.09}}
PARAMETERS = {"paper": 70_903_438, "resnet50": 36_120_206}
# Bytes per parameter held for the whole run: float32 weights, gradients and Adam's two moments
# (variables stay float32 under a mixed policy).
STATE_BYTES_PER_PARAMETER = 16
# The share of a card a training step can count on: the CUDA context, cuDNN's workspaces and the
# allocator's fragmentation take the rest (an assumption, not measured).
USABLE_SHARE = 0.9
CARD_SIZES_GB = (11, 16, 24, 40, 80)
EFFECTIVE_BATCH = 16


# --------------------------------------------------------------------------- devices

@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """One GPU as TensorFlow sees it; memory_bytes: what TensorFlow may allocate on it (None: unknown)."""
    name: str
    compute_capability: tuple[int, int] | None = None
    memory_bytes: int | None = None

    def describe(self) -> str:
        """e.g. "NVIDIA A100-SXM4-40GB (compute capability 8.0, 38.4 GiB usable)"."""
        details = [f"compute capability {self.compute_capability[0]}.{self.compute_capability[1]}"] \
            if self.compute_capability else []
        details += [f"{self.memory_bytes / 2**30:.1f} GiB usable"] if self.memory_bytes else []
        return f"{self.name} ({', '.join(details)})" if details else self.name


def list_gpus() -> list[GpuInfo]:
    """The GPUs TensorFlow uses (an empty list: it trains on the CPU).

    The memory is the limit of TensorFlow's allocator, which only the device list of
    ``device_lib`` reports (no public API does); it is left unknown if that fails.
    """
    import tensorflow as tf
    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return []
    try:
        from tensorflow.python.client import device_lib
        limits = [device.memory_limit for device in device_lib.list_local_devices() if device.device_type == "GPU"]
    except Exception:  # noqa: BLE001 -- the report must never stop a run
        limits = []
    gpus = []
    for index, device in enumerate(physical):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(GpuInfo(details.get("device_name", device.name), details.get("compute_capability"),
                            limits[index] if len(limits) == len(physical) else None))
    return gpus


def recommended_precision(compute_capability: tuple[int, int] | None) -> str:
    """bfloat16 from Ampere (8.0) on, float16 on Volta and Turing (7.x, tensor cores), else float32."""
    if compute_capability is None or compute_capability < (7, 0):
        return "float32"
    return "mixed_bfloat16" if compute_capability >= (8, 0) else "mixed_float16"


# TensorFlow's native start-up notes (oneDNN, the CUDA stubs) are written by absl before its logging is
# set up, so TF_CPP_MIN_LOG_LEVEL does not hold them back, and two of its libraries write them each.
STARTUP_NOTE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called|I\d{4} )")
LOG_LINE = re.compile(r"^(WARNING: |[IWEF]\d{4} )")  # a new log entry; other lines continue the one before
CUINIT_FAILURE = re.compile(r"^E\d{4} .*failed call to cuInit")
NVIDIA_DRIVER = "/proc/driver/nvidia"  # present where an NVIDIA kernel driver is loaded


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up notes (info lines) left out, and look for GPUs once; its
    warnings and errors pass. TF_CPP_MIN_LOG_LEVEL=0 keeps the notes. Does nothing once TensorFlow
    is loaded."""
    if "tensorflow" in sys.modules:
        return
    with _stderr_filtered(lambda line: STARTUP_NOTE.match(line) is not None):
        tf = importlib.import_module("tensorflow")
    # The first look for GPUs runs cuInit. Without an NVIDIA driver its "failed call to cuInit" error
    # only says there is no GPU, which the start report says plainly; with a driver it may be news.
    no_driver = not os.path.exists(NVIDIA_DRIVER)
    with _stderr_filtered(lambda line: no_driver and CUINIT_FAILURE.match(line) is not None):
        tf.config.list_physical_devices("GPU")


def without_entries(text: str, drops) -> str:
    """``text`` without the log entries whose first line ``drops(line)`` is true (nor their continuations)."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if LOG_LINE.match(line):
            dropping = bool(drops(line))
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _stderr_filtered(drops):
    """Native code writes to file descriptor 2 directly: catch it, and pass on what ``drops`` keeps."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(without_entries(captured.read().decode(errors="replace"), drops))


# --------------------------------------------------------------------------- precision and XLA

def configure(args) -> None:
    """Set the Keras dtype policy of ``args.precision``; call it before any model is built.

    The convolutions then compute in the policy's 16-bit type, with float32 variables; the
    camera geometry, soft-argmax, DLT and losses stay float32 (``model.GEOMETRY_DTYPE``).
    mixed_float16 also needs loss scaling, which Keras' ``compile`` adds (LossScaleOptimizer).
    """
    if args.precision not in PRECISIONS:
        raise ValueError(f"--precision {args.precision}: choose one of {', '.join(PRECISIONS)}.")
    import keras
    keras.mixed_precision.set_dtype_policy(args.precision)


def jit_compile_argument(choice: str):
    """``--jit-compile`` as ``compile(jit_compile=...)`` takes it: "auto", True or False."""
    if choice not in JIT_CHOICES:
        raise ValueError(f"--jit-compile {choice}: choose one of {', '.join(JIT_CHOICES)}.")
    return {"auto": "auto", "on": True, "off": False}[choice]


def apply_jit_compile(model: keras.Model, choice: str) -> None:
    """``--jit-compile`` for a model that is not compiled (test, predict): its predict step."""
    value = jit_compile_argument(choice)
    if value != "auto":  # "auto" is the model's default: XLA on a GPU without a strategy
        model.jit_compile = value


# --------------------------------------------------------------------------- the report

def start_report(args, mode: str, config_name: str, model: keras.Model, gpus: list[GpuInfo] | None = None) -> str:
    """The lines printed when ``mode`` ("train", "test", "predict") starts, with ``model`` built
    (and compiled for training): devices, precision, XLA, batch, and the warnings that apply."""
    gpus = list_gpus() if gpus is None else gpus
    accumulate = getattr(args, "accumulate_steps", 1) if mode == "train" else 1
    lines = [describe_devices(gpus),
             f"Precision: {describe_precision(args.precision, model)}; XLA: "
             f"{'on' if model.jit_compile else 'off'} (--jit-compile {args.jit_compile})",
             describe_batch(args.batch_size, accumulate, mode)]
    advice = precision_advice(gpus, args.precision)
    warning = cpu_warning(config_name, mode, args.batch_size) if not gpus else None
    return "\n".join(lines + [text for text in (advice, warning) if text])


def describe_devices(gpus: list[GpuInfo]) -> str:
    if not gpus:
        return "Devices: the CPU only (TensorFlow sees no GPU)."
    return "Devices: " + "; ".join(f"GPU {index}: {gpu.describe()}" for index, gpu in enumerate(gpus))


def describe_precision(precision: str, model: keras.Model) -> str:
    if precision == "float32":
        return "float32"
    import keras
    scaled = isinstance(getattr(model, "optimizer", None), keras.optimizers.LossScaleOptimizer)
    return (f"{precision} (convolutions in {precision.split('_')[1]}, variables float32; camera geometry, "
            f"soft-argmax, DLT and losses float32{'; dynamic loss scaling' if scaled else ''})")


def describe_batch(batch_size: int, accumulate_steps: int, mode: str) -> str:
    if mode != "train":
        return f"Batch: {batch_size} samples of all views per step."
    if accumulate_steps == 1:
        return f"Batch: {batch_size} samples of all views per training step."
    return (f"Batch: {batch_size} x {accumulate_steps} accumulated = effective batch "
            f"{batch_size * accumulate_steps} per training step (BatchNorm normalises each batch of "
            f"{batch_size} on its own).")


def precision_advice(gpus: list[GpuInfo], precision: str) -> str | None:
    """A note when the first GPU's generation has a better precision than ``precision`` (None if not)."""
    if not gpus or gpus[0].compute_capability is None:
        return None
    capability = gpus[0].compute_capability
    best = recommended_precision(capability)
    if precision == "float32" and best != "float32":
        return (f"Note: this GPU supports --precision {best}: about half the activation memory and faster "
                f"steps (see {TRAINING_DOC}, 'Precision').")
    needs = {"mixed_bfloat16": (8, 0), "mixed_float16": (7, 0)}.get(precision)
    if needs and capability < needs:  # emulated or without tensor cores
        return (f"Note: --precision {precision} is slow on compute capability {capability[0]}.{capability[1]}; "
                f"use --precision {best} (see {TRAINING_DOC}, 'Precision').")
    return None


def cpu_warning(config_name: str, mode: str, batch_size: int) -> str | None:
    """For ``paper`` and ``resnet50`` on a machine without a GPU: how slow, and how to get the GPU."""
    if config_name not in CPU_SECONDS_PER_SAMPLE:
        return None
    kind = "train" if mode == "train" else "forward"
    per_sample = CPU_SECONDS_PER_SAMPLE[config_name][kind]
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    visibility = (f"CUDA_VISIBLE_DEVICES is set to '{hidden}' here, which hides the GPUs not listed"
                  if hidden is not None else "CUDA_VISIBLE_DEVICES, if set, must list it")
    return (f"WARNING: no GPU is visible to TensorFlow, so {config_name} runs on the CPU: about "
            f"{per_sample * batch_size:.0f} s per step at batch {batch_size} ({per_sample} s per sample "
            f"{'forward+backward' if kind == 'train' else 'forward'}, measured on a 2-core machine). To use an "
            f"NVIDIA GPU: {GPU_INSTALL} (TensorFlow with its CUDA libraries); `nvidia-smi` must list the GPU; "
            f"{visibility}. See {TRAINING_DOC}.")


# --------------------------------------------------------------------------- memory

def memory_model(config_name: str, precision: str, peaks: dict | None = None) -> tuple[float, float]:
    """(fixed GiB, GiB per sample) of a training step: a line through the measured peaks.

    peaks: {(config, precision): {batch: GiB}}, default ``PEAK_MEMORY_GIB``. With one measured
    batch the fixed part is the float32 training state (weights, gradients, Adam's moments); with
    several, the least-squares line through them.
    """
    peaks = PEAK_MEMORY_GIB if peaks is None else peaks
    measured = peaks[(config_name, "mixed_bfloat16" if precision == "mixed_float16" else precision)]
    batches = sorted(measured)
    if len(batches) == 1:
        fixed = PARAMETERS[config_name] * STATE_BYTES_PER_PARAMETER / 2**30
        return fixed, (measured[batches[0]] - fixed) / batches[0]
    mean_b = sum(batches) / len(batches)
    mean_m = sum(measured.values()) / len(batches)
    slope = (sum((b - mean_b) * (measured[b] - mean_m) for b in batches)
             / sum((b - mean_b) ** 2 for b in batches))
    return mean_m - slope * mean_b, slope


def largest_batch(config_name: str, precision: str, memory_gib: float, peaks: dict | None = None) -> int:
    """The largest batch whose training step fits ``memory_gib`` of GPU memory (0: none fits)."""
    fixed, per_sample = memory_model(config_name, precision, peaks)
    return max(0, math.floor((USABLE_SHARE * memory_gib - fixed) / per_sample))


def batch_and_accumulation(largest: int, effective: int = EFFECTIVE_BATCH) -> tuple[int, int] | None:
    """(--batch-size, --accumulate-steps) with the product ``effective``: the largest batch that
    divides it and fits (None when not even 1 fits)."""
    fitting = [batch for batch in range(min(largest, effective), 0, -1) if effective % batch == 0]
    return (fitting[0], effective // fitting[0]) if fitting else None


def memory_table(peaks: dict | None = None) -> str:
    """The Markdown table of TRAINING.md: per config and precision, per card size, the largest
    batch and the --batch-size x --accumulate-steps that give an effective batch of 16 (from
    ``peaks``, default ``PEAK_MEMORY_GIB``)."""
    header = ("| config | precision | " + " | ".join(f"{size} GB" for size in CARD_SIZES_GB) + " |\n"
              + "|---|---|" + "---|" * len(CARD_SIZES_GB))
    rows = []
    for config_name in PARAMETERS:
        for precision, label in (("float32", "float32"), ("mixed_bfloat16", "mixed (bfloat16 or float16)")):
            cells = []
            for size in CARD_SIZES_GB:
                largest = largest_batch(config_name, precision, size, peaks)
                pair = batch_and_accumulation(largest)
                cells.append(f"{largest} ({pair[0]} x {pair[1]})" if pair else "does not fit")
            rows.append(f"| {config_name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join([header, *rows])


def explain_out_of_memory(args, config_name: str, gpus: list[GpuInfo] | None = None) -> str:
    """The message for TensorFlow's ResourceExhaustedError: what ran out, and the flags that help
    (training: --batch-size, --accumulate-steps, --precision; test and predict: no accumulation)."""
    gpus = list_gpus() if gpus is None else gpus
    accumulate = getattr(args, "accumulate_steps", 1)
    where = (f"GPU memory on {gpus[0].describe()}" if gpus else "memory (on the CPU: no GPU is visible)")
    text = (f"out of {where} at --batch-size {args.batch_size} with --precision {args.precision}"
            f"{f' (--accumulate-steps {accumulate})' if accumulate > 1 else ''}. ")
    if getattr(args, "mode", "train") in ("test", "predict"):
        text += "Lower --batch-size (the results do not depend on it), "
    else:
        text += _suggested_batch(args, config_name, gpus, accumulate) or (
            "Lower --batch-size and raise --accumulate-steps by the same factor (the effective batch, batch x "
            "steps, stays the same), ")
    alternative = "mixed_bfloat16" if args.precision == "float32" else None
    if alternative:
        text += (f"or use --precision {alternative} (Ampere and later; mixed_float16 on Volta/Turing), which "
                 "about halves the activation memory. ")
    return text + f"The memory table in {TRAINING_DOC} ('Memory') lists the largest batch per card size."


def _suggested_batch(args, config_name: str, gpus: list[GpuInfo], accumulate: int) -> str | None:
    """"Use --batch-size 8 --accumulate-steps 2 (...)", from the memory model; None without figures."""
    if not gpus or gpus[0].memory_bytes is None or config_name not in PARAMETERS:
        return None
    largest = largest_batch(config_name, args.precision, gpus[0].memory_bytes / 2**30)
    effective = args.batch_size * accumulate
    pair = batch_and_accumulation(min(largest, args.batch_size - 1), effective)
    if pair is None:
        return None
    return (f"Use --batch-size {pair[0]} --accumulate-steps {pair[1]} (the same effective batch of {effective}; "
            f"the measured figures predict at most {largest} here), ")
