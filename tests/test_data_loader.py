"""data_loader: frame/label alignment, root-centred crops, augmentation geometry, i.i.d. batches, sharding, bad input.

The crops come through the crop cache (``crop_cache``), which is built on first use into the
session's temporary cache folder (``conftest.crop_cache_dir``).
"""
import dataclasses
import re
import shutil

import cv2
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from pipeline import crop_augmentation
from pipeline import crop_cache
from common import crops
import data_loader
import h36m_utils
from common import geometry
from common import skeleton
from common import rig_frame
from synthetic import label_files
from synthetic import synthetic_h36m
from media_files import cut_after_header, with_video

CROP = 64  # crop side of the tests: small keeps them fast


# --------------------------------------------------------------------------- fixtures

def load_index(dataset, subjects=None):
    """(sequences, cameras) of a synthetic set."""
    sequences, _ = h36m_utils.find_sequences(str(dataset.data_dir), str(dataset.labels_dir),
                                             subjects or dataset.subjects)
    return sequences, h36m_utils.load_cameras(str(dataset.cameras_path))


@pytest.fixture(scope="module")
def index(synthetic_dataset):
    sequences, cameras = load_index(synthetic_dataset)
    assert len(sequences) >= 2
    return sequences, cameras


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


def take_training(sequences, cameras, batches, seed, size=CROP, **kwargs):
    dataset = data_loader.build_dataset(sequences, cameras, image_size=size, batch_size=4, training=True,
                                        seed=seed, with_metadata=True, **kwargs)
    return collect(dataset.take(batches))


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


def rows_of(elements, sequence):
    return np.flatnonzero((elements["subject"] == sequence.subject.encode())
                          & (elements["sequence"] == sequence.name.encode()))


def crop_of(K, camera):
    """The (3, 3) frame -> crop matrix that a crop's K says it is (``K_crop K^-1``)."""
    return K.astype(np.float64) @ np.linalg.inv(camera.K)


def by_key(elements):
    """(subject, sequence, frame) -> row of a collected pass."""
    return {key: row for row, key in enumerate(zip(elements["subject"], elements["sequence"], elements["frame"]))}


# --------------------------------------------------------------------------- what a testing pass holds

def test_shapes_dtypes_and_every_frame_once(index, test_pass):
    sequences, _ = index
    views, joints = len(h36m_utils.CAMERA_IDS), len(skeleton.J17)
    n = data_loader.count_frames(sequences)
    expected = {"images": ((n, views, CROP, CROP, 3), np.uint8), "P": ((n, views, 3, 4), np.float32),
                "K": ((n, views, 3, 3), np.float32), "dist": ((n, views, 6), np.float32),
                "kp2d": ((n, views, joints, 2), np.float32), "kp3d": ((n, joints, 3), np.float32),
                "view_mask": ((n, views), np.float32), "subject": ((n,), object), "action": ((n,), object),
                "sequence": ((n,), object), "frame": ((n,), np.int32), "view": ((n, views), np.int32),
                "crop": ((n, views, 3, 3), np.float64), "canonical": ((n, 4, 4), np.float64)}
    assert {name: (value.shape, value.dtype) for name, value in test_pass.items()} == expected
    seen = sorted(zip(test_pass["subject"], test_pass["sequence"], test_pass["frame"]))
    assert seen == sorted((s.subject.encode(), s.name.encode(), f) for s in sequences for f in range(s.num_frames))
    assert (test_pass["view_mask"] == 1).all() and (test_pass["view"] == np.arange(views)).all()


def test_targets_are_the_labels_of_the_same_frame(index, test_pass):
    sequences, cameras = index
    for i in np.random.default_rng().choice(len(test_pass["frame"]), 12, replace=False):
        sequence = sequence_named(sequences, test_pass["subject"][i].decode(), test_pass["sequence"][i].decode())
        frame = test_pass["frame"][i]
        assert test_pass["action"][i].decode() == sequence.action
        # 3D targets in the canonical frame: the rig frame of the subject's cameras.
        rig = rig_frame.rig_frame(cameras[sequence.subject][c] for c in h36m_utils.CAMERA_IDS)
        np.testing.assert_allclose(test_pass["canonical"][i], rig.matrix(), atol=1e-9)
        np.testing.assert_allclose(test_pass["kp3d"][i], rig.to_rig(h36m_utils.read_poses(sequence.d3_path)[
            frame, skeleton.J17]), atol=1e-3)
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            camera = cameras[sequence.subject][camera_id]
            label = h36m_utils.read_poses(sequence.d2_paths[camera_id])[frame, skeleton.J17]
            crop = crop_of(test_pass["K"][i, view], camera)
            np.testing.assert_allclose(test_pass["crop"][i, view], crop, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(geometry.apply_affine(label, crop), test_pass["kp2d"][i, view], atol=2e-3)
            np.testing.assert_allclose(test_pass["dist"][i, view], camera.dist, rtol=1e-6)


def reproject(P, K, dist, kp3d):
    """(J, 2) distorted crop pixels of (J, 3) mm through a crop's P, K (any affine) and distortion."""
    pinhole = np.c_[kp3d, np.ones(len(kp3d))] @ P.astype(np.float64).T
    normalized = (pinhole[:, :2] / pinhole[:, 2:] - K[:2, 2]) @ np.linalg.inv(K[:2, :2].astype(np.float64)).T
    return geometry.distort_normalized(normalized, dist[:3], dist[3:5], dist[5]) @ K[:2, :2].T + K[:2, 2]


def assert_cameras_reproduce_2d_from_3d(elements, cameras, count=20):
    """P, K, dist of every view project the 3D targets onto the 2D targets, and P is the view's
    camera (``view`` says which) seen from the canonical frame."""
    for i in np.random.default_rng().choice(len(elements["frame"]), count, replace=False):
        for view, camera_index in enumerate(elements["view"][i]):
            camera = cameras[elements["subject"][i].decode()][h36m_utils.CAMERA_IDS[camera_index]]
            P, K = elements["P"][i, view].astype(np.float64), elements["K"][i, view].astype(np.float64)
            world_P = P @ elements["canonical"][i]
            np.testing.assert_allclose(world_P / np.abs(world_P).max(), K @ np.c_[camera.R, camera.t] / np.abs(world_P).max(),
                                       atol=1e-6)
            np.testing.assert_allclose(K, elements["crop"][i, view] @ camera.K, rtol=1e-5, atol=1e-3)
            # Labels are float32 CDF values of mm-scale 3D points: agreement to well under a crop pixel.
            np.testing.assert_allclose(reproject(P, K, elements["dist"][i, view], elements["kp3d"][i]),
                                       elements["kp2d"][i, view], atol=0.02)


def test_crop_cameras_reproduce_the_2d_targets_from_the_3d_targets(index, test_pass):
    assert_cameras_reproduce_2d_from_3d(test_pass, index[1])


def test_testing_crops_are_two_metre_root_boxes_holding_every_joint(index, test_pass):
    sequences, cameras = index
    kp2d = test_pass["kp2d"]
    assert kp2d.min() > -0.5 and kp2d.max() < CROP - 0.5
    for i in np.random.default_rng().choice(len(test_pass["frame"]), 10, replace=False):
        sequence = sequence_named(sequences, test_pass["subject"][i].decode(), test_pass["sequence"][i].decode())
        pelvis = h36m_utils.read_poses(sequence.d3_path)[test_pass["frame"][i], skeleton.PELVIS]
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            camera = cameras[sequence.subject][camera_id]
            center, side = crops.root_box(pelvis, camera, 2000.0)
            np.testing.assert_allclose(crop_of(test_pass["K"][i, view], camera),
                                       crops.box_crop_matrix(center, side, CROP), rtol=1e-5, atol=1e-3)


def luma(image_rgb):
    """(S, S, 3) uint8 RGB -> (S, S) float brightness (JPEG keeps it at full resolution, unlike colour)."""
    return cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY).astype(float)


def test_image_of_element_i_is_video_frame_i(index, test_pass):
    """Label i belongs to video frame i: the crop cut with frame i's box is frame i, not i - 1 or i + 1.

    The cache stores JPEG, whose noise over the whole crop is as large as one frame's motion, so
    the brightness of the crops is compared where the three frames differ clearly (moving limbs).
    """
    sequences, cameras = index
    sequence = max(sequences, key=lambda s: s.num_frames)
    rows, compared = rows_of(test_pass, sequence), 0
    for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
        frames = decode_all(sequence.videos[camera_id])
        camera = cameras[sequence.subject][camera_id]
        for row in rows:
            i = test_pass["frame"][row]
            if not 0 < i < sequence.num_frames - 1:
                continue
            crop = crop_of(test_pass["K"][row, view], camera)
            candidates = [luma(crops.crop_frame(frames[j], crop, CROP)[..., ::-1]) for j in (i - 1, i, i + 1)]
            moving = (np.abs(candidates[1] - candidates[0]) + np.abs(candidates[1] - candidates[2])) > 30
            if moving.sum() < 20:
                continue  # (nearly) still: nothing tells the frames apart
            shown = luma(test_pass["images"][row, view])
            error = [np.abs(candidate - shown)[moving].mean() for candidate in candidates]
            assert error[1] < 0.4 * min(error[0], error[2]), (camera_id, i, error)
            compared += 1
    assert compared > 20


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
        rows = rows_of(test_pass, sequence)
        rows = rows[(test_pass["frame"][rows] >= 2) & (test_pass["frame"][rows] < sequence.num_frames - 2)]
        frames = test_pass["frame"][rows]
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            labels = h36m_utils.read_poses(sequence.d2_paths[camera_id])[:, skeleton.J17]
            crop_matrices = [crop_of(K, cameras[sequence.subject][camera_id]) for K in test_pass["K"][rows, view]]
            images = test_pass["images"][rows, view]
            label_points = [geometry.apply_affine(labels[f], c) for f, c in zip(frames, crop_matrices)]
            for shift in (-2, -1, 1, 2):
                other_points = [geometry.apply_affine(labels[f + shift], c) for f, c in zip(frames, crop_matrices)]
                moved = np.linalg.norm(np.stack(other_points) - np.stack(label_points), axis=-1) > 2
                on_label.append(whiteness(images, label_points)[moved])
                on_other.append(whiteness(images, other_points)[moved])
    on_label, on_other = np.concatenate(on_label), np.concatenate(on_other)
    assert len(on_label) > 200
    assert on_label.mean() > 170 and on_label.mean() > on_other.mean() + 40, (on_label.mean(), on_other.mean())


def test_testing_order_is_fixed_and_stride_keeps_every_stride_th_frame(index):
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


# --------------------------------------------------------------------------- protocol: crops from the root only

def move_labels(dataset, root, move_pelvis: bool):
    """A copy of the set's labels with every D2 label and every D3 joint but the pelvis moved
    (and the pelvis too when ``move_pelvis``); returns the new labels folder."""
    labels = root / "Labels"
    shutil.copytree(dataset.labels_dir, labels)
    rng = np.random.default_rng(0)
    for path in [*labels.rglob("D2_Positions/*.cdf"), *labels.rglob("D3_Positions/*.cdf")]:  # not Visibility/
        poses = h36m_utils.read_poses(str(path))
        moved = poses + rng.normal(0, 80 if poses.shape[-1] == 3 else 30, poses.shape)
        if poses.shape[-1] == 3 and not move_pelvis:
            moved[:, skeleton.PELVIS] = poses[:, skeleton.PELVIS]
        label_files.write_pose_cdf(path, moved)
    return labels


def protocol_pass(dataset, labels_dir, subjects=("S11",)):
    sequences, _ = h36m_utils.find_sequences(str(dataset.data_dir), str(labels_dir), subjects)
    cameras = h36m_utils.load_cameras(str(dataset.cameras_path))
    return collect(data_loader.build_dataset(sequences, cameras, image_size=32, batch_size=8, training=False,
                                             stride=3, with_metadata=True))


def test_test_crops_depend_on_the_pelvis_alone(synthetic_dataset, tmp_path):
    original = protocol_pass(synthetic_dataset, synthetic_dataset.labels_dir)
    others_moved = protocol_pass(synthetic_dataset, move_labels(synthetic_dataset, tmp_path / "a", False))
    pelvis_moved = protocol_pass(synthetic_dataset, move_labels(synthetic_dataset, tmp_path / "b", True))
    rows, moved_rows = by_key(original), by_key(others_moved)
    assert rows.keys() == moved_rows.keys()
    order = [moved_rows[key] for key in rows]
    for name in ("images", "P", "K", "dist"):
        np.testing.assert_array_equal(others_moved[name][order], original[name])  # bit for bit
    assert not np.allclose(others_moved["kp2d"][order], original["kp2d"])  # the labels did move
    order = [by_key(pelvis_moved)[key] for key in rows]
    assert not np.array_equal(pelvis_moved["images"][order], original["images"])  # so the test can fail


# --------------------------------------------------------------------------- training

JITTER = crop_augmentation.Augmentation(root_jitter_mm=(60.0, 40.0, 30.0))
RIG_AUGMENTATION = crop_augmentation.Augmentation(root_jitter_mm=(30.0, 30.0, 30.0), box_scale_jitter=0.15,
                                                  roll_deg=30.0, world_yaw=True, world_shift_mm=500.0,
                                                  view_subsets=True)


def crop_centres_root(elements, cameras, row):
    """(3,) world mm: the point every view's crop centre looks at (DLT of the undistorted centres)."""
    subject = elements["subject"][row].decode()
    rays = []
    for view, camera_index in enumerate(elements["view"][row]):
        camera = cameras[subject][h36m_utils.CAMERA_IDS[camera_index]]
        centre = np.linalg.solve(elements["crop"][row, view], [(CROP - 1) / 2, (CROP - 1) / 2, 1.0])[:2]
        u, v = geometry.undistort_points(centre, camera)
        P = geometry.projection_matrix(camera)
        rays += [u * P[2] - P[0], v * P[2] - P[1]]
    point = np.linalg.svd(np.array(rays))[2][-1]
    return point[:3] / point[3]


def test_training_crops_are_boxes_around_the_pelvis_moved_in_3d(index):
    """Every view's crop is centred on the projection of ONE 3D point, the labelled pelvis moved by
    a random offset with the configured spread; the box keeps its world size at that point."""
    sequences, cameras = index
    first = take_training(sequences, cameras, batches=25, seed=1, augmentation=JITTER)
    offsets = []
    for row in range(len(first["frame"])):
        sequence = sequence_named(sequences, first["subject"][row].decode(), first["sequence"][row].decode())
        pelvis = h36m_utils.read_poses(sequence.d3_path)[first["frame"][row], skeleton.PELVIS]
        root = crop_centres_root(first, cameras, row)
        rig = rig_frame.rig_frame(cameras[sequence.subject][c] for c in h36m_utils.CAMERA_IDS)
        offsets.append(rig.rotation @ (root - pelvis))
        for view, camera_id in enumerate(h36m_utils.CAMERA_IDS):
            center, side = crops.root_box(root, cameras[sequence.subject][camera_id], 2000.0)
            np.testing.assert_allclose(first["crop"][row, view], crops.box_crop_matrix(center, side, CROP),
                                       rtol=1e-4, atol=2e-3)
    spread = np.std(offsets, axis=0)
    assert np.all(spread > 0.6 * np.array(JITTER.root_jitter_mm)) and np.all(spread < 1.3 * np.array(JITTER.root_jitter_mm))
    assert np.abs(offsets).max() <= crop_augmentation.TRUNCATE_SIGMAS * 60.0 + 1
    assert_cameras_reproduce_2d_from_3d(first, cameras)
    # With a seed the stream is reproducible; another seed gives other samples and crops.
    again = take_training(sequences, cameras, 25, seed=1, augmentation=JITTER)
    other = take_training(sequences, cameras, 25, seed=2, augmentation=JITTER)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name])
    assert not np.array_equal(again["K"], other["K"])


def assert_pixels_follow_the_crop_matrix(elements, sequences, cameras, rows):
    """Each view is its video frame cut with the view's crop matrix, and fits it better than the
    same cut moved by half a pixel (JPEG and two resamplings blur it a little)."""
    for row in rows:
        sequence = sequence_named(sequences, elements["subject"][row].decode(), elements["sequence"][row].decode())
        for view, camera_index in enumerate(elements["view"][row]):
            camera_id = h36m_utils.CAMERA_IDS[camera_index]
            frame = decode_all(sequence.videos[camera_id])[elements["frame"][row]]
            errors = [np.abs(crops.crop_frame(frame, geometry.crop_matrix(1, dx, dy) @ elements["crop"][row, view],
                                              CROP)[..., ::-1].astype(int) - elements["images"][row, view]).mean()
                      for dx, dy in ((0, 0), (0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5))]
            assert errors[0] < 0.85 * min(errors[1:]), errors


def test_rig_augmentations_keep_pixels_cameras_and_targets_consistent(index):
    """Scaled and turned crops, a turned and moved canonical frame, random subsets of the views in a
    random order: the pixels, P, K, dist and both targets still agree exactly."""
    sequences, cameras = index
    first = take_training(sequences, cameras, batches=20, seed=3, augmentation=RIG_AUGMENTATION)
    assert_cameras_reproduce_2d_from_3d(first, cameras, count=30)
    assert_pixels_follow_the_crop_matrix(first, sequences, cameras, range(0, len(first["frame"]), 11))
    turned = np.degrees(np.arctan2(first["crop"][..., 1, 0], first["crop"][..., 0, 0]))
    assert np.abs(turned).max() <= 30.0 + 1e-6 and np.ptp(turned) > 40
    visible = first["view_mask"].sum(axis=1)
    assert set(visible.tolist()) == {2.0, 3.0, 4.0} and (np.sort(first["view"], axis=1) == np.arange(4)).all()
    assert len({tuple(order) for order in first["view"]}) > 5
    # The canonical frame stays upright (z up), turned about it and moved horizontally.
    rigs = [rig_frame.rig_frame(cameras[s.decode()][c] for c in h36m_utils.CAMERA_IDS) for s in first["subject"]]
    extra = np.stack([c @ np.linalg.inv(r.matrix()) for c, r in zip(first["canonical"], rigs)])
    np.testing.assert_allclose(extra[:, 2, :], np.tile([0, 0, 1, 0], (len(extra), 1)), atol=1e-9)
    assert np.abs(extra[:, :2, 3]).max() <= 500 + 1e-6 and np.ptp(np.arctan2(extra[:, 1, 0], extra[:, 0, 0])) > 3


def warped_by_the_reference(elements, sequences, cameras, image_size):
    """(N, V, S, S, 3) float64: every view of a collected stream sampled again from its cached crop,
    independently of the pipeline's warp: scipy's bilinear interpolation (black beyond the edge)
    at the cached pixel ``window^-1 p`` of every crop pixel p, in float64, unrounded."""
    config = crops.CropConfig(image_size)
    cache = crop_cache.ensure_cache(sequences, data_loader._cameras_per_sequence(sequences, cameras,
                                                                               h36m_utils.CAMERA_IDS),
                                    config, verbose=False)
    records = {}
    for record in tf.data.TFRecordDataset(list(cache.shards)):
        fields = crop_cache.parse_record(record, len(h36m_utils.CAMERA_IDS))
        records[fields["subject"].numpy(), fields["sequence"].numpy(), int(fields["frame"])] = fields
    column, row = np.meshgrid(np.arange(image_size, dtype=float), np.arange(image_size, dtype=float))
    crop_pixels = np.stack([column.ravel(), row.ravel(), np.ones(column.size)])  # (3, S * S)
    rows = []
    for row_index, key in enumerate(zip(elements["subject"], elements["sequence"], elements["frame"])):
        fields, views = records[key], elements["view"][row_index]
        for position, view in enumerate(views):
            cached = tf.io.decode_jpeg(fields["images"][view], channels=3).numpy().astype(float)
            window = elements["crop"][row_index, position] @ np.linalg.inv(fields["cache_crop"].numpy()[view])
            x, y, _ = np.linalg.solve(window, crop_pixels)
            rows.append(np.stack([scipy.ndimage.map_coordinates(cached[..., channel], [y, x], order=1,
                                                                mode="grid-constant", cval=0.0)
                                  for channel in range(3)], axis=-1).reshape(image_size, image_size, 3))
    return np.reshape(rows, elements["images"].shape)


@pytest.mark.parametrize("augmentation", [crop_augmentation.NO_AUGMENTATION, RIG_AUGMENTATION],
                         ids=["plain", "rig"])
def test_every_crop_is_the_bilinear_sample_of_its_cached_crop(index, augmentation):
    """Each view of a seeded stream is its cached crop sampled bilinearly at the crop matrix's
    inverse, rounded to the nearest grey level; the plain centre window (cut as a slice) is the
    same bytes as that sampling. A twin pass on one thread gives the same bytes (determinism)."""
    sequences, cameras = index
    stream = take_training(sequences[:2], cameras, batches=3, seed=4, augmentation=augmentation)
    reference = warped_by_the_reference(stream, sequences[:2], cameras, CROP)
    error = np.abs(stream["images"] - reference)
    assert error.max() <= 0.51, (error.max(), error.mean())
    if augmentation == crop_augmentation.NO_AUGMENTATION:
        np.testing.assert_allclose(stream["images"], reference, atol=1e-6)
    else:
        assert np.ptp(np.degrees(np.arctan2(stream["crop"][..., 1, 0], stream["crop"][..., 0, 0]))) > 10  # turned
    one_thread = tf.data.Options()
    one_thread.threading.private_threadpool_size = 1
    dataset = data_loader.build_dataset(sequences[:2], cameras, image_size=CROP, batch_size=4, training=True,
                                        seed=4, with_metadata=True, augmentation=augmentation)
    np.testing.assert_array_equal(collect(dataset.with_options(one_thread).take(3))["images"], stream["images"])


def test_no_python_callback_runs_per_sample(index):
    """A Python function inside tf.data (tf.numpy_function, tf.py_function) aborts or hangs a process
    that exits while the stream is still reading; every op of the augmented stream is TensorFlow's."""
    sequences, cameras = index
    dataset = data_loader.build_dataset(sequences[:2], cameras, image_size=CROP, batch_size=4, training=True, seed=0,
                                        augmentation=RIG_AUGMENTATION)
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node} | {node.op for function in graph.library.function
                                              for node in function.node_def}
    assert {"DecodeJpeg", "GatherV2"} <= ops, sorted(ops)  # the per-sample map and its warp are searched
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}, sorted(ops)


def test_validation_augmentation_is_the_same_every_pass(index):
    sequences, cameras = index
    build = lambda: collect(data_loader.build_dataset(sequences[:3], cameras, image_size=16, batch_size=4,
                                                      training=False, stride=4, augmentation=JITTER, seed=11,
                                                      with_metadata=True))
    first, second = build(), build()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_an_epoch_repeats_every_frame_once_then_continues(index):
    sequences, cameras = index
    short = sequences[:3]
    per_epoch = data_loader.count_frames(short, stride=2)
    assert data_loader.steps_per_epoch(short, batch_size=4, stride=2) == per_epoch // 4
    stream = take_training(short, cameras, batches=per_epoch // 2, seed=5, size=16, stride=2, shuffle_buffer=16)
    keys = list(zip(stream["sequence"], stream["frame"]))
    assert sorted(keys[:per_epoch]) == sorted((s.name.encode(), f) for s in short for f in range(0, s.num_frames, 2))
    assert len(keys) > per_epoch  # it goes on into the next epoch, in full batches


def test_a_video_cut_short_yields_the_frames_that_decode_and_the_counts_agree(index, tmp_path):
    """The index counts frames from the containers; the cache keeps the frames that decode. One pass,
    count_frames and steps_per_epoch all follow the cache once it is built."""
    sequences, cameras = index
    video = tmp_path / "cut.mp4"
    shutil.copyfile(sequences[1].videos["60457274"], video)
    cut_after_header(video, keep_frames=9)
    short = [with_video(sequences[1], "60457274", video), sequences[2]]
    cache_dir = str(tmp_path / "cache")
    by_index = data_loader.count_frames(short, stride=2, cache_dir=cache_dir)  # no cache yet
    assert by_index == sum(len(range(0, s.num_frames, 2)) for s in short)
    elements = collect(data_loader.build_dataset(short, cameras, image_size=16, batch_size=4, training=False,
                                                 stride=2, with_metadata=True, cache_dir=cache_dir, verbose=False))
    assert sorted(elements["frame"][elements["sequence"] == short[0].name.encode()]) == [0, 2, 4, 6, 8]
    held = data_loader.count_frames(short, stride=2, cache_dir=cache_dir)
    assert held == len(elements["frame"]) == by_index - len(range(10, short[0].num_frames, 2))
    assert data_loader.steps_per_epoch(short, batch_size=4, stride=2, cache_dir=cache_dir) == held // 4
    stream = take_training(short, cameras, batches=held // 4 + 2, seed=3, size=16, stride=2, shuffle_buffer=8,
                           cache_dir=cache_dir, verbose=False)
    first_epoch = sorted(zip(stream["sequence"][:held], stream["frame"][:held]))
    assert first_epoch == sorted(zip(elements["sequence"], elements["frame"]))  # an epoch is one pass over the cache


def test_jitter_of_a_sample_does_not_depend_on_the_sharding(index):
    sequences, cameras = index
    whole = take_training(sequences, cameras, batches=40, seed=7, size=16, augmentation=JITTER)
    halves = [take_training(sequences, cameras, batches=25, seed=7, size=16, augmentation=JITTER,
                            input_context=tf.distribute.InputContext(2, k, 1)) for k in (0, 1)]
    rows, checked = by_key(whole), 0
    for half in halves:
        for row, key in enumerate(zip(half["subject"], half["sequence"], half["frame"])):
            if key in rows and whole["frame"][rows[key]] == key[2]:
                np.testing.assert_array_equal(half["K"][row], whole["K"][rows[key]])
                checked += 1
    assert checked >= 5


def iid_statistics(sequence_ids, frame_ids, batch_size):
    """Per batch of a stream: mean distinct sequences, median frame gap of same-sequence pairs,
    and how many sequences the stream touched."""
    distinct, gaps = [], []
    for start in range(0, len(sequence_ids) - batch_size + 1, batch_size):
        seqs, frames = sequence_ids[start:start + batch_size], frame_ids[start:start + batch_size]
        distinct.append(len(set(seqs)))
        same = (seqs[:, None] == seqs[None]) & np.triu(np.ones((batch_size, batch_size), bool), 1)
        gaps += np.abs(frames[:, None] - frames[None])[same].tolist()
    return np.mean(distinct), np.median(gaps), len(set(sequence_ids))


@pytest.fixture(scope="module")
def bigger_set(tmp_path_factory):
    """A synthetic set with more sequences than the demo's: 4 subjects x 8 actions x 2 trials."""
    actions = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Walking", "WalkDog")
    return synthetic_h36m.generate_dataset(tmp_path_factory.mktemp("bigger"), subjects=("S1", "S5", "S6", "S7"),
                                           frames=120, size=64, seed=3, actions=actions, progress=False)


def test_training_batches_look_like_iid_draws(bigger_set):
    sequences, cameras = load_index(bigger_set)
    assert len(sequences) >= 60
    batch, batches = 16, 60
    stream = take_training(sequences, cameras, batches=batches * batch // 4, seed=0, size=16)
    names = [f"{s}/{q}" for s, q in zip(stream["subject"], stream["sequence"])]
    ids = np.unique(names, return_inverse=True)[1]
    measured = iid_statistics(ids, stream["frame"], batch)
    # The same statistics of truly i.i.d. draws over every frame of the split.
    rng = np.random.default_rng(0)
    owner = np.repeat(np.arange(len(sequences)), [s.num_frames for s in sequences])
    frame = np.concatenate([np.arange(s.num_frames) for s in sequences])
    draws = rng.choice(len(owner), batches * batch)
    reference = iid_statistics(owner[draws], frame[draws], batch)
    print(f"distinct sequences per batch {measured[0]:.1f} (iid {reference[0]:.1f}); median frame gap "
          f"{measured[1]:.0f} (iid {reference[1]:.0f}); sequences touched {measured[2]} (iid {reference[2]})")
    assert measured[0] >= 0.93 * reference[0]
    assert measured[1] >= 0.7 * reference[1]
    assert measured[2] >= 0.95 * reference[2]


# --------------------------------------------------------------------------- distribution

def test_input_context_shards_files_between_pipelines(index):
    sequences, cameras = index
    shards = [collect(data_loader.build_dataset(
        sequences, cameras, image_size=8, batch_size=16, training=False, stride=10, with_metadata=True,
        input_context=tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=k))) for k in (0, 1)]
    keys = [set(zip(shard["subject"], shard["sequence"], shard["frame"])) for shard in shards]
    assert not keys[0] & keys[1]
    assert keys[0] | keys[1] == {(s.subject.encode(), s.name.encode(), f) for s in sequences
                                 for f in range(0, s.num_frames, 10)}


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


def test_corrupt_video_raises_naming_the_file(index, tmp_path):
    sequences, cameras = index
    bad = tmp_path / "Walking 1.58860488.mp4"
    bad.write_bytes(np.random.default_rng().integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"Cannot open video {re.escape(str(bad))}.*corrupt"):
        first_batch([with_video(sequences[0], "58860488", bad)], cameras)


def test_truncated_video_raises_naming_the_file(index, tmp_path):
    sequences, cameras = index
    sequence = sequences[0]
    # An mp4 cut in half loses its header (OpenCV writes it after the frames): it cannot be opened.
    # (One cut after its header keeps the frames that decode: test_a_video_cut_short_...)
    halved = tmp_path / "halved.mp4"
    data = open(sequence.videos["55011271"], "rb").read()
    halved.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=f"video {re.escape(str(halved))}.*corrupt"):
        first_batch([with_video(sequence, "55011271", halved)], cameras)


def test_labels_shorter_than_the_index_or_of_the_wrong_kind_raise_naming_the_file(index):
    sequences, cameras = index
    sequence = sequences[0]
    with pytest.raises(ValueError, match=f"Labels {re.escape(sequence.d3_path)} hold {sequence.num_frames} frames"):
        first_batch([dataclasses.replace(sequence, num_frames=sequence.num_frames + 5)], cameras)
    swapped = dataclasses.replace(sequence, d2_paths={**sequence.d2_paths, "54138969": sequence.d3_path})
    with pytest.raises(ValueError, match=f"Labels {re.escape(sequence.d3_path)} hold 3D points where 2D"):
        first_batch([swapped], cameras)


def test_camera_file_that_does_not_match_raises(index):
    sequences, cameras = index
    subject = sequences[0].subject
    with pytest.raises(ValueError, match=f"no subject {subject}"):
        data_loader.build_dataset(sequences, {s: c for s, c in cameras.items() if s != subject}, image_size=8,
                                  batch_size=2, training=False)
    with pytest.raises(ValueError, match="No sequences"):
        data_loader.build_dataset([], cameras, image_size=8, batch_size=2, training=False)
