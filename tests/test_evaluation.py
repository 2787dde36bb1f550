"""evaluation.py: per-frame metrics, the averages over actions and over frames, the files and pictures."""
import csv
import json

import numpy as np
import pytest
import tensorflow as tf

import evaluation
import h36m_utils

V, J, S = 4, len(h36m_utils.J17), 32


class ShiftModel:
    """A stand-in model: predicts the targets moved by a per-action 3D / 2D offset."""

    def __init__(self, targets_by_frame, offsets_3d, offsets_2d):
        self.targets, self.offsets_3d, self.offsets_2d = targets_by_frame, offsets_3d, offsets_2d

    def predict_on_batch(self, inputs):
        ids = inputs["id"].numpy()
        return {"kp3d": np.stack([self.targets["kp3d"][i] + self.offsets_3d[i] for i in ids]),
                "kp2d": np.stack([self.targets["kp2d"][i] + self.offsets_2d[i] for i in ids])}


def fake_test_set(rng, actions):
    n = len(actions)
    kp3d = rng.normal(0, 300, size=(n, J, 3))
    kp2d = rng.uniform(0, S, size=(n, V, J, 2))
    images = rng.integers(0, 255, size=(n, V, S, S, 3), dtype=np.uint8)
    inputs = {"images": images, "id": np.arange(n)}
    targets = {"kp3d": kp3d.astype(np.float32), "kp2d": kp2d.astype(np.float32)}
    metadata = {"subject": np.array(["S11"] * n), "action": np.array(actions),
                "sequence": np.array([f"{a} 1" for a in actions]), "frame": np.arange(n, dtype=np.int32) * 5}
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, metadata)).batch(3)
    return dataset, {"kp3d": kp3d, "kp2d": kp2d}


def test_protocol_averages_over_actions_and_writes_files(tmp_path):
    rng = np.random.default_rng()
    actions = ["Walking"] * 7 + ["Eating"] * 2
    dataset, truth = fake_test_set(rng, actions)
    # Walking: every joint 10 mm off along a random direction, 2D (3, 4) px off; Eating: 40 mm, (6, 8) px.
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    shift_3d = [direction * (10.0 if a == "Walking" else 40.0) for a in actions]
    shift_2d = [np.array([3.0, 4.0]) if a == "Walking" else np.array([6.0, 8.0]) for a in actions]
    predictions = evaluation.predict(ShiftModel(truth, shift_3d, shift_2d), dataset, len(actions), num_pictures=3)

    assert len(predictions) == 9
    np.testing.assert_allclose(predictions.kp3d_true, truth["kp3d"], rtol=1e-6, atol=1e-3)
    summary = evaluation.summarize(predictions)
    assert summary.frames == {"Eating": 2, "Walking": 7}
    assert summary.per_action["Walking"]["mpjpe_mm"] == pytest.approx(10.0, abs=1e-3)
    assert summary.per_action["Eating"]["mpjpe_mm"] == pytest.approx(40.0, abs=1e-3)
    averages = summary.over_actions
    assert averages["mpjpe_mm"] == pytest.approx(25.0, abs=1e-3)  # over actions, not frames (16.7)
    assert averages["mpjpe_relative_mm"] == pytest.approx(0.0, abs=1e-3)  # a pure shift
    assert averages["p_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert averages["error_2d_px"] == pytest.approx(7.5, abs=1e-3)  # (5 + 10) / 2
    assert summary.over_frames["mpjpe_mm"] == pytest.approx((7 * 10 + 2 * 40) / 9, abs=1e-3)
    assert summary.over_frames["error_2d_px"] == pytest.approx((7 * 5 + 2 * 10) / 9, abs=1e-3)

    table = evaluation.format_table(summary).splitlines()
    assert table[-2].split() == ["Avg", "(actions)", "25.0", "0.0", "0.0", "7.5", "9"]
    assert table[-1].split() == ["Avg", "(frames)", "16.7", "0.0", "0.0", "6.1", "9"]

    json_path, csv_path = evaluation.write_metrics(str(tmp_path), summary,
                                                   weights="w.weights.h5", config="tiny")
    content = json.load(open(json_path))
    assert content["mpjpe_mm"] == pytest.approx(25.0, abs=1e-3)
    assert content["average_over_frames"]["mpjpe_mm"] == pytest.approx(150 / 9, abs=1e-3)
    assert content["per_action"]["Eating"]["num_frames"] == 2
    assert (content["num_frames"], content["weights"], content["config"]) == (9, "w.weights.h5", "tiny")
    assert content["weights_info"] is None
    assert set(content) >= {"mpjpe_mm", "mpjpe_relative_mm", "p_mpjpe_mm", "error_2d_px", "per_action"}
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["action"] for r in rows] == ["Eating", "Walking", "Average over actions", "Average over frames"]
    assert float(rows[-2]["error_2d_px"]) == pytest.approx(7.5, abs=1e-3)
    assert float(rows[-1]["error_2d_px"]) == pytest.approx(55 / 9, abs=1e-3)

    np.testing.assert_array_equal(predictions.picture_rows, [0, 4, 8])
    np.testing.assert_array_equal(predictions.picture_images[2], dataset.unbatch().skip(8).take(1).get_single_element()[0]["images"].numpy())
    path_2d, path_3d = evaluation.draw_pictures(predictions, str(tmp_path / "imgs"))
    assert path_2d.endswith("imgs/kpts_preds.png") and path_3d.endswith("imgs/3d_prediction.png")


# Frames per action (unequal) and the size of each action's 3D (mm) and 2D (px) noise.
COUNTS = {"Walking": 6, "Eating": 3, "Phoning": 1}
NOISE = {"Walking": (5.0, 1.0), "Eating": (20.0, 3.0), "Phoning": (80.0, 9.0)}


def noisy_predictions(rng):
    """Predictions for ``COUNTS`` frames, every joint moved by per-action Gaussian noise."""
    actions = np.repeat(list(COUNTS), list(COUNTS.values()))
    n = len(actions)
    sigma_3d, sigma_2d = (np.array([NOISE[a][i] for a in actions]) for i in (0, 1))
    kp3d_true, kp2d_true = rng.normal(0, 300, size=(n, J, 3)), rng.uniform(0, S, size=(n, V, J, 2))
    return evaluation.Predictions(
        kp3d_pred=kp3d_true + rng.normal(size=kp3d_true.shape) * sigma_3d[:, None, None],
        kp3d_true=kp3d_true,
        kp2d_pred=kp2d_true + rng.normal(size=kp2d_true.shape) * sigma_2d[:, None, None, None],
        kp2d_true=kp2d_true, subjects=np.array(["S9"] * n), actions=actions,
        sequences=np.array([f"{a} 1" for a in actions]), frames=np.arange(n),
        picture_images=np.zeros((0, V, S, S, 3), np.uint8), picture_rows=np.zeros(0, int))


def expected_averages(p):
    """({metric: mean over actions}, {metric: mean over frames}), computed here with numpy."""
    def errors(pred, true):
        return np.linalg.norm(pred - true, axis=-1).mean(axis=-1)

    def relative(x):
        return x - x[:, :1]  # the pelvis is joint 0

    per_frame = {"mpjpe_mm": errors(p.kp3d_pred, p.kp3d_true),
                 "mpjpe_relative_mm": errors(relative(p.kp3d_pred), relative(p.kp3d_true)),
                 # Only the per-frame value comes from h36m_utils (tested in test_h36m_utils).
                 "p_mpjpe_mm": h36m_utils.p_mpjpe(p.kp3d_pred, p.kp3d_true),
                 "error_2d_px": errors(p.kp2d_pred, p.kp2d_true).mean(axis=-1)}
    over_actions = {key: np.mean([values[p.actions == a].mean() for a in COUNTS])
                    for key, values in per_frame.items()}
    over_frames = {key: values.sum() / len(values) for key, values in per_frame.items()}
    return over_actions, over_frames


def test_both_averages_in_summary_table_json_and_csv(tmp_path):
    keys = [key for key, _ in evaluation.METRICS]
    predictions = noisy_predictions(np.random.default_rng(7))
    over_actions, over_frames = expected_averages(predictions)
    for key in keys:  # the rare, noisy action weighs more over actions: the averages differ
        assert over_actions[key] > 1.5 * over_frames[key]

    summary = evaluation.summarize(predictions)
    assert summary.frames == COUNTS and summary.num_frames == 10
    assert list(summary.per_action) == sorted(COUNTS)
    assert summary.over_actions == pytest.approx(over_actions, rel=1e-9)
    assert summary.over_frames == pytest.approx(over_frames, rel=1e-9)

    lines = evaluation.format_table(summary).splitlines()
    assert len({len(line) for line in lines}) == 1  # every row aligned with the header
    assert [line.split()[0] for line in lines[2:5]] == ["Eating", "Phoning", "Walking"]
    assert set(lines[5]) == {"-"} and len(lines) == 8
    for line, label, expected in ((lines[6], "Avg (actions)", over_actions),
                                  (lines[7], "Avg (frames)", over_frames)):
        assert line[:14].rstrip() == label
        assert line[14:].split() == [f"{expected[key]:.1f}" for key in keys] + ["10"]

    weights_info = {"file": "best.weights.h5", "epoch": 7,
                    "selected_by": "lowest val_kp3d_mpjpe on held-out S8 trials"}
    json_path, csv_path = evaluation.write_metrics(
        str(tmp_path), summary, weights="best.weights.h5", config="tiny",
        weights_info=weights_info, extra={"test_stride": 64})
    content = json.load(open(json_path))
    for key in keys:
        assert content[key] == pytest.approx(over_actions[key], rel=1e-9)  # top level: as before
        assert content["average_over_actions"][key] == pytest.approx(over_actions[key], rel=1e-9)
        assert content["average_over_frames"][key] == pytest.approx(over_frames[key], rel=1e-9)
    assert "mean over actions" in content["averages_note"] and "Iskakov" in content["averages_note"]
    assert content["weights_info"] == weights_info
    assert (content["num_frames"], content["test_stride"]) == (10, 64)
    assert {a: v["num_frames"] for a, v in content["per_action"].items()} == COUNTS

    rows = list(csv.reader(open(csv_path)))
    assert rows[0] == ["action"] + keys + ["num_frames"]
    assert [row[0] for row in rows[1:]] == ["Eating", "Phoning", "Walking",
                                            "Average over actions", "Average over frames"]
    for row, expected in ((rows[-2], over_actions), (rows[-1], over_frames)):
        assert [float(v) for v in row[1:-1]] == pytest.approx([expected[k] for k in keys], abs=5e-4)
        assert row[-1] == "10"


def test_extra_field_may_not_overwrite_a_protocol_key(tmp_path):
    summary = evaluation.summarize(noisy_predictions(np.random.default_rng(1)))
    with pytest.raises(ValueError, match=r"\['average_over_frames', 'weights'\]"):
        evaluation.write_metrics(str(tmp_path), summary, weights="w.weights.h5", config="tiny",
                                 extra={"weights": "other", "average_over_frames": {}})
    assert not (tmp_path / "metrics.json").exists()


def test_non_finite_prediction_is_an_error_naming_the_frame():
    rng = np.random.default_rng(0)
    actions = ["Walking"] * 5
    dataset, truth = fake_test_set(rng, actions)
    shift_3d = [np.zeros(3)] * 5
    shift_3d[4] = np.full(3, np.nan)
    with pytest.raises(FloatingPointError, match="test frame 4 .*S11 'Walking 1' frame 20"):
        evaluation.predict(ShiftModel(truth, shift_3d, [np.zeros(2)] * 5), dataset, 5)


def test_picture_rows_spread_over_the_set():
    np.testing.assert_array_equal(evaluation.picture_rows(100, 3), [0, 50, 99])
    np.testing.assert_array_equal(evaluation.picture_rows(2, 3), [0, 1])
