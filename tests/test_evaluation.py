"""evaluation.py: per-frame metrics, the averages over actions and over frames, the files and pictures."""
import csv
import dataclasses
import json
import shutil

import keras
import numpy as np
import pytest

import data_loader
import evaluation
import h36m_utils
from common import geometry
from common import metrics
from common import skeleton
import model
from common import rig_frame
from synthetic import label_files

V, J, S = 4, len(skeleton.J17), 32


class OracleModel:
    """A stand-in model that knows the answer: for each call, the next B frames' 3D labels (in the
    rig frame the model works in) moved by a per-frame offset; its 2D joints are the projection of
    the labels through the call's own crop cameras, so they are exact wherever the crops are."""

    def __init__(self, kp3d_rig, offsets):
        self.kp3d, self.offsets, self.cursor = kp3d_rig, offsets, 0

    def predict_on_batch(self, inputs):
        count = real_samples(inputs["P"])
        kp3d = self.kp3d[self.cursor:self.cursor + count]
        offsets = self.offsets[self.cursor:self.cursor + count, None]
        self.cursor += count
        kp2d = [[project(P, K, dist, joints) for P, K, dist in zip(*(inputs[k][b] for k in ("P", "K", "dist")))]
                for b, joints in enumerate(kp3d)]
        padding = len(inputs["P"]) - count  # the loop pads a short last chunk with its last sample
        kp3d, kp2d = kp3d + offsets, np.asarray(kp2d)
        return {"kp3d": np.concatenate([kp3d, np.repeat(kp3d[-1:], padding, 0)]).astype(np.float32),
                "kp2d": np.concatenate([kp2d, np.repeat(kp2d[-1:], padding, 0)]).astype(np.float32)}


def real_samples(P: np.ndarray) -> int:
    """The samples of a (B, V, 3, 4) batch before the copies of its last one that pad it."""
    count = len(P)
    while count > 1 and np.array_equal(P[count - 1], P[count - 2]):
        count -= 1
    return count


def project(P, K, dist, points):
    """(J, 3) mm through a crop camera (P, K, dist as the model's inputs) -> (J, 2) distorted crop px."""
    pinhole = np.c_[points, np.ones(len(points))] @ P.astype(np.float64).T
    normalized = (pinhole[:, :2] / pinhole[:, 2:] - K[:2, 2]) @ np.linalg.inv(K[:2, :2].astype(np.float64)).T
    return geometry.distort_normalized(normalized, dist[:3], dist[3:5], dist[5]) @ K[:2, :2].T + K[:2, 2]


def protocol_truth(dataset, subjects, stride):
    """(sequences, cameras, 3D labels of every protocol frame in the rig frame (N, J, 3), actions (N,))."""
    sequences, _ = h36m_utils.find_sequences(str(dataset.data_dir), str(dataset.labels_dir), subjects)
    cameras = h36m_utils.load_cameras(str(dataset.cameras_path))
    kp3d, actions = [], []
    for sequence in sequences:
        frames = np.arange(0, sequence.num_frames, stride)
        rig = rig_frame.rig_frame(cameras[sequence.subject][c] for c in h36m_utils.CAMERA_IDS)
        kp3d.append(rig.to_rig(evaluation.sequence_labels(sequence, frames)[0]))
        actions += [sequence.action] * len(frames)
    return sequences, cameras, np.concatenate(kp3d), np.array(actions)


def test_protocol_streams_every_frame_and_scores_what_the_model_says(synthetic_dataset):
    """An exact model moved by a per-action offset: the protocol counts every stride-th frame, and
    its MPJPE is the offset, its 2D errors (crop and full-frame pixels) and root error zero."""
    sequences, cameras, kp3d, actions = protocol_truth(synthetic_dataset, ("S11",), stride=4)
    assert len(kp3d) == data_loader.count_frames(sequences, 4)
    offsets = np.where(actions[:, None] == "Walking", [10.0, 0, 0], [0, 0, 40.0])
    network = OracleModel(kp3d, offsets)
    predictions = evaluation.predict(network, sequences, cameras, stride=4, image_size=S, box_mm=2000.0,
                                     root="labels", batch_size=3, progress=False)
    assert network.cursor == len(kp3d) == len(predictions)
    summary = evaluation.summarize(predictions)
    walking = summary.per_action["Walking"]
    assert walking["mpjpe_mm"] == pytest.approx(10.0, abs=1e-3) and walking["mpjpe_relative_mm"] < 1e-3
    assert summary.per_action["Directions"]["mpjpe_mm"] == pytest.approx(40.0, abs=1e-3)
    for key in ("error_2d_px", "error_2d_frame_px", "root_error_mm"):
        assert summary.over_frames[key] < 0.02, key  # exact up to float32
    assert np.ptp(predictions.kp2d_pred_frame) > np.ptp(predictions.kp2d_pred)  # frame px, not crop px
    np.testing.assert_array_equal(predictions.picture_rows, evaluation.picture_rows(len(kp3d), 3))
    assert predictions.picture_images.shape == (3, V, S, S, 3)


def test_protocol_writes_predictions_for_other_tools(synthetic_dataset, tmp_path):
    sequences, cameras, kp3d, actions = protocol_truth(synthetic_dataset, ("S11",), stride=8)
    predictions = evaluation.predict(OracleModel(kp3d, np.zeros((len(kp3d), 3))), sequences, cameras, stride=8,
                                     image_size=S, box_mm=2000.0, root="labels", progress=False)
    npz, table = evaluation.write_predictions(str(tmp_path), predictions)
    content = np.load(npz)
    assert content["joints_3d"].shape == (len(kp3d), J, 3) and content["joints_2d"].shape == (len(kp3d), V, J, 2)
    np.testing.assert_allclose(content["joints_3d"], predictions.kp3d_true, atol=1e-2)  # world mm, not rig
    assert list(content["subject"]) == ["S11"] * len(kp3d) and set(content["sequence"]) == {s.name for s in sequences}
    np.testing.assert_array_equal(content["frame"], predictions.frames)
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == len(kp3d) * J and rows[0]["subject"] == "S11"


def test_non_finite_prediction_is_an_error_naming_the_frame(synthetic_dataset):
    sequences, cameras, kp3d, actions = protocol_truth(synthetic_dataset, ("S11",), stride=8)
    offsets = np.zeros((len(kp3d), 3))
    offsets[7] = np.nan
    index = 7 - len(np.arange(0, sequences[0].num_frames, 8))  # frame row 7 falls in the second sequence
    with pytest.raises(FloatingPointError, match=f"test frame 7 .*S11 '{sequences[1].name}' frame {8 * index}"):
        evaluation.predict(OracleModel(kp3d, offsets), sequences, cameras, stride=8, image_size=S, box_mm=2000.0,
                           root="labels", progress=False)


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
        kp2d_true=kp2d_true, kp2d_pred_frame=2 * kp2d_true + rng.normal(size=kp2d_true.shape) * sigma_2d[:, None, None, None],
        kp2d_true_frame=2 * kp2d_true, root=kp3d_true[:, 0] + sigma_3d[:, None] * [0.6, 0.0, 0.8],
        first_root=kp3d_true[:, 0], subjects=np.array(["S9"] * n), actions=actions,
        sequences=np.array([f"{a} 1" for a in actions]), frames=np.arange(n),
        picture_images=np.zeros((0, V, S, S, 3), np.uint8), picture_rows=np.zeros(0, int),
        visible=np.full((n, V, J), np.nan))


def expected_averages(p):
    """({metric: mean over actions}, {metric: mean over frames}), computed here with numpy."""
    def errors(pred, true):
        return np.linalg.norm(pred - true, axis=-1).mean(axis=-1)

    def relative(x):
        return x - x[:, :1]  # the pelvis is joint 0

    per_frame = {"mpjpe_mm": errors(p.kp3d_pred, p.kp3d_true),
                 "mpjpe_relative_mm": errors(relative(p.kp3d_pred), relative(p.kp3d_true)),
                 # Only the per-frame value comes from h36m_utils (tested in test_h36m_utils).
                 "p_mpjpe_mm": metrics.p_mpjpe(p.kp3d_pred, p.kp3d_true),
                 "error_2d_px": errors(p.kp2d_pred, p.kp2d_true).mean(axis=-1),
                 "error_2d_frame_px": errors(p.kp2d_pred_frame, p.kp2d_true_frame).mean(axis=-1),
                 "root_error_mm": np.linalg.norm(p.root - p.kp3d_true[:, 0], axis=-1)}
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

    title, *lines = evaluation.format_table(summary, "estimated").splitlines()
    assert title.startswith("--root estimated: crops around the root found in the videos")
    assert "LABELLED" in evaluation.format_table(summary, "labels").splitlines()[0]
    assert len({len(line) for line in lines}) == 1  # every row aligned with the header
    assert [line.split()[0] for line in lines[2:5]] == ["Eating", "Phoning", "Walking"]
    assert set(lines[5]) == {"-"} and len(lines) == 8
    for line, label, expected in ((lines[6], "Avg (actions)", over_actions),
                                  (lines[7], "Avg (frames)", over_frames)):
        assert line[:14].rstrip() == label
        assert line[14:].split() == [f"{expected[key]:.1f}" for key in keys] + ["10"]

    weights_info = {"file": "best.weights.h5", "epoch": 7,
                    "selected_by": "lowest val_kp3d_mpjpe on held-out S8 trials"}
    scored = [{"subject": "S9", "action": a, "sequence": f"{a} 1", "trial": 1, "num_frames": n} for a, n in COUNTS.items()]
    json_path, csv_path = evaluation.write_metrics(
        str(tmp_path), summary, weights="best.weights.h5", config="tiny", root="estimated",
        covered=evaluation.Coverage(scored=scored, left_out=[], excluded=[]),
        weights_info=weights_info, extra={"test_stride": 64})
    content = json.load(open(json_path))
    for key in keys:
        assert content[key] == pytest.approx(over_actions[key], rel=1e-9)  # top level: as before
        assert content["average_over_actions"][key] == pytest.approx(over_actions[key], rel=1e-9)
        assert content["average_over_frames"][key] == pytest.approx(over_frames[key], rel=1e-9)
    assert "mean over actions" in content["averages_note"] and "Iskakov" in content["averages_note"]
    assert content["weights_info"] == weights_info and content["root"] == "estimated"
    assert (content["num_frames"], content["test_stride"]) == (10, 64)
    assert {a: v["num_frames"] for a, v in content["per_action"].items()} == COUNTS
    assert content["coverage"] == "complete: 3 of 3 sequences" and content["complete"] is True
    assert content["sequences"] == scored and content["sequences_left_out"] == []

    rows = list(csv.reader(open(csv_path)))
    extra = list(evaluation.CSV_SEQUENCE_COLUMNS)
    assert rows[0] == ["action"] + keys + ["num_frames", "root"] + extra
    assert [row[0] for row in rows[1:]] == ["Walking", "Eating", "Phoning", "Eating", "Phoning", "Walking",
                                            "Average over actions", "Average over frames"]
    assert rows[1][-len(extra) - 2:] == ["6", "estimated", "complete: 3 of 3 sequences", "S9", "Walking 1", "1", "scored"]
    for row, expected in ((rows[-2], over_actions), (rows[-1], over_frames)):
        assert [float(v) for v in row[1:-2 - len(extra)]] == pytest.approx([expected[k] for k in keys], abs=5e-4)
        assert row[-2 - len(extra):-len(extra)] == ["10", "estimated"]


def test_extra_field_may_not_overwrite_a_protocol_key(tmp_path):
    summary = evaluation.summarize(noisy_predictions(np.random.default_rng(1)))
    with pytest.raises(ValueError, match=r"\['average_over_frames', 'weights'\]"):
        evaluation.write_metrics(str(tmp_path), summary, weights="w.weights.h5", config="tiny", root="labels",
                                 covered=evaluation.Coverage([], [], []),
                                 extra={"weights": "other", "average_over_frames": {}})
    assert not (tmp_path / "metrics.json").exists()


def test_picture_rows_spread_over_the_set():
    np.testing.assert_array_equal(evaluation.picture_rows(100, 3), [0, 50, 99])
    np.testing.assert_array_equal(evaluation.picture_rows(2, 3), [0, 1])


def moved_labels(dataset, folder):
    """A copy of the set's labels with EVERY joint (the pelvis included) of every D3 and D2 file moved."""
    shutil.copytree(dataset.labels_dir, folder)
    rng = np.random.default_rng(0)
    for path in [*folder.rglob("D3_Positions/*.cdf"), *folder.rglob("D2_Positions/*.cdf")]:
        poses = h36m_utils.read_poses(str(path))
        label_files.write_pose_cdf(path, poses + rng.normal(0, 80 if poses.shape[-1] == 3 else 30, poses.shape))
    return folder


def test_estimated_root_predictions_never_see_a_label(synthetic_dataset, tmp_path):
    """With the root found in the videos, moving every label (the pelvis too) changes the scores but
    not one predicted number: crops, roots and joints come from pixels and cameras alone."""
    keras.utils.set_random_seed(0)
    network = model.build_model("tiny", num_views=V)
    cameras = h36m_utils.load_cameras(str(synthetic_dataset.cameras_path))
    results = []
    for labels in (synthetic_dataset.labels_dir, moved_labels(synthetic_dataset, tmp_path / "Labels")):
        sequences, _ = h36m_utils.find_sequences(str(synthetic_dataset.data_dir), str(labels), ("S11",))
        results.append(evaluation.predict(network, sequences[:3], cameras, stride=8, image_size=128, box_mm=2000.0,
                                          root="estimated", refinements=1, progress=False))
    original, moved = results
    for name in ("kp3d_pred", "kp2d_pred", "kp2d_pred_frame", "root", "first_root"):
        np.testing.assert_array_equal(getattr(moved, name), getattr(original, name), err_msg=name)
    assert np.abs(moved.kp3d_true - original.kp3d_true).min() > 0  # the labels did move
    labelled = evaluation.predict(network, sequences[:3], cameras, stride=8, image_size=128, box_mm=2000.0,
                                  root="labels", progress=False)
    assert not np.array_equal(labelled.root, moved.root)  # a root from the labels would follow them


def test_a_partial_test_says_so_in_the_table_json_and_csv_and_lists_every_sequence(synthetic_dataset, tmp_path):
    """Guards "complete or named" in the outputs: S11 with one sequence's video cut short (fewer
    frames scored than the index holds) and one sequence left out (a file not downloaded) is
    "partial: N of M sequences" in the table, metrics.json and metrics.csv, which list every
    sequence scored (subject, action, trial, frames) and every one left out with the reason; the
    check after writing is an error naming them unless partial results are allowed."""
    sequences, cameras, kp3d, actions = protocol_truth(synthetic_dataset, ("S11",), stride=8)
    predictions = evaluation.predict(OracleModel(kp3d, np.zeros((len(kp3d), 3))), sequences, cameras, stride=8,
                                     image_size=S, box_mm=2000.0, root="labels", progress=False)
    cut = sequences[1]
    keep = ~((predictions.sequences == cut.name) & (predictions.frames >= 16))  # as if its video ended at frame 16
    shortened = evaluation.Predictions(**{f.name: getattr(predictions, f.name)[keep] if f.name not in (
        "picture_images", "picture_rows") else getattr(predictions, f.name) for f in dataclasses.fields(predictions)})
    report = h36m_utils.IndexReport(entries=[h36m_utils.ReportEntry("unusable", "S11", "Phoning 1", "missing video")])
    covered = evaluation.coverage(sequences, report, shortened, stride=8)
    total = len(sequences) + 1
    assert not covered.complete
    assert covered.describe() == f"partial: {len(sequences) - 1} of {total} sequences (1 cut short; 1 left out)"
    summary = evaluation.summarize(shortened)
    table = evaluation.format_table(summary, "labels", covered)
    assert covered.describe() in table and "left out: S11 Phoning 1: missing video" in table
    assert f"cut short: S11 {cut.name}: a video ended before its container says: 2 of the" in table
    json_path, csv_path = evaluation.write_metrics(str(tmp_path), summary, weights="w.weights.h5", config="tiny",
                                                   root="labels", covered=covered)
    content = json.load(open(json_path))
    assert content["coverage"] == covered.describe() and content["complete"] is False
    assert [(r["subject"], r["action"], r["sequence"]) for r in content["sequences"]] == [
        (s.subject, s.action, s.name) for s in sequences]
    assert sum(r["num_frames"] for r in content["sequences"]) == content["num_frames"] == len(shortened)
    assert content["sequences_left_out"] == [{"subject": "S11", "sequence": "Phoning 1", "reason": "missing video"}]
    rows = list(csv.DictReader(open(csv_path)))
    assert all(row["coverage"] == covered.describe() for row in rows)
    assert [row["sequence"] for row in rows if row["sequence"]] == [s.name for s in sequences] + ["Phoning 1"]
    assert rows[len(sequences)]["note"] == "left out: missing video" and rows[len(sequences)]["action"] == "Phoning"
    with pytest.raises(h36m_utils.IncompleteDataError, match=f"(?s)partial.*{cut.name}.*--allow-partial"):
        evaluation.require_complete(covered, str(tmp_path), allow_partial=False)
    evaluation.require_complete(covered, str(tmp_path), allow_partial=True)
