"""The GPU benchmarks run here too, on the CPU under TensorFlow at tiny sizes: their tables are
parsed and checked for what does not depend on the machine (accuracy of the DLT solvers, finite
mixed-precision outputs close to float32, the parameter count); timings are never asserted."""
import os
import pathlib
import subprocess
import sys

import pytest

import model

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", f"benchmarks.{script.removesuffix('.py')}", *args], capture_output=True,
                            text=True, timeout=600, cwd=REPO_ROOT,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def table_rows(text: str, separator: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split(separator.strip())]
            for line in text.splitlines() if line.count(separator) >= 5 and not line.startswith(("|---", "---"))]


def test_dlt_benchmark_table_on_cpu():
    text = run_benchmark("bench_dlt.py", "--batches", "16", "--repeats", "2")
    assert "TensorFlow" in text and "CPU" in text
    rows = {row[1]: row for row in table_rows(text, " | ") if row[0].startswith("16 x 17")}
    assert set(rows) == {"SII, 2 iterations", "SII, 3 iterations", "keras.ops.svd", "numpy.linalg.svd f64, plain"}
    for name in ("SII, 2 iterations", "SII, 3 iterations", "keras.ops.svd"):
        assert float(rows[name][5]) < 0.05, rows[name]        # float32 solver vs the float64 SVD
        assert 5.0 < float(rows[name][7]) < 15.0, rows[name]  # 2 px noise: ~9 mm from the truth


def test_model_benchmark_mixed_precision_row_on_cpu():
    text = run_benchmark("bench_model.py", "--configs", "tiny", "--policies", "mixed_bfloat16", "--batches", "2",
                         "--repeats", "1")
    assert "TensorFlow" in text and "epoch = 78,000 samples" in text
    [row] = [row for row in table_rows(text, "|") if row[0] == "tiny"]
    config, policy, size, params, batch = row[:5]
    assert (config, policy, size, batch) == ("tiny", "mixed_bfloat16", "128", "2")
    assert int(params.replace(",", "")) == model.build_model("tiny", num_views=4).count_params()
    assert row[9] == "n/a (CPU)"  # no accelerator memory is made up on the CPU
    check = row[11]                # e.g. "finite, 2D 0.95 px, 3D max 7.3 / mean 2.9 mm"
    assert check.startswith("finite,"), check
    mean_mm = float(check.split("mean ")[1].split(" mm")[0])
    assert mean_mm < 20.0, check   # the stated tolerance: bf16 features, float32 geometry


def test_memory_sweep_tables_on_cpu():
    text = run_benchmark("bench_model.py", "--memory-sweep", "--configs", "tiny", "--policies", "float32",
                         "--sweep-batches", "2", "1", "--predict-batches", "1", "--repeats", "1")
    rows = [row for row in table_rows(text, "|") if row[0] == "tiny"]
    training = [row for row in rows if len(row) == 6]
    assert [row[2] for row in training] == ["1", "2"]  # ascending: the peak after each is that batch's
    for _, policy, batch, memory, milliseconds, per_second in training:
        assert policy == "float32" and memory == "n/a (CPU)"
    [predict] = [row for row in rows if len(row) == 5]
    assert predict[2] == "1" and float(predict[4]) > 0  # frames/s at batch 1
    assert "No accelerator memory figures" in text


def test_measured_peaks_print_as_devices_entries_and_the_card_table(monkeypatch, capsys):
    """What a GPU sweep prints for TRAINING.md, from stand-in rows (no GPU here)."""
    from benchmarks import bench_model
    from common import devices
    per_sample_gib = {("paper", "float32"): 0.9, ("paper", "mixed_bfloat16"): 0.5, ("resnet50", "float32"): 0.45,
                      ("resnet50", "mixed_bfloat16"): 0.25}
    rows = [{"kind": "train", "config": config, "policy": policy, "batch": batch,
             "peak_bytes": int((1.0 + batch * per_sample) * 2**30)}
            for (config, policy), per_sample in per_sample_gib.items() for batch in (16, 32)]
    rows.append({"kind": "predict", "config": "paper", "policy": "float32", "batch": 64, "seconds": 0.1})
    peaks = bench_model.measured_peaks(rows)
    assert peaks[("paper", "float32")] == {16: 15.4, 32: 29.8}
    bench_model.print_memory_model(peaks)
    printed = capsys.readouterr().out
    assert "    ('paper', 'float32'): {16: 15.4, 32: 29.8}," in printed
    assert devices.memory_table(peaks) in printed and devices.memory_table(peaks) != devices.memory_table()


def test_root_benchmark_table_on_a_small_set(synthetic_dataset):
    text = run_benchmark("bench_root.py", "--data", str(synthetic_dataset.root), "--subjects", "S11", "--strides", "8",
                         "--backgrounds", "subject", "--jitter-subjects", "S1")
    rows = {row[0]: row for row in table_rows(text, " | ") if row[0].startswith(("S11", "all"))}
    assert {"S11 Walking", "S11 all", "all"} <= set(rows), text
    frames, mean_mm, found_percent, baseline_mm = (float(rows["all"][i]) for i in (1, 2, 6, 10))
    assert frames == 55 and found_percent == 100.0, rows["all"]  # 11 sequences x 5 frames (40 at stride 8)
    assert mean_mm < 80.0 < baseline_mm, rows["all"]  # measured: 53 against 169 mm
    assert "root - pelvis on S1" in text and "| z |" in text


@pytest.mark.slow
def test_pipeline_benchmark_table_on_a_small_set(synthetic_dataset):
    """Every row of the input table, on real videos: raw decoding, the cache build, and each stream's
    first epoch and steady state with its rate, ratio and CPU time (their values are not asserted)."""
    text = run_benchmark("bench_pipeline.py", "--data", str(synthetic_dataset.root), "--image-size", "32",
                         "--batch-size", "4", "--repeats", "1", "--fit-epochs", "0")
    rows = {row[0]: row for row in table_rows(text, "|")}
    streams = [f"{phase}, {name}" for phase in ("first epoch", "steady state")
               for name in ("no augmentation", "demo's (root jitter)", "--augment-rig (mean fusion)")]
    assert {"raw decoding, sequential cv2 read", "cache build", *streams} <= set(rows), text
    for name in streams:
        rate, ratio, cpu = rows[name][1:4]
        assert rate.endswith("view-samples/s") and float(rate.split()[0]) > 0 and float(ratio.rstrip("x")) > 0, rows[name]
        assert float(cpu) > 0, rows[name]
    assert "load average" in text
