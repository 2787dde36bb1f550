"""train_and_test.py end to end: a few steps of tiny on the small synthetic set, then the protocol.

The session fixture ``synthetic_dataset`` holds S1 (training) and S11 (held out).
"""
import json
import math
import os

import pytest

import train_and_test


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
    assert (tmp_path / "logs" / "training.csv").read_text().count("\n") == 3  # header + 2 epochs

    code = train_and_test.main(["--mode", "test", *common, "--weights", str(best), "--test-stride", "10",
                                "--output-dir", str(outputs), "--images-dir", str(images)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Avg (actions)" in printed and "Avg (frames)" in printed and "MPJPE" in printed
    metrics = json.loads((outputs / "metrics.json").read_text())
    for key in ("mpjpe_mm", "mpjpe_relative_mm", "p_mpjpe_mm", "error_2d_px"):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0
    assert metrics["config"] == "tiny" and metrics["weights"] == str(best) and metrics["num_frames"] > 0
    assert sum(row["num_frames"] for row in metrics["per_action"].values()) == metrics["num_frames"]
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
        train_and_test.ensure_synthetic_data(str(tmp_path / "half"))


def test_demo_settings_use_the_synthetic_layout_and_hold_out_s11(tmp_path):
    args = train_and_test.demo_args(train_and_test.parse_args(["--demo-dir", str(tmp_path), "--verbose", "2"]))
    assert args.config == "tiny" and args.verbose == 2
    assert args.data_dir == str(tmp_path / "Data") and args.cameras.endswith("camera-parameters.json")
    assert args.test_subjects == ["S11"] and "S11" not in args.train_subjects and "S1" in args.train_subjects
