"""devices.py and the device flags: the start report, the CPU warning, precision per GPU generation,
mixed precision against float32, the memory table and the out-of-memory message.

No GPU here: GPUs are stand-ins (``devices.GpuInfo``); the CPU is the real one."""
import argparse
import csv
import dataclasses
import math
import os
import pathlib
import subprocess
import sys
import types

import keras
import pytest
import tensorflow as tf

from common import devices
import h36m_utils
from train import losses
import model as model_lib
import train_and_test
from train import training

REPO = pathlib.Path(__file__).resolve().parents[1]
A100 = devices.GpuInfo("NVIDIA A100-SXM4-40GB", (8, 0), 40 * 2**30)
GTX_1080_TI = devices.GpuInfo("NVIDIA GeForce GTX 1080 Ti", (6, 1), 11 * 2**30)


@pytest.fixture(autouse=True)
def float32_afterwards():
    """The dtype policy is global: every test leaves float32 behind."""
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def settings(**overrides) -> argparse.Namespace:
    return argparse.Namespace(**{"precision": "float32", "jit_compile": "auto", "accumulate_steps": 1,
                                 "batch_size": 16, "config": "paper", "mode": "train", **overrides})


def stand_in_model(jit_compile=False, optimizer=None):
    return types.SimpleNamespace(jit_compile=jit_compile, optimizer=optimizer)


# --------------------------------------------------------------------------- the report

def test_paper_on_a_machine_without_gpu_warns_how_slow_and_names_the_gpu_install(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.list_gpus() == []  # this machine has none
    report = devices.start_report(settings(), "train", "paper", stand_in_model())
    assert "Devices: the CPU only" in report and "Precision: float32; XLA: off (--jit-compile auto)" in report
    assert "about 29 s per step at batch 16 (1.84 s per sample forward+backward, measured on a 2-core" in report
    for named in ("pip install -r requirements-gpu.txt", "`nvidia-smi`", "CUDA_VISIBLE_DEVICES is set to ''"):
        assert named in report
    testing = devices.start_report(settings(batch_size=4), "test", "resnet50", stand_in_model(), gpus=[])
    assert "about 1 s per step at batch 4 (0.172 s per sample forward" in testing
    assert "WARNING" not in devices.start_report(settings(), "train", "tiny", stand_in_model(), gpus=[])


@pytest.mark.skipif(os.path.exists(devices.NVIDIA_DRIVER), reason="an NVIDIA driver is loaded: cuInit's error is news")
def test_no_cuda_error_printed_where_there_is_no_nvidia_driver():
    code = "from common import devices; devices.import_tensorflow_quietly(); print(devices.list_gpus())"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    assert "cuInit" not in result.stderr, result.stderr


def test_report_names_each_gpu_and_the_precision_its_generation_wants():
    report = devices.start_report(settings(accumulate_steps=2, batch_size=8), "train", "paper",
                                  stand_in_model(jit_compile=True), gpus=[A100, A100])
    assert ("Devices: GPU 0: NVIDIA A100-SXM4-40GB (compute capability 8.0, 40.0 GiB usable); GPU 1: "
            in report)
    assert "XLA: on" in report and "WARNING" not in report
    assert "8 x 2 accumulated = effective batch 16" in report
    assert "supports --precision mixed_bfloat16" in report
    pascal = devices.start_report(settings(precision="mixed_bfloat16"), "train", "paper", stand_in_model(),
                                  gpus=[GTX_1080_TI])
    assert "slow on compute capability 6.1; use --precision float32" in pascal
    assert "convolutions in bfloat16" in pascal and "DLT and losses float32" in pascal
    for precision in ("mixed_float16", "mixed_bfloat16"):  # both fast on Ampere: no note
        assert devices.precision_advice([A100], precision) is None
    turing = dataclasses.replace(A100, compute_capability=(7, 5))
    assert "use --precision mixed_float16" in devices.precision_advice([turing], "mixed_bfloat16")
    assert [devices.recommended_precision(cc) for cc in ((6, 1), (7, 0), (7, 5), (8, 0), (9, 0), None)] == [
        "float32", "mixed_float16", "mixed_float16", "mixed_bfloat16", "mixed_bfloat16", "float32"]


# --------------------------------------------------------------------------- memory

def test_memory_model_reproduces_the_measurement_and_fits_several_batches():
    fixed, per_sample = devices.memory_model("paper", "float32")
    measured = devices.PEAK_MEMORY_GIB[("paper", "float32")]
    for batch, peak in measured.items():  # the line through the measured peaks stays near each
        assert fixed + batch * per_sample == pytest.approx(peak, rel=0.03)
    assert devices.memory_model("paper", "mixed_float16") == devices.memory_model("paper", "mixed_bfloat16")
    one = {("paper", "float32"): {16: 16.6}}  # one measured batch: the fixed part is the training state
    fixed, per_sample = devices.memory_model("paper", "float32", one)
    assert fixed == pytest.approx(devices.PARAMETERS["paper"] * 16 / 2**30)  # weights, gradients, Adam's moments
    assert fixed + 16 * per_sample == pytest.approx(16.6)
    peaks = {("paper", "float32"): {8: 5.0, 16: 9.0, 32: 17.0}}  # as a GPU sweep gives them
    assert devices.memory_model("paper", "float32", peaks) == pytest.approx((1.0, 0.5))
    assert devices.largest_batch("paper", "float32", 11, peaks) == 17  # (0.9 x 11 - 1) / 0.5


def test_batch_and_accumulation_keep_the_effective_batch():
    assert devices.batch_and_accumulation(9) == (8, 2)
    assert devices.batch_and_accumulation(40) == (16, 1)
    assert devices.batch_and_accumulation(3) == (2, 8)
    assert devices.batch_and_accumulation(0) is None
    assert devices.batch_and_accumulation(5, effective=12) == (4, 3)


def test_training_md_holds_the_memory_table_that_devices_computes():
    text = (REPO / "docs" / "TRAINING.md").read_text()
    assert devices.memory_table() in text, devices.memory_table()
    for size in devices.CARD_SIZES_GB:  # more memory, never a smaller batch
        assert devices.largest_batch("paper", "float32", size) <= devices.largest_batch("paper", "float32", size + 1)


# --------------------------------------------------------------------------- out of memory

def test_out_of_memory_message_names_batch_precision_gpu_and_the_three_flags():
    text = devices.explain_out_of_memory(settings(), "paper", gpus=[GTX_1080_TI])
    assert "out of GPU memory on NVIDIA GeForce GTX 1080 Ti (compute capability 6.1, 11.0 GiB usable)" in text
    assert "--batch-size 16 with --precision float32" in text
    assert "Use --batch-size 8 --accumulate-steps 2 (the same effective batch of 16" in text
    assert "--precision mixed_bfloat16" in text and "TRAINING.md" in text
    mixed = devices.explain_out_of_memory(settings(precision="mixed_bfloat16", batch_size=6, accumulate_steps=2),
                                          "tiny", gpus=[])
    assert "memory (on the CPU" in mixed and "--accumulate-steps 2" in mixed
    assert "Lower --batch-size and raise --accumulate-steps" in mixed and "use --precision" not in mixed
    testing = devices.explain_out_of_memory(settings(mode="test"), "paper", gpus=[GTX_1080_TI])
    assert "Lower --batch-size (the results do not depend on it)" in testing and "--accumulate-steps" not in testing


def test_out_of_memory_in_a_run_is_a_clear_error_without_traceback(monkeypatch, capsys):
    def run_out_of_memory(args):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,256,64,64]")

    monkeypatch.setattr(train_and_test, "run_train", run_out_of_memory)
    code = train_and_test.main(["--mode", "train", "--config", "resnet50", "--batch-size", "64"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("error: out of ") and "--batch-size 64 with --precision float32" in captured.err
    assert "--accumulate-steps" in captured.err and "--precision mixed_bfloat16" in captured.err


# --------------------------------------------------------------------------- mixed precision

def real_batch(dataset, size: int):
    import data_loader
    sequences, _ = h36m_utils.find_sequences(str(dataset.data_dir), str(dataset.labels_dir), ["S1"])
    cameras = h36m_utils.load_cameras(str(dataset.cameras_path))
    data = data_loader.build_dataset(sequences, cameras, image_size=size, batch_size=2, training=False, stride=10,
                                     verbose=False)
    return next(iter(data))


def train_tiny(precision: str, weights, batch, steps: int = 8) -> list[float]:
    """The loss of tiny on one batch at each of ``steps`` steps on it under ``precision`` (each
    before its update), from ``weights``."""
    devices.configure(settings(precision=precision))
    config = model_lib.get_config("tiny")
    network = model_lib.build_model(config)
    network.set_weights(weights)
    network.compile(optimizer=training.make_optimizer(1e-2, total_steps=steps),
                    loss={"kp2d": losses.Loss2D(config.image_size), "kp3d": losses.Loss3D()},
                    loss_weights={"kp2d": 1.0, "kp3d": 1e-4}, jit_compile=False)
    assert isinstance(network.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    convolution = next(layer for layer in network._flatten_layers() if isinstance(layer, keras.layers.Conv2D))
    assert convolution.compute_dtype == {"float32": "float32", "mixed_float16": "float16",
                                         "mixed_bfloat16": "bfloat16"}[precision]
    assert {output.dtype for output in network.outputs} == {"float32"}  # joints, hence losses, in float32
    history = network.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, epochs=steps, verbose=0)
    return history.history["loss"]


def test_both_mixed_policies_train_tiny_close_to_float32(synthetic_dataset):
    batch = real_batch(synthetic_dataset, model_lib.get_config("tiny").image_size)
    keras.utils.set_random_seed(0)
    weights = model_lib.build_model("tiny").get_weights()
    runs = {precision: train_tiny(precision, weights, batch) for precision in devices.PRECISIONS}
    print({precision: [round(value, 5) for value in run] for precision, run in runs.items()})
    reference = runs["float32"]
    drop = reference[0] - reference[-1]
    assert drop > 0.5 * reference[0], runs  # it learns the batch
    for precision in ("mixed_float16", "mixed_bfloat16"):
        assert all(math.isfinite(value) for value in runs[precision]), runs
        assert abs(runs[precision][-1] - reference[-1]) < 0.15 * drop, runs  # the stated tolerance


# --------------------------------------------------------------------------- the flags, end to end

def test_device_flags_train_and_test_tiny(synthetic_dataset, tmp_path, capsys):
    common = ["--data-dir", str(synthetic_dataset.data_dir), "--labels-dir", str(synthetic_dataset.labels_dir),
              "--cameras", str(synthetic_dataset.cameras_path), "--train-subjects", "S1", "--test-subjects", "S11",
              "--config", "tiny", "--batch-size", "2", "--verbose", "0", "--jit-compile", "off"]
    checkpoints = tmp_path / "checkpoints"
    code = train_and_test.main(["--mode", "train", *common, "--precision", "mixed_float16", "--accumulate-steps", "2",
                                "--epochs", "1", "--steps-per-epoch", "2", "--val-subjects", "none",
                                "--checkpoint-dir", str(checkpoints), "--log-dir", str(tmp_path / "logs")])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    assert "Devices: the CPU only" in printed.out and "WARNING: no GPU" not in printed.out  # tiny: no warning
    assert "Precision: mixed_float16 (convolutions in float16" in printed.out and "dynamic loss scaling" in printed.out
    assert "XLA: off (--jit-compile off)" in printed.out and "2 x 2 accumulated = effective batch 4" in printed.out
    [row] = list(csv.DictReader(open(tmp_path / "logs" / "training.csv")))
    assert math.isfinite(float(row["loss"])), row

    code = train_and_test.main(["--mode", "test", *common, "--precision", "mixed_bfloat16", "--test-stride", "20",
                                "--weights", str(checkpoints / "last.weights.h5"),
                                "--output-dir", str(tmp_path / "out"), "--images-dir", str(tmp_path / "imgs")])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    assert "Precision: mixed_bfloat16 (convolutions in bfloat16" in printed.out and "XLA: off" in printed.out
    assert "Avg (frames)" in printed.out
