"""evaluation.py: per-frame metrics, the average over actions, the files and pictures it writes."""
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
    per_action, averages, frames = evaluation.summarize(predictions)
    assert frames == {"Eating": 2, "Walking": 7}
    assert per_action["Walking"]["mpjpe_mm"] == pytest.approx(10.0, abs=1e-3)
    assert per_action["Eating"]["mpjpe_mm"] == pytest.approx(40.0, abs=1e-3)
    assert averages["mpjpe_mm"] == pytest.approx(25.0, abs=1e-3)  # over actions, not frames (16.7)
    assert averages["mpjpe_relative_mm"] == pytest.approx(0.0, abs=1e-3)  # a pure shift
    assert averages["p_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert averages["error_2d_px"] == pytest.approx(7.5, abs=1e-3)  # (5 + 10) / 2

    table = evaluation.format_table(per_action, averages, frames)
    assert table.splitlines()[-1].split() == ["Average", "25.0", "0.0", "0.0", "7.5", "9"]

    json_path, csv_path = evaluation.write_metrics(str(tmp_path), per_action, averages, frames,
                                                   weights="w.weights.h5", config="tiny")
    content = json.load(open(json_path))
    assert content["mpjpe_mm"] == pytest.approx(25.0, abs=1e-3)
    assert content["per_action"]["Eating"]["num_frames"] == 2
    assert (content["num_frames"], content["weights"], content["config"]) == (9, "w.weights.h5", "tiny")
    assert set(content) >= {"mpjpe_mm", "mpjpe_relative_mm", "p_mpjpe_mm", "error_2d_px", "per_action"}
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["action"] for r in rows] == ["Eating", "Walking", "Average"]
    assert float(rows[-1]["error_2d_px"]) == pytest.approx(7.5, abs=1e-3)

    np.testing.assert_array_equal(predictions.picture_rows, [0, 4, 8])
    np.testing.assert_array_equal(predictions.picture_images[2], dataset.unbatch().skip(8).take(1).get_single_element()[0]["images"].numpy())
    path_2d, path_3d = evaluation.draw_pictures(predictions, str(tmp_path / "imgs"))
    assert path_2d.endswith("imgs/kpts_preds.png") and path_3d.endswith("imgs/3d_prediction.png")


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
