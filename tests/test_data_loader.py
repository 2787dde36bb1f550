"""data_loader: crop geometry, frame/label alignment, streaming, training vs testing, bad input."""
import dataclasses
import re

import cv2
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

import data_loader
import h36m_utils

CROP = 64  # crop side of the tests: small keeps them fast


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def index(synthetic_dataset):
    """(sequences, cameras) of the synthetic set, both subjects."""
    sequences, _ = h36m_utils.find_sequences(str(synthetic_dataset.data_dir), str(synthetic_dataset.labels_dir),
                                             synthetic_dataset.subjects)
    assert len(sequences) >= 2
    return sequences, h36m_utils.load_cameras(str(synthetic_dataset.cameras_path))


def collect(dataset):
    """Unbatch a finished data set into numpy: dict name -> (N, ...) array."""
    parts = {}
    for element in dataset.as_numpy_iterator():
        for group in element:
            for name, value in group.items():
                parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


@pytest.fixture(scope="module")
def test_pass(index):
    """Everything a testing-mode pass over the synthetic set yields (stride 1), as numpy."""
    sequences, cameras = index
    return collect(data_loader.build_dataset(sequences, cameras, image_size=CROP, batch_size=5, training=False,
                                             with_metadata=True))


def decode_all(path):
    """(N, H, W, 3) BGR: every frame of a video, by plain sequential reading (the reference)."""
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return np.stack(frames)
        frames.append(frame)


def sequence_named(sequences, subject, name):
    return next(s for s in sequences if s.subject == subject and s.name == name)


# --------------------------------------------------------------------------- crop geometry (no files)

def test_box_edges_land_on_crop_pixel_edges():
    rng = np.random.default_rng()
    center, side, size = rng.uniform(-200, 1200, 2), rng.uniform(50, 900), int(rng.integers(32, 300))
    crop = data_loader.box_crop_matrix(center, side, size)
    corners = np.array([center - side / 2, center + side / 2])
    np.testing.assert_allclose(data_loader.apply_crop(corners, crop), [[-0.5, -0.5], [size - 0.5, size - 0.5]],
                               atol=1e-9)
    np.testing.assert_allclose(data_loader.apply_crop(center, crop), [(size - 1) / 2] * 2, atol=1e-9)


def test_joint_box_holds_every_joint_with_margin():
    rng = np.random.default_rng()
    points = rng.uniform(0, 1000, (32, 2))
    center, side = data_loader.joint_box(points, margin=0.2)
    assert side == pytest.approx(1.2 * np.ptp(points, axis=0).max())
    crop_points = data_loader.apply_crop(points, data_loader.box_crop_matrix(center, side, 100))
    assert crop_points.min() >= -0.5 + 100 * 0.1 / 1.2 - 1e-9 and crop_points.max() <= 99.5 - 100 * 0.1 / 1.2 + 1e-9
    # A degenerate pose (every joint on one pixel) still gives a finite, usable box.
    assert data_loader.joint_box(np.full((32, 2), 7.0), 0.2)[1] == data_loader.MIN_BOX_SIDE


def test_crop_outside_the_frame_is_padded_not_clamped():
    rng = np.random.default_rng()
    frame = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    # Scale 1, integer offset hanging over the top-left corner: the crop is a padded slice of the frame.
    crop = h36m_utils.crop_matrix(1.0, -7, -3)
    padded = np.pad(frame, ((3, 30), (7, 30), (0, 0)))
    np.testing.assert_array_equal(data_loader.crop_frame(frame, crop, 32), padded[:32, :32, ::-1])


def test_scaled_crop_matches_bilinear_reference():
    rng = np.random.default_rng()
    frame = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (5, 5), 2)
    scale, ox, oy, size = 1.7, 60.3, -9.6, 48  # the box runs off the right and top edges
    image = data_loader.crop_frame(frame, h36m_utils.crop_matrix(scale, ox, oy), size)
    # Crop pixel (x, y) shows frame point (x / s + ox, y / s + oy): scipy's bilinear, zero outside.
    ys, xs = np.mgrid[0:size, 0:size] / scale + np.array([oy, ox])[:, None, None]
    reference = np.stack([scipy.ndimage.map_coordinates(frame[..., c].astype(float), [ys, xs], order=1,
                                                        mode="grid-constant", cval=0) for c in (2, 1, 0)], -1)
    # OpenCV rounds sample positions to 1/32 pixel and weights to fixed point: a few levels at steep edges.
    assert np.abs(image - reference).max() <= 4 and np.abs(image - reference).mean() < 0.5
    assert (image[:, -5:] == 0).all() and (image[:5] == 0).all()  # padding, not stretched border pixels


# --------------------------------------------------------------------------- on the synthetic set

def test_shapes_dtypes_and_every_frame_once(index, test_pass):
    sequences, _ = index
    views, joints = len(h36m_utils.CAMERA_IDS), len(h36m_utils.J17)
    n = data_loader.count_frames(sequences)
    expected = {"images": ((n, views, CROP, CROP, 3), np.uint8), "P": ((n, views, 3, 4), np.float32),
                "K": ((n, views, 3, 3), np.float32), "dist": ((n, views, 5), np.float32),
                "kp2d": ((n, views, joints, 2), np.float32), "kp3d": ((n, joints, 3), np.float32),
                "subject": ((n,), object), "action": ((n,), object), "sequence": ((n,), object),
                "frame": ((n,), np.int32)}
    assert {name: (value.shape, value.dtype) for name, value in test_pass.items()} == expected
    seen = sorted(zip(test_pass["subject"], test_pass["sequence"], test_pass["frame"]))
    assert seen == sorted((s.subject.encode(), s.name.encode(), f) for s in sequences for f in range(s.num_frames))


def test_targets_are_the_labels_of_the_same_frame(index, test_pass):
    sequences, cameras = index
    for i in np.random.default_rng().choice(len(test_pass["frame"]), 12, replace=False):
        sequence = sequence_named(sequences, test_pass["subject"][i].decode(), test_pass["sequence"][i].decode())
        frame = test_pass["frame"][i]
        assert test_pass["action"][i].decode() == sequence.action
        np.testing.assert_allclose(test_pass["kp3d"][i], h36m_utils.read_poses(sequence.d3_path)[frame, h36m_utils.J17],
                                   rtol=1e-6)
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            camera = cameras[sequence.subject][camera_id]
            label = h36m_utils.read_poses(sequence.d2_paths[camera_id])[frame, h36m_utils.J17]
            # The crop's own K says how it maps frame pixels: K_crop K^-1 is the crop matrix.
            crop = test_pass["K"][i, view].astype(np.float64) @ np.linalg.inv(camera.K)
            np.testing.assert_allclose(data_loader.apply_crop(label, crop), test_pass["kp2d"][i, view], atol=2e-3)
            np.testing.assert_allclose(test_pass["dist"][i, view], camera.dist, rtol=1e-6)


def test_crop_cameras_reproduce_the_2d_targets_from_the_3d_targets(index, test_pass):
    sequences, cameras = index
    pick = np.random.default_rng().choice(len(test_pass["frame"]), 20, replace=False)
    for i in pick:
        camera_views = cameras[test_pass["subject"][i].decode()]
        X = np.concatenate([test_pass["kp3d"][i], np.ones((len(h36m_utils.J17), 1))], axis=1).astype(np.float64)
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            P, K = test_pass["P"][i, view].astype(np.float64), test_pass["K"][i, view].astype(np.float64)
            camera = camera_views[camera_id]
            np.testing.assert_allclose(P / np.abs(P).max(), K @ np.c_[camera.R, camera.t] / np.abs(P).max(),
                                       atol=1e-6)
            pinhole = X @ P.T
            normalized = (pinhole[:, :2] / pinhole[:, 2:]) @ np.linalg.inv(K[:2, :2]).T - np.linalg.solve(
                K[:2, :2], K[:2, 2])
            dist = test_pass["dist"][i, view]
            distorted = h36m_utils.distort_normalized(normalized, dist[:3], dist[3:]) @ K[:2, :2].T + K[:2, 2]
            # Labels are float32 CDF values of mm-scale 3D points: agreement to well under a crop pixel.
            np.testing.assert_allclose(distorted, test_pass["kp2d"][i, view], atol=0.02)


def test_testing_crops_hold_every_joint(test_pass):
    kp2d = test_pass["kp2d"]
    assert kp2d.min() > -0.5 and kp2d.max() < CROP - 0.5


def test_image_of_element_i_is_video_frame_i(index, test_pass):
    """Label i belongs to video frame i: the crop cut with label i's box is frame i, not i - 1 or i + 1."""
    sequences, _ = index
    sequence = max(sequences, key=lambda s: s.num_frames)
    rows = np.flatnonzero((test_pass["subject"] == sequence.subject.encode())
                          & (test_pass["sequence"] == sequence.name.encode()))
    for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
        frames = decode_all(sequence.videos[camera_id])
        camera = index[1][sequence.subject][camera_id]
        for row in rows[1:-1]:
            i = test_pass["frame"][row]
            crop = test_pass["K"][row, view].astype(np.float64) @ np.linalg.inv(camera.K)
            shown = test_pass["images"][row, view].astype(int)
            error = [np.abs(data_loader.crop_frame(frames[j], crop, CROP).astype(int) - shown).mean()
                     for j in (i - 1, i, i + 1)]
            # Not exactly 0: the reference crop comes from the float32 K, rounded.
            assert error[1] < 0.05 and min(error[0], error[2]) > 0.2, (camera_id, i, error)


def whiteness(images, points):
    """(N, S, S, 3) uint8, (N, J, 2) crop pixels -> (N, J): darkest channel, bilinear at each point."""
    values = [scipy.ndimage.map_coordinates(image.min(axis=-1).astype(float), [p[:, 1], p[:, 0]], order=1, cval=0)
              for image, p in zip(images, points)]
    return np.stack(values)


def test_label_i_marks_the_joints_drawn_in_frame_i(index, test_pass):
    """The synthetic renderer puts a white ball on every joint: labels i, not i +- 1, sit on them.

    Only joints that move more than 2 crop pixels (about a ball's diameter) from frame i to the
    other frame can tell the frames apart, so only those are compared.
    """
    sequences, cameras = index
    on_label, on_other = [], []
    for sequence in sequences:
        rows = np.flatnonzero((test_pass["subject"] == sequence.subject.encode())
                              & (test_pass["sequence"] == sequence.name.encode()))
        rows = rows[(test_pass["frame"][rows] >= 2) & (test_pass["frame"][rows] < sequence.num_frames - 2)]
        frames = test_pass["frame"][rows]
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            labels = h36m_utils.read_poses(sequence.d2_paths[camera_id])[:, h36m_utils.J17]
            crops = test_pass["K"][rows, view].astype(np.float64) @ np.linalg.inv(cameras[sequence.subject][camera_id].K)
            images = test_pass["images"][rows, view]
            label_points = [data_loader.apply_crop(labels[f], c) for f, c in zip(frames, crops)]
            for shift in (-2, -1, 1, 2):
                other_points = [data_loader.apply_crop(labels[f + shift], c) for f, c in zip(frames, crops)]
                moved = np.linalg.norm(np.stack(other_points) - np.stack(label_points), axis=-1) > 2
                on_label.append(whiteness(images, label_points)[moved])
                on_other.append(whiteness(images, other_points)[moved])
    on_label, on_other = np.concatenate(on_label), np.concatenate(on_other)
    assert len(on_label) > 200
    assert on_label.mean() > 180 and on_label.mean() > on_other.mean() + 40, (on_label.mean(), on_other.mean())


# --------------------------------------------------------------------------- stride, training, sharding

def test_testing_stride_reads_every_stride_th_frame_in_a_fixed_order(index):
    sequences, cameras = index
    build = lambda: data_loader.build_dataset(sequences, cameras, image_size=16, batch_size=7, training=False,
                                              stride=5, with_metadata=True)
    first, second = collect(build()), collect(build())
    seen = sorted(zip(first["subject"], first["sequence"], first["frame"]))
    assert seen == sorted((s.subject.encode(), s.name.encode(), f) for s in sequences
                          for f in range(0, s.num_frames, 5))
    assert len(seen) == data_loader.count_frames(sequences, stride=5)
    for name in first:  # evaluation is deterministic: same order, same crops
        np.testing.assert_array_equal(first[name], second[name])


def take_training(sequences, cameras, batches, seed, stride=1, parallel=2, shuffle_buffer=8):
    dataset = data_loader.build_dataset(sequences, cameras, image_size=16, batch_size=4, training=True, stride=stride,
                                        seed=seed, with_metadata=True, parallel_sequences=parallel,
                                        shuffle_buffer=shuffle_buffer)
    return collect(dataset.take(batches))


def by_frame(elements):
    """(subject, sequence, frame) -> (V, 3, 3) crop K of a collected pass."""
    keys = zip(elements["subject"], elements["sequence"], elements["frame"])
    return {key: K for key, K in zip(keys, elements["K"])}


def test_training_jitters_crops_repeats_and_keeps_stride_phase(index, test_pass):
    sequences, cameras = index
    short = sorted(sequences, key=lambda s: s.num_frames)[:2]
    per_pass = data_loader.count_frames(short, stride=3)
    first = take_training(short, cameras, batches=per_pass // 2 + 3, seed=1, stride=3)
    assert len(first["frame"]) > per_pass  # it repeats beyond one epoch, in full batches of 4
    assert data_loader.steps_per_epoch(short, batch_size=4, stride=3) == per_pass // 4
    # Crops are jittered around the deterministic testing ones: the box side by a factor in [0.9, 1.1].
    testing = by_frame(test_pass)
    zoom = np.concatenate([K[:, 0, 0] * CROP / (16 * testing[key][:, 0, 0]) for key, K in by_frame(first).items()])
    assert zoom.min() >= 1 / 1.1 - 1e-4 and zoom.max() <= 1 / 0.9 + 1e-4 and np.ptp(zoom) > 0.1
    assert first["kp2d"].min() > -0.5 and first["kp2d"].max() < 16 - 0.5  # jitter keeps every joint in view
    # One sequence at a time (no interleaving to reorder): the same seed gives the same stream, another does not.
    again, same, other = (take_training(short, cameras, batches=5, seed=s, stride=3, parallel=1) for s in (1, 1, 2))
    for name in again:
        np.testing.assert_array_equal(again[name], same[name])
    assert not np.array_equal(again["K"], other["K"])


def test_training_reads_each_visit_forward_from_a_random_stride_phase(index):
    sequences, cameras = index
    short = sorted(sequences, key=lambda s: s.num_frames)[:2]
    lengths = {s.name.encode(): s.num_frames for s in short}
    # One sequence at a time and no shuffle buffer: the stream is the visits one after another.
    stream = take_training(short, cameras, batches=3 * data_loader.steps_per_epoch(short, 4, stride=3), seed=3,
                           stride=3, parallel=1, shuffle_buffer=1)
    visits = []
    for name, frame in zip(stream["sequence"], stream["frame"]):
        if not visits or visits[-1][0] != name or frame <= visits[-1][1][-1]:
            visits.append((name, []))
        visits[-1][1].append(frame)
    for name, frames in visits[:-1]:  # the last visit may be cut short by take()
        assert frames[0] < 3 and frames == list(range(frames[0], lengths[name], 3))
    assert len({frames[0] for _, frames in visits}) > 1


def test_input_context_shards_sequences_between_pipelines(index):
    sequences, cameras = index
    shards = [collect(data_loader.build_dataset(
        sequences, cameras, image_size=8, batch_size=16, training=False, stride=10, with_metadata=True,
        input_context=tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=k))) for k in (0, 1)]
    names = [set(zip(shard["subject"], shard["sequence"])) for shard in shards]
    assert not names[0] & names[1] and names[0] | names[1] == {(s.subject.encode(), s.name.encode()) for s in sequences}


def test_works_under_a_distribution_strategy(index):
    sequences, cameras = index
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dataset = data_loader.build_dataset(sequences[:2], cameras, image_size=8, batch_size=4, training=True)
    assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    inputs, targets = next(iter(strategy.experimental_distribute_dataset(dataset)))
    assert inputs["images"].shape == (4, 4, 8, 8, 3) and targets["kp3d"].shape == (4, 17, 3)
    from_function = strategy.distribute_datasets_from_function(lambda context: data_loader.build_dataset(
        sequences, cameras, image_size=8, batch_size=context.get_per_replica_batch_size(4), training=True,
        input_context=context))
    assert next(iter(from_function))[0]["P"].shape == (4, 4, 3, 4)


# --------------------------------------------------------------------------- bad input

def first_batch(sequences, cameras):
    dataset = data_loader.build_dataset(sequences, cameras, image_size=8, batch_size=2, training=False)
    return next(iter(dataset))


def with_video(sequence, camera_id, path):
    return dataclasses.replace(sequence, videos={**sequence.videos, camera_id: str(path)})


def test_corrupt_video_raises_naming_the_file(index, tmp_path):
    sequences, cameras = index
    bad = tmp_path / "Walking 1.58860488.mp4"
    bad.write_bytes(np.random.default_rng().integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(Exception, match=f"Cannot open video {re.escape(str(bad))}.*corrupt"):
        first_batch([with_video(sequences[0], "58860488", bad)], cameras)


def test_truncated_video_raises_naming_the_file(index, tmp_path):
    sequences, cameras = index
    sequence = sequences[0]
    source = sequence.videos["55011271"]
    # An mp4 cut in half: OpenCV may refuse it outright or stop early; either way the file is named.
    halved = tmp_path / "halved.mp4"
    data = open(source, "rb").read()
    halved.write_bytes(data[:len(data) // 2])
    with pytest.raises(Exception, match=f"video {re.escape(str(halved))}.*(corrupt|truncated)"):
        first_batch([with_video(sequence, "55011271", halved)], cameras)
    # A valid video with fewer frames than the index expects.
    frames, short = decode_all(source)[:10], tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"mp4v"), 50, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    dataset = data_loader.build_dataset([with_video(sequence, "55011271", short)], cameras, image_size=8,
                                        batch_size=4, training=False)
    with pytest.raises(Exception, match=f"Video {re.escape(str(short))} is truncated or corrupt: it ended after 10 frames"):
        for _ in dataset:
            pass


def test_labels_shorter_than_the_index_or_of_the_wrong_kind_raise_naming_the_file(index):
    sequences, cameras = index
    sequence = sequences[0]
    with pytest.raises(Exception, match=f"Labels {re.escape(sequence.d3_path)} hold {sequence.num_frames} frames"):
        first_batch([dataclasses.replace(sequence, num_frames=sequence.num_frames + 5)], cameras)
    swapped = dataclasses.replace(sequence, d2_paths={**sequence.d2_paths, "54138969": sequence.d3_path})
    with pytest.raises(Exception, match=f"Labels {re.escape(sequence.d3_path)} hold 3D points where 2D"):
        first_batch([swapped], cameras)


def test_camera_file_that_does_not_match_raises(index):
    sequences, cameras = index
    subject = sequences[0].subject
    with pytest.raises(ValueError, match=f"no subject {subject}"):
        data_loader.build_dataset(sequences, {s: c for s, c in cameras.items() if s != subject}, image_size=8,
                                  batch_size=2, training=False)
    wrong_size = {subject: {cid: dataclasses.replace(cam, width=cam.width + 2) for cid, cam in cameras[subject].items()}}
    with pytest.raises(Exception, match="camera file says"):
        first_batch(sequences[:1], wrong_size)
    with pytest.raises(ValueError, match="No sequences"):
        data_loader.build_dataset([], cameras, image_size=8, batch_size=2, training=False)
