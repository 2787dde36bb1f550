"""train_and_test.py end to end: a few steps of tiny on the small synthetic set, then the protocol.

The session fixture ``synthetic_dataset`` holds S1 (training) and S11 (held out).
"""
import csv
import importlib.util
import json
import math
import pathlib
import re

import pytest

import model
import options
import protocol_check
import train_and_test
from synthetic import demo
from train import run


def data_flags(dataset):
    return ["--data-dir", str(dataset.data_dir), "--labels-dir", str(dataset.labels_dir),
            "--cameras", str(dataset.cameras_path), "--train-subjects", "S1", "--test-subjects", "S11"]


def test_help_explains_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        train_and_test.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--mode", "--config", "--loss", "--batch-size", "--epochs", "--steps-per-epoch", "--lr",
                 "--checkpoint-dir", "--weights", "--resume", "--strategy", "--test-stride", "--output-dir"):
        assert flag in text
    assert "(default: paper)" in text and "(default: 5)" in text  # --config, --test-stride


def test_no_data_is_a_clear_message_pointing_to_the_demo(tmp_path, capsys):
    (tmp_path / "Data").mkdir()
    (tmp_path / "Labels").mkdir()
    code = train_and_test.main(["--mode", "train", "--data-dir", str(tmp_path / "Data"),
                                "--labels-dir", str(tmp_path / "Labels")])
    message = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "Data") in message and str(tmp_path / "Labels") in message  # where it looked
    assert "vision.imar.ro/human3.6m" in message  # how to get the data
    assert "--mode demo" in message  # and that the demo needs none


def test_train_then_test_on_synthetic_data(synthetic_dataset, tmp_path, capsys):
    checkpoints, outputs, images = tmp_path / "checkpoints", tmp_path / "outputs", tmp_path / "imgs"
    common = data_flags(synthetic_dataset) + ["--config", "tiny", "--batch-size", "2", "--verbose", "0"]
    code = train_and_test.main(["--mode", "train", *common, "--epochs", "2", "--steps-per-epoch", "3",
                                "--val-stride", "20", "--val-steps", "2", "--lr-warmup-steps", "2",
                                "--checkpoint-dir", str(checkpoints), "--log-dir", str(tmp_path / "logs")])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Human3.6M index:" in printed  # the index report comes first
    best = checkpoints / "best.weights.h5"
    sidecar = json.loads((checkpoints / "best.weights.h5.json").read_text())
    assert sidecar["config"] == "tiny" and math.isfinite(sidecar["logs"]["val_kp3d_loss"])
    assert json.loads((checkpoints / "last.weights.h5.json").read_text())["epoch"] == 2
    assert not (checkpoints / "backup").exists()  # finished: nothing left to resume
    rows = list(csv.DictReader(open(tmp_path / "logs" / "training.csv")))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    # best.weights.h5 is the epoch of the lowest validation MPJPE in the log (sidecar epochs count from 1).
    val_mpjpe = [float(row["val_kp3d_mpjpe"]) for row in rows]
    assert sidecar["epoch"] == 1 + val_mpjpe.index(min(val_mpjpe)), (sidecar, val_mpjpe)
    assert sidecar["logs"]["val_kp3d_mpjpe"] == pytest.approx(min(val_mpjpe), rel=1e-6)

    test = ["--mode", "test", *common, "--weights", str(best), "--test-stride", "10", "--output-dir", str(outputs),
            "--images-dir", str(images)]
    code = train_and_test.main(test)
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Avg (actions)" in printed and "Avg (frames)" in printed and "MPJPE" in printed
    metrics = protocol_check.assert_metrics_match_the_protocol(outputs / "metrics.json", test)
    assert metrics["config"] == "tiny" and metrics["root"] == "estimated" and metrics["subjects"] == ["S11"]
    assert (outputs / "metrics.csv").read_text().splitlines()[-1].startswith("Average over frames,")
    for picture in ("kpts_preds.png", "3d_prediction.png"):
        assert (images / picture).stat().st_size > 10_000

    # Weights of another config: a clear error naming both, before any big model is built.
    code = train_and_test.main(["--mode", "test", *common[:-6], "--config", "paper", "--weights", str(best),
                                "--output-dir", str(outputs)])
    message = capsys.readouterr().err
    assert code == 1 and "config 'tiny'" in message and "config 'paper'" in message


def test_demo_refuses_a_folder_that_is_not_a_complete_synthetic_set(tmp_path):
    (tmp_path / "half").mkdir()  # e.g. left by hand; a generation in progress is "half.partial"
    with pytest.raises(train_and_test.UsageError, match="not a complete synthetic data set"):
        demo.ensure_synthetic_data(str(tmp_path / "half"))


def test_demo_settings_use_the_synthetic_layout_and_hold_out_s11(tmp_path):
    args = demo.demo_args(options.parse(["--demo-dir", str(tmp_path), "--verbose", "2"]))
    assert args.config == "tiny-skip" and args.verbose == 2
    assert args.data_dir == str(tmp_path / "Data") and args.cameras.endswith("camera-parameters.json")
    assert args.test_subjects == ["S11"] and "S11" not in args.train_subjects and "S1" in args.train_subjects


# --------------------------------------------------------------------------- DOCUMENTATION.md: "Changing the loss"

DOCUMENTATION = pathlib.Path(train_and_test.__file__).parent / "docs" / "DOCUMENTATION.md"
TRAINING_RUN = pathlib.Path(run.__file__)  # where the examples edit: the compile call of run_train
EXAMPLE = re.compile(r"<!-- example (\w+): (?:replace the line with `(.+?)` by|add before the line `(.+?)`):? -->\n"
                     r"```python\n(.*?)```", re.S)


def documented_examples() -> dict:
    """{example name: [(line replaced or None, line inserted before or None, code)]} from DOCUMENTATION.md."""
    examples = {}
    for name, replaced, before, code in EXAMPLE.findall(DOCUMENTATION.read_text()):
        examples.setdefault(name, []).append((replaced or None, before or None, code))
    return examples


def apply_edits(source: str, edits) -> str:
    for replaced, before, code in edits:
        if replaced:
            lines = [line for line in source.splitlines() if line.strip().startswith(replaced)]
            assert len(lines) == 1, f"DOCUMENTATION.md's line {replaced!r} is not once in train/run.py"
            source = source.replace(lines[0], code.rstrip("\n"))
        else:
            assert source.count(before) == 1, f"DOCUMENTATION.md's line {before!r} is not once in train/run.py"
            source = source.replace(before, code + "\n\n" + before)
    return source


def first_kp3d_loss(module, dataset, tmp_path, name, monkeypatch) -> float:
    """Train 1 step of tiny through train_and_test.main with ``module`` as train/run.py; the unweighted 3D
    term of that step (from the CSV)."""
    import train
    monkeypatch.setattr(train, "run", module)
    logs = tmp_path / name / "logs"
    argv = ["--mode", "train", *data_flags(dataset), "--config", "tiny", "--batch-size", "2", "--verbose", "0",
            "--epochs", "1", "--steps-per-epoch", "1", "--val-subjects", "none", "--seed", "3",
            "--checkpoint-dir", str(tmp_path / name / "checkpoints"), "--log-dir", str(logs)]
    assert train_and_test.main(argv) == 0
    rows = list(csv.DictReader(open(logs / "training.csv")))
    return float(rows[0]["kp3d_loss"])


def test_changing_the_loss_examples_of_the_documentation_run_as_written(synthetic_dataset, tmp_path, monkeypatch):
    examples = documented_examples()
    assert set(examples) == {"huber", "symmetry"}
    source = TRAINING_RUN.read_text()
    losses_seen = {"as shipped": first_kp3d_loss(run, synthetic_dataset, tmp_path, "shipped", monkeypatch)}
    for name, edits in examples.items():
        path = tmp_path / f"run_{name}.py"
        path.write_text(apply_edits(source, edits))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        losses_seen[name] = first_kp3d_loss(module, synthetic_dataset, tmp_path, name, monkeypatch)
    assert all(math.isfinite(value) for value in losses_seen.values()), losses_seen
    # The same weights and batch (seed 3, one step), so each loss is a mean over the same coordinate
    # errors e (mm) as the shipped L1 = mean |e|. Keras' Huber (delta d = 50, not divided by d) is
    # h(e) = e^2 / 2 for |e| <= d, d (|e| - d / 2) beyond, and d |e| - d^2 / 2 <= h(e) <= d |e| for
    # every e (the lower bound is (|e| - d)^2 >= 0 rearranged). Averaged:
    #     50 (L1 - 25) <= Huber <= 50 L1.
    # An edit that changed nothing gives Huber = L1, which breaks the lower bound whenever
    # L1 > 25.5 mm: an untrained tiny model's 3D errors are far above that (asserted first).
    shipped, huber = losses_seen["as shipped"], losses_seen["huber"]
    assert shipped > 100.0, losses_seen
    slack = 1e-5 * 50.0 * shipped  # float32 sums of the same errors in another order
    assert 50.0 * (shipped - 25.0) - slack <= huber <= 50.0 * shipped + slack, losses_seen
    # The symmetry term adds 0.1 x the mean left/right bone-length difference of the (untrained,
    # asymmetric) prediction to the same L1.
    assert shipped < losses_seen["symmetry"], losses_seen


# --------------------------------------------------------------------------- backbone weights


def test_offline_without_backbone_weights_is_an_error_naming_both_flags(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")
    monkeypatch.setattr(file_utils, "get_file", offline)
    args = options.namespace(config="resnet50")
    with pytest.raises(train_and_test.UsageError) as error:
        run.build_network(args, model.get_config(args.config))
    assert "--backbone-weights" in str(error.value) and "--no-imagenet" in str(error.value)


def test_backbone_weights_from_a_local_file(tmp_path):
    import keras
    import numpy as np
    local = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(256, 256, 3))
    for variable in local.weights[:3]:
        variable.assign(np.full(variable.shape, 0.125, variable.dtype))
    path = tmp_path / "resnet50_notop.weights.h5"
    local.save_weights(path)
    args = options.namespace(config="resnet50", backbone_weights=str(path))
    network = run.build_network(args, model.get_config(args.config))
    encoder = network.get_layer("resnet50")
    for mine, theirs in zip(encoder.weights, local.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))
    with pytest.raises(train_and_test.UsageError, match="nope.h5: no such file"):
        options.namespace(config="resnet50", backbone_weights=str(tmp_path / "nope.h5"))


def test_demo_end_to_end_generates_trains_and_tests_both_roots(tmp_path, monkeypatch, capsys):
    """--mode demo as a user runs it, at a tiny budget on a small set: the set is generated into
    --demo-dir (marked COMPLETE), tiny-skip is trained, and the held-out subject is tested with the root
    from the videos and, for comparison, the labelled root; the next run would reuse the set."""
    from synthetic import synthetic_h36m
    generate = synthetic_h36m.generate_dataset
    monkeypatch.setattr(synthetic_h36m, "DEFAULT_SUBJECTS", ("S1", "S11"))
    monkeypatch.setattr(synthetic_h36m, "generate_dataset", lambda out_dir, seed: generate(
        out_dir, subjects=("S1", "S11"), frames=40, size=256, seed=seed, progress=False))
    folders = {flag: tmp_path / flag for flag in ("demo-dir", "output-dir", "checkpoint-dir", "log-dir", "images-dir",
                                                  "cache-dir")}
    argv = ["--mode", "demo", "--verbose", "0", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
            "--test-stride", "10", *(item for flag, path in folders.items() for item in (f"--{flag}", str(path)))]
    assert train_and_test.main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert (folders["demo-dir"] / "COMPLETE").is_file() and not (tmp_path / "demo-dir.partial").exists()
    assert "Demo wall time:" in printed and "SYNTHETIC data" in printed
    estimated = json.loads((folders["output-dir"] / "metrics.json").read_text())
    labelled = json.loads((folders["output-dir"] / "root-labels" / "metrics.json").read_text())
    assert (estimated["root"], labelled["root"]) == ("estimated", "labels")
    assert estimated["subjects"] == labelled["subjects"] == ["S11"]
    assert estimated["num_frames"] == labelled["num_frames"] > 0
    assert math.isfinite(estimated["mpjpe_mm"]) and math.isfinite(labelled["mpjpe_mm"])
    assert estimated["mpjpe_mm"] != labelled["mpjpe_mm"]  # two crops, two answers
    assert (folders["checkpoint-dir"] / "best.weights.h5").is_file()
    demo.ensure_synthetic_data(str(folders["demo-dir"]))  # the next demo reuses the set
    assert "Using the synthetic data set in" in capsys.readouterr().out
