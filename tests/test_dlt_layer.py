"""dlt_layer: undistortion and DLT triangulation against independent references.

References: the true 3D points of random scenes and of the real S1 rig, a float64 numpy SVD of
the plain (unnormalised) DLT system, cv2.triangulatePoints, geometry.project, and central
finite differences. Inputs are fresh random draws every run (the seed is printed on failure).
"""
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import dlt_layer
import h36m_utils
from common import geometry

SEED = int(os.environ.get("DLT_TEST_SEED", np.random.SeedSequence().entropy % 2**32))


@pytest.fixture
def rng():
    print(f"DLT_TEST_SEED={SEED}")   # shown by pytest on failure, to replay the draw
    return np.random.default_rng(SEED)


# --------------------------------------------------------------------------- scenes

def random_camera(rng, target, distance):
    """(3, 4) pinhole P = K [R | t] of a camera ``distance`` mm from target, looking near it."""
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(-0.2, 0.5)
    centre = target + distance * np.array([np.cos(azimuth) * np.cos(elevation),
                                           np.sin(azimuth) * np.cos(elevation),
                                           np.sin(elevation)])
    R = geometry.look_at(centre, target + rng.normal(0, 200, 3))
    focal = rng.uniform(800, 1500)
    K = np.array([[focal, 0, rng.uniform(400, 600)],
                  [0, focal * rng.uniform(0.98, 1.02), rng.uniform(400, 600)], [0, 0, 1]])
    return K @ np.concatenate([R, -R @ centre[:, None]], axis=1), centre


def random_scene(rng, num_views, num_points):
    """Cameras 4-6 m around a person-sized volume at a random place in the world.

    Returns P (V, 3, 4), X (N, 3) world mm inside a 2 m box, uv (N, V, 2) pinhole pixels.
    Every point is seen by some pair of cameras under a triangulation angle of at least
    MIN_TRIANGULATION_DEG (two-camera scenes are redrawn until the cameras are 30-150 degrees
    apart, then points near their baseline are redrawn): below that no triangulation is well
    posed (1 px of noise moves the point by centimetres) and float32 normal equations, which
    lose about float32 eps x cond(A^T A) ~ 1 / sin^2(angle), drift to tenths of a millimetre.
    """
    target = np.append(rng.uniform(-3000, 3000, 2), rng.uniform(500, 1200))
    while True:
        cameras = [random_camera(rng, target, rng.uniform(4000, 6000)) for _ in range(num_views)]
        if num_views > 2 or 30 < _angle_deg(cameras[0][1] - target, cameras[1][1] - target) < 150:
            break
    P = np.stack([camera for camera, _ in cameras])
    centres = np.stack([centre for _, centre in cameras])
    X = np.empty((0, 3))
    while len(X) < num_points:
        candidates = target + rng.uniform(-1000, 1000, (num_points, 3))
        keep = best_triangulation_angle_deg(candidates, centres) >= MIN_TRIANGULATION_DEG
        X = np.concatenate([X, candidates[keep]])[:num_points]
    return P, X, project_pinhole(X, P)


MIN_TRIANGULATION_DEG = 15.0


def best_triangulation_angle_deg(X, centres):
    """(N,) the largest angle (folded to <= 90 degrees) between the rays of any two cameras."""
    rays = centres[None] - X[:, None]
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    best = np.zeros(len(X))
    for a in range(len(centres)):
        for b in range(a + 1, len(centres)):
            best = np.maximum(best, np.linalg.norm(np.cross(rays[:, a], rays[:, b]), axis=-1))
    return np.degrees(np.arcsin(np.minimum(best, 1.0)))


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)))


def project_pinhole(X, P):
    """(N, 3) world, (V, 3, 4) -> (N, V, 2) pixels."""
    homogeneous = np.einsum("vij,nj->nvi", P, np.concatenate([X, np.ones((len(X), 1))], 1))
    return homogeneous[..., :2] / homogeneous[..., 2:]


def s1_rig(h36m_sample_dir):
    """The 4 real cameras of S1, in CAMERA_IDS order."""
    cameras = h36m_utils.load_cameras(str(h36m_sample_dir / "camera-parameters.json"))["S1"]
    return [cameras[camera_id] for camera_id in h36m_utils.CAMERA_IDS]


def person_volume_points(rng, num_points):
    """(N, 3) world mm in the capture area of Human3.6M (floor at z = 0)."""
    return rng.uniform([-1500, -1500, 0], [1500, 1500, 1900], (num_points, 3))


def plain_svd_dlt(uv, P):
    """Float64 numpy SVD of the plain unnormalised system. uv (N, V, 2), P (V, 3, 4) -> (N, 3)."""
    rows = np.concatenate([uv[..., 0, None] * P[None, :, 2] - P[None, :, 0],
                           uv[..., 1, None] * P[None, :, 2] - P[None, :, 1]], axis=1)
    solution = np.linalg.svd(rows)[2][:, -1]
    return solution[:, :3] / solution[:, 3:]


def triangulate_np(uv, P, **kwargs):
    return keras.ops.convert_to_numpy(dlt_layer.triangulate(uv, P, **kwargs)).astype(np.float64)


def errors_mm(estimate, truth):
    return np.linalg.norm(estimate - truth, axis=-1)


# --------------------------------------------------------------------------- accuracy

@pytest.mark.parametrize("num_views", range(2, 9))
def test_noise_free_random_scenes_float32(rng, num_views):
    for _ in range(5):
        P, X, uv = random_scene(rng, num_views, 200)
        sii = triangulate_np(uv.astype(np.float32), P.astype(np.float32))
        svd = triangulate_np(uv.astype(np.float32), P.astype(np.float32), method="svd")
        assert errors_mm(sii, X).max() < 0.05
        assert errors_mm(svd, X).max() < 0.05
        assert errors_mm(sii, svd).max() < 0.1


def test_float64_option_is_exact(rng):
    P, X, uv = random_scene(rng, 3, 200)
    result = dlt_layer.triangulate(uv, P, dtype="float64")
    assert keras.backend.standardize_dtype(result.dtype) == "float64"
    assert errors_mm(keras.ops.convert_to_numpy(result), X).max() < 1e-6


def test_noise_free_real_s1_rig_with_crops(rng, h36m_sample_dir):
    """World mm through the real S1 cameras, points in random crops (as the data loader makes)."""
    cameras = s1_rig(h36m_sample_dir)
    X = person_volume_points(rng, 500)
    crops = [geometry.crop_matrix(rng.uniform(0.2, 0.6), rng.uniform(0, 400), rng.uniform(0, 400))
             for _ in cameras]
    P = np.stack([geometry.projection_matrix(camera, crop) for camera, crop in zip(cameras, crops)])
    uv = np.stack([geometry.project(X, camera, distort=False) @ crop[:2, :2].T + crop[:2, 2]
                   for camera, crop in zip(cameras, crops)], axis=1)
    for method in ("sii", "svd"):
        estimate = triangulate_np(uv.astype(np.float32), P.astype(np.float32), method=method)
        assert errors_mm(estimate, X).max() < 0.05, method


@pytest.mark.parametrize("noise_px", [1.0, 3.0, 10.0])
def test_noise_no_worse_than_plain_float64_svd_random_scenes(rng, noise_px):
    ours, plain = [], []
    for num_views in range(2, 9):
        P, X, uv = random_scene(rng, num_views, 300)
        noisy = uv + rng.normal(0, noise_px, uv.shape)
        ours.append(errors_mm(triangulate_np(noisy.astype(np.float32), P.astype(np.float32)), X))
        plain.append(errors_mm(plain_svd_dlt(noisy, P), X))
    assert np.mean(ours) <= 1.1 * np.mean(plain), (np.mean(ours), np.mean(plain))


@pytest.mark.parametrize("noise_px", [1.0, 5.0, 10.0])
def test_noise_no_worse_than_plain_float64_svd_real_rig(rng, h36m_sample_dir, noise_px):
    cameras = s1_rig(h36m_sample_dir)
    P = np.stack([geometry.projection_matrix(camera) for camera in cameras])
    X = person_volume_points(rng, 2000)
    noisy = project_pinhole(X, P) + rng.normal(0, noise_px, (len(X), len(cameras), 2))
    ours = errors_mm(triangulate_np(noisy.astype(np.float32), P.astype(np.float32)), X)
    plain = errors_mm(plain_svd_dlt(noisy, P), X)
    assert ours.mean() <= 1.1 * plain.mean(), (ours.mean(), plain.mean())
    assert np.median(ours) <= 1.1 * np.median(plain), (np.median(ours), np.median(plain))


def test_two_views_match_cv2_triangulate_points(rng):
    P, X, uv = random_scene(rng, 2, 300)
    noisy = uv + rng.normal(0, 1.0, uv.shape)
    reference = cv2.triangulatePoints(P[0], P[1], noisy[:, 0].T.copy(), noisy[:, 1].T.copy())
    reference = (reference[:3] / reference[3]).T
    ours = triangulate_np(noisy.astype(np.float32), P.astype(np.float32))
    # The normalisation changes the solution under noise only by a small part of its error.
    spread = errors_mm(reference, X)
    assert np.mean(errors_mm(ours, reference)) < 0.02 * np.mean(spread)
    exact = cv2.triangulatePoints(P[0], P[1], uv[:, 0].T.copy(), uv[:, 1].T.copy())
    exact_ours = triangulate_np(uv.astype(np.float32), P.astype(np.float32))
    assert errors_mm(exact_ours, (exact[:3] / exact[3]).T).max() < 0.05


def test_sii_iterations_converge_to_svd(rng):
    P, X, uv = random_scene(rng, 4, 300)
    noisy = uv + rng.normal(0, 5.0, uv.shape)
    svd = triangulate_np(noisy, P, method="svd", dtype="float64")
    gaps = [errors_mm(triangulate_np(noisy, P, iterations=n, dtype="float64"), svd).max()
            for n in (1, 2, 3)]
    assert gaps[1] < 0.1 and gaps[2] <= gaps[1] + 1e-9 and gaps[2] < 1e-3, gaps


# --------------------------------------------------------------------------- weights and shapes

def test_zero_weight_view_is_ignored(rng):
    P, X, uv = random_scene(rng, 4, 100)
    corrupted = uv.copy()
    corrupted[:, 2] += rng.uniform(-300, 300, (len(X), 2))
    weights = np.tile([1.0, 1.0, 0.0, 1.0], (len(X), 1))
    for method in ("sii", "svd"):
        estimate = triangulate_np(corrupted.astype(np.float32), P.astype(np.float32),
                                  weights=weights.astype(np.float32), method=method)
        assert errors_mm(estimate, X).max() < 0.05, method


def test_masked_view_takes_no_part_at_all(rng):
    """view_mask 0: the result is the DLT of the other views alone, bit for bit up to float32
    rounding, even when the masked view's points and camera are garbage (normalisation included)."""
    P, X, points = random_scene(rng, 5, 20)
    noisy = (points + rng.normal(0, 3.0, points.shape)).astype(np.float32)  # views disagree
    alone = triangulate_np(noisy[:, [0, 2, 3, 4]], P[[0, 2, 3, 4]].astype(np.float32))
    garbage_P, garbage_points = P.copy(), noisy.copy()
    garbage_P[1] = rng.normal(0, 1e4, (3, 4))
    garbage_points[:, 1] = rng.normal(0, 1e5, garbage_points[:, 1].shape)
    mask = np.array([1, 0, 1, 1, 1], np.float32)
    masked = keras.ops.convert_to_numpy(dlt_layer.triangulate(
        garbage_points.astype(np.float32), garbage_P.astype(np.float32), view_mask=mask))
    np.testing.assert_allclose(masked, alone, atol=1e-3)
    weighted_only = keras.ops.convert_to_numpy(dlt_layer.triangulate(
        garbage_points.astype(np.float32), garbage_P.astype(np.float32), weights=np.broadcast_to(mask, (20, 5))))
    assert np.abs(weighted_only - alone).max() > 1e-3  # weights alone keep the garbage camera in the normalisation


def test_weights_scale_the_rows_of_the_system(rng):
    """Weighted float64 result equals a weighted plain SVD (noise-free views agree anyway, so noisy)."""
    P, X, uv = random_scene(rng, 3, 50)
    noisy = uv + rng.normal(0, 3.0, uv.shape)
    weights = rng.uniform(0.2, 1.0, (len(X), 3))
    big = errors_mm(triangulate_np(noisy, P, weights=weights, dtype="float64", method="svd"),
                    triangulate_np(noisy, P, dtype="float64", method="svd"))
    assert big.mean() > 1.0    # weights change the answer ...
    sii = triangulate_np(noisy, P, weights=weights, dtype="float64")
    svd = triangulate_np(noisy, P, weights=weights, dtype="float64", method="svd")
    assert errors_mm(sii, svd).max() < 0.01    # ... in the same way for both solvers


def test_batched_broadcasting_matches_one_by_one(rng):
    """points (B, J, V, 2) with P (B, 1, V, 3, 4) and weights (B, J, V), against single calls."""
    batch, joints = 3, 5
    scenes = [random_scene(rng, 4, joints) for _ in range(batch)]
    uv = np.stack([scene[2] for scene in scenes]) + rng.normal(0, 2.0, (batch, joints, 4, 2))
    P = np.stack([scene[0] for scene in scenes])[:, None]
    weights = rng.uniform(0.5, 1.0, (batch, joints, 4))
    batched = triangulate_np(uv, P, weights=weights, dtype="float64")
    assert batched.shape == (batch, joints, 3)
    for b in range(batch):
        for j in range(joints):
            single = triangulate_np(uv[b, j], P[b, 0], weights=weights[b, j], dtype="float64")
            np.testing.assert_allclose(batched[b, j], single, atol=1e-6)
    shared = triangulate_np(uv[0], scenes[0][0], dtype="float64")          # P without batch axes
    np.testing.assert_allclose(shared, triangulate_np(uv[0], P[0], dtype="float64"), atol=1e-9)


def test_stacked_adjugate_is_determinant_times_inverse(rng):
    """The closed-form adjugate on the 10 stacked unique entries of symmetric 4 x 4 matrices."""
    A = rng.normal(size=(6, 4, 4))
    S = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(4)
    stacked = np.stack([S[:, i, j] for i, j in dlt_layer._UPPER])
    adjugate = keras.ops.convert_to_numpy(dlt_layer._stacked_adjugate(stacked))
    expected = np.linalg.det(S)[:, None, None] * np.linalg.inv(S)
    for slot, (i, j) in enumerate(dlt_layer._UPPER):
        np.testing.assert_allclose(adjugate[slot], expected[:, i, j], rtol=1e-9, atol=1e-12)


def test_unknown_batch_sizes_match_eager(rng):
    """Batch and joint axes unknown at trace time (as in a Keras model): same result."""
    scenes = [random_scene(rng, 4, 5) for _ in range(3)]
    uv = np.stack([scene[2] for scene in scenes]).astype(np.float32)
    P = np.stack([scene[0] for scene in scenes])[:, None].astype(np.float32)
    dynamic = tf.function(
        lambda points, cameras: dlt_layer.triangulate(points, cameras),
        input_signature=[tf.TensorSpec([None, None, 4, 2], tf.float32),
                         tf.TensorSpec([None, 1, 4, 3, 4], tf.float32)])
    np.testing.assert_allclose(dynamic(uv, P).numpy(), triangulate_np(uv, P), atol=1e-2)


@pytest.mark.parametrize("points_shape, P_shape, weights_shape, message", [
    ((5, 3, 2), (4, 3, 4), None, "3 views"),
    ((5, 3, 3), (3, 3, 4), None, "points_2d has shape"),
    ((5, 3, 2), (3, 4, 4), None, "P has shape"),
    ((5, 3, 2), (3, 3, 4), (5, 4), "weights must be"),
])
def test_bad_shapes_raise_clear_errors(points_shape, P_shape, weights_shape, message):
    weights = None if weights_shape is None else np.ones(weights_shape)
    with pytest.raises(ValueError, match=message):
        dlt_layer.triangulate(np.ones(points_shape), np.ones(P_shape), weights=weights)


def test_bad_options_raise_clear_errors():
    points, P = np.ones((3, 2)), np.ones((3, 3, 4))
    with pytest.raises(ValueError, match="method"):
        dlt_layer.triangulate(points, P, method="qr")
    with pytest.raises(ValueError, match="iterations"):
        dlt_layer.triangulate(points, P, iterations=0)
    with pytest.raises(ValueError, match="dtype"):
        dlt_layer.triangulate(points, P, dtype="float16")


# --------------------------------------------------------------------------- undistortion

def test_undistort_recovers_pinhole_on_real_cameras(rng, h36m_sample_dir):
    cameras = s1_rig(h36m_sample_dir)
    X = person_volume_points(rng, 300)
    distorted = np.stack([geometry.project(X, camera) for camera in cameras])        # (V, N, 2)
    pinhole = np.stack([geometry.project(X, camera, distort=False) for camera in cameras])
    inside = (distorted > 0).all(-1) & (distorted < 1000).all(-1)
    assert inside.mean() > 0.5
    K = np.stack([camera.K for camera in cameras])
    dist = np.stack([camera.dist for camera in cameras])
    recovered = keras.ops.convert_to_numpy(dlt_layer.undistort(distorted, K, dist))
    assert np.abs(recovered - pinhole)[inside].max() < 1e-3
    # The distortion is real: skipping the undistortion would be off by around a pixel.
    assert np.abs(distorted - pinhole)[inside].max() > 0.5
    # Whole frames, corners included (distortion up to ~23 px there): pinhole grid -> distorted.
    grid = np.stack(np.meshgrid(np.linspace(0, 999, 30), np.linspace(0, 1001, 30)), -1)
    grid = grid.reshape(-1, 2) + rng.uniform(-0.5, 0.5, (900, 2))
    for camera in cameras:
        focal, principal = np.diag(camera.K)[:2], camera.K[:2, 2]
        normalised = geometry.distort_normalized((grid - principal) / focal, camera.k, camera.p)
        frame = normalised * focal + principal
        recovered = keras.ops.convert_to_numpy(dlt_layer.undistort(frame.astype(np.float32),
                                                                   camera.K, camera.dist))
        assert np.abs(recovered - grid).max() < 1e-3, camera.id


def test_undistort_in_crop_pixels_with_batch_axes(rng, h36m_sample_dir):
    """(B, V, J, 2) crop pixels with each view's crop K, as the model calls it."""
    cameras = s1_rig(h36m_sample_dir)
    X = person_volume_points(rng, 2 * 17).reshape(2, 17, 3)
    crops = rng.uniform([0.2, 100, 100], [0.5, 400, 400], (2, 4, 3))     # scale, ox, oy
    K = np.stack([[geometry.crop_matrix(*crops[b, v]) @ cameras[v].K for v in range(4)]
                  for b in range(2)])

    def crop_pixels(distort):
        return np.stack([[crops[b, v, 0] * (geometry.project(X[b], cameras[v], distort)
                                            - crops[b, v, 1:]) for v in range(4)]
                         for b in range(2)])

    dist = np.broadcast_to(np.stack([camera.dist for camera in cameras]), (2, 4, 6))
    recovered = keras.ops.convert_to_numpy(dlt_layer.undistort(crop_pixels(True), K, dist))
    assert recovered.shape == (2, 4, 17, 2)
    assert np.abs(recovered - crop_pixels(False)).max() < 1e-3


# --------------------------------------------------------------------------- gradients

def gradients(function, *inputs):
    """Values and gradients of sum(function(*inputs) * fixed random weights) w.r.t. all inputs."""
    variables = [tf.constant(value) for value in inputs]
    with tf.GradientTape() as tape:
        tape.watch(variables)
        output = function(*variables)
        cotangent = tf.constant(np.random.default_rng(0).normal(size=output.shape), output.dtype)
        objective = tf.reduce_sum(output * cotangent)
    return output.numpy(), [grad.numpy() for grad in tape.gradient(objective, variables)], \
        lambda *values: float(tf.reduce_sum(function(*values) * cotangent))


def assert_matches_finite_differences(rng, function, inputs, relative_step):
    """Directional derivatives along random directions, autodiff vs central differences."""
    _, grads, objective = gradients(function, *inputs)
    for index, (value, grad) in enumerate(zip(inputs, grads)):
        direction = rng.normal(size=value.shape) * relative_step * (np.abs(value) + 1e-3)
        shifted = [list(inputs), list(inputs)]
        shifted[0][index], shifted[1][index] = value + direction, value - direction
        numeric = (objective(*shifted[0]) - objective(*shifted[1])) / 2
        analytic = float(np.sum(grad * direction))
        assert abs(numeric - analytic) <= 1e-5 * abs(analytic) + 1e-9, (index, numeric, analytic)


def test_triangulate_gradients_match_finite_differences(rng):
    P, X, uv = random_scene(rng, 4, 6)
    noisy = uv + rng.normal(0, 3.0, uv.shape)
    weights = rng.uniform(0.3, 1.0, (6, 4))
    for method in ("sii", "svd"):
        assert_matches_finite_differences(
            rng, lambda points, P_, w: dlt_layer.triangulate(points, P_, w, method=method,
                                                             dtype="float64"),
            [noisy, P, weights], relative_step=1e-6)


def test_undistort_gradients_match_finite_differences(rng, h36m_sample_dir):
    cameras = s1_rig(h36m_sample_dir)
    distorted = np.stack([geometry.project(person_volume_points(rng, 5), camera)
                          for camera in cameras])
    K = np.stack([camera.K for camera in cameras])
    dist = np.stack([camera.dist for camera in cameras])
    assert_matches_finite_differences(
        rng, lambda points, K_, d: dlt_layer.undistort(points, K_, d, dtype="float64"),
        [distorted, K, dist], relative_step=1e-6)


def turn_around(P, view):
    """P with camera ``view`` rotated 180 degrees about its own vertical axis (same centre).

    ``K R -> K D R`` with ``D = diag(-1, 1, -1)``: the rays are the same lines, but everything
    the camera saw is now behind it (negative depth).
    """
    K, _ = scipy.linalg.rq(P[view, :, :3])
    turned = P.copy()
    turned[view] = K @ np.diag([-1.0, 1.0, -1.0]) @ np.linalg.inv(K) @ P[view]
    return turned


def depths(X, P_view):
    """(N,) depth of world points in front of (> 0) or behind (< 0) a camera (3, 4)."""
    homogeneous_w = np.concatenate([X, np.ones((len(X), 1))], 1) @ P_view[2]
    return homogeneous_w * np.sign(np.linalg.det(P_view[:, :3]))


def hard_cases(rng):
    """(name, points (N, V, 2), P (V, 3, 4), weights (N, V) or None), float32-ready."""
    P, X, uv = random_scene(rng, 4, 20)
    cases = [("all views agree exactly", uv, P, None),
             ("huge noise", uv + rng.normal(0, 2000.0, uv.shape), P, None),
             ("zero weights on all but two views", uv + rng.normal(0, 2.0, uv.shape), P,
              np.tile([0.0, 1.0, 0.0, 1.0], (len(X), 1))),
             ("all weights zero", uv, P, np.zeros((len(X), 4)))]
    camera, _ = random_camera(rng, X.mean(0), 5000.0)
    for name, baseline_mm in (("two nearly parallel cameras", 1.0), ("two identical cameras", 0.0)):
        twin = camera.copy()
        twin[:, 3] += camera[:, :3] @ np.array([baseline_mm, 0.0, 0.0])
        pair = np.stack([camera, twin])
        cases.append((name, project_pinhole(X, pair) + rng.normal(0, 0.5, (len(X), 2, 2)),
                      pair, None))
    turned = turn_around(P, 0)
    cases.append(("points behind one camera", project_pinhole(X, turned), turned, None))
    return cases


def test_gradients_finite_on_hard_cases_float32(rng):
    for name, points, P, weights in hard_cases(rng):
        inputs = [points.astype(np.float32), P.astype(np.float32)]
        if weights is not None:
            inputs.append(weights.astype(np.float32))
        for method in ("sii", "svd"):
            output, grads, _ = gradients(
                lambda *args: dlt_layer.triangulate(*args, method=method), *inputs)
            assert np.isfinite(output).all(), (name, method)
            for grad in grads:
                assert np.isfinite(grad).all(), (name, method)


def test_points_behind_a_camera_are_still_triangulated(rng):
    """The DLT does not care about the side of a camera; nothing flips or breaks."""
    P, X, _ = random_scene(rng, 4, 50)
    turned = turn_around(P, 0)
    assert (depths(X, turned[0]) < 0).all()
    for method in ("sii", "svd"):
        estimate = triangulate_np(project_pinhole(X, turned).astype(np.float32),
                                  turned.astype(np.float32), method=method)
        assert errors_mm(estimate, X).max() < 0.05, method


def opencv_camera(rng):
    """A camera with OpenCV's lens model and strong tangential terms, and its cv2 vectors."""
    K = np.array([[1650.0, 0, 530.0], [0, 1660.0, 950.0], [0, 0, 1]])
    k, p = np.array([-0.12, 0.09, -0.02]), np.array([0.004, -0.003])
    rvec, tvec = rng.normal(0, 0.3, 3), np.array([0.1, -0.2, 3500.0])
    camera = geometry.Camera(R=cv2.Rodrigues(rvec)[0], t=tvec, K=K, k=k, p=p, width=1088, height=1920,
                               id="cam", distortion_model="opencv")
    return camera, rvec, tvec, np.array([k[0], k[1], p[0], p[1], k[2]])


def test_opencv_lens_model_matches_cv2(rng):
    camera, rvec, tvec, cv2_dist = opencv_camera(rng)
    points = rng.normal(0, 600, (400, 3))
    # In the picture (the domain of the 6 undistortion iterations' accuracy), not far beyond its edges.
    pinhole = geometry.project(points, camera, distort=False)
    points = points[np.all((pinhole >= 0) & (pinhole < [camera.width, camera.height]), axis=1)][:200]
    assert len(points) > 100
    expected = cv2.projectPoints(points, rvec, tvec, camera.K, cv2_dist)[0][:, 0]
    np.testing.assert_allclose(geometry.project(points, camera), expected, atol=1e-6)
    # Human3.6M's formula differs from OpenCV's by the tangential terms only.
    h36m = dataclasses.replace(camera, distortion_model="h36m")
    assert np.abs(geometry.project(points, h36m) - expected).max() > 0.5
    recovered = keras.ops.convert_to_numpy(dlt_layer.undistort(expected, camera.K, camera.dist, dtype="float64"))
    # 1e-5 px: these strong terms take the picture's corners 1.9e-6 px from converged (300 seeds), far
    # below float32's own rounding of a 2000 px coordinate (1e-4 px).
    np.testing.assert_allclose(recovered, geometry.project(points, camera, distort=False), atol=1e-5)
    np.testing.assert_allclose(geometry.undistort_points(expected, camera),
                               cv2.undistortPoints(expected[:, None], camera.K, cv2_dist, P=camera.K)[:, 0], atol=1e-4)


def test_undistort_in_a_rotated_crop(rng):
    """A crop turned in the image plane has a K that is not upper triangular; undistortion must
    still invert the lens exactly (the crop's pixels are an affine map of the frame's)."""
    camera, _, _, _ = opencv_camera(rng)
    angle = np.radians(35.0)
    turn = np.array([[np.cos(angle), -np.sin(angle), 60.0], [np.sin(angle), np.cos(angle), -40.0], [0, 0, 1]])
    crop = turn @ geometry.crop_matrix(0.25, 200.0, 600.0)
    points = rng.normal(0, 400, (50, 3))
    distorted = geometry.apply_affine(geometry.project(points, camera), crop)
    pinhole = geometry.apply_affine(geometry.project(points, camera, distort=False), crop)
    recovered = keras.ops.convert_to_numpy(dlt_layer.undistort(distorted, crop @ camera.K, camera.dist, dtype="float64"))
    np.testing.assert_allclose(recovered, pinhole, atol=1e-7)


def test_undistort_gradients_finite_far_outside_the_lens_model():
    K = np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]], np.float32)
    dist = np.array([-0.2, 0.25, -0.01, -0.002, 0.001], np.float32)
    points = np.array([[500.0, 500.0], [1e5, -3e4], [-2e6, 5e6], [1500.0, 1500.0]], np.float32)
    output, grads, _ = gradients(lambda pts: dlt_layer.undistort(pts, K, dist), points)
    assert np.isfinite(output).all() and np.isfinite(grads[0]).all()
    np.testing.assert_allclose(output[0], [500.0, 500.0], atol=1e-4)   # the centre stays put


# --------------------------------------------------------------------------- the Keras layer

def real_rig_batch(rng, cameras, batch, joints):
    """Inputs of the layer like the data loader's, and the true (B, J, 3) world points."""
    X = person_volume_points(rng, batch * joints).reshape(batch, joints, 3)
    crops = [[geometry.crop_matrix(rng.uniform(0.2, 0.5), *rng.uniform(100, 400, 2))
              for _ in cameras] for _ in range(batch)]
    kp2d = np.stack([[crops[b][v][:2, :2] @ geometry.project(X[b], cam).T
                      + crops[b][v][:2, 2:] for v, cam in enumerate(cameras)] for b in range(batch)])
    inputs = {
        "kp2d": np.swapaxes(kp2d, -1, -2),
        "P": np.stack([[geometry.projection_matrix(cam, crops[b][v])
                        for v, cam in enumerate(cameras)] for b in range(batch)]),
        "K": np.stack([[crops[b][v] @ cam.K for v, cam in enumerate(cameras)]
                       for b in range(batch)]),
        "dist": np.broadcast_to(np.stack([cam.dist for cam in cameras]), (batch, len(cameras), geometry.DIST_SIZE)),
    }
    return {name: value.astype(np.float32) for name, value in inputs.items()}, X


def test_layer_recovers_world_points_from_distorted_crop_pixels(rng, h36m_sample_dir):
    inputs, X = real_rig_batch(rng, s1_rig(h36m_sample_dir), batch=3, joints=17)
    layer = dlt_layer.UndistortTriangulate()
    output = keras.ops.convert_to_numpy(layer(inputs["kp2d"], inputs["P"], inputs["K"],
                                              inputs["dist"]))
    assert output.shape == (3, 17, 3)
    assert errors_mm(output, X).max() < 0.05
    weights = np.ones((3, 4, 17), np.float32)
    weights[:, 1] = 0.0
    broken = inputs["kp2d"].copy()
    broken[:, 1] += 50.0
    ignored = layer(broken, inputs["P"], inputs["K"], inputs["dist"], weights)
    assert errors_mm(keras.ops.convert_to_numpy(ignored), X).max() < 0.05
    assert layer.weights == []


def test_layer_in_a_saved_and_reloaded_model(rng, tmp_path, h36m_sample_dir):
    cameras = s1_rig(h36m_sample_dir)
    inputs, _ = real_rig_batch(rng, cameras, batch=2, joints=17)
    shapes = {"kp2d": (4, 17, 2), "P": (4, 3, 4), "K": (4, 3, 3), "dist": (4, geometry.DIST_SIZE)}
    symbolic = {name: keras.Input(shape, name=name) for name, shape in shapes.items()}
    layer = dlt_layer.UndistortTriangulate(iterations=3, undistort_iterations=8, name="dlt")
    model = keras.Model(symbolic, layer(symbolic["kp2d"], symbolic["P"], symbolic["K"],
                                        symbolic["dist"]))
    assert model.output.shape == (None, 17, 3)
    model.save(tmp_path / "dlt.keras")
    reloaded = keras.models.load_model(tmp_path / "dlt.keras")
    np.testing.assert_array_equal(reloaded.predict(inputs, verbose=0),
                                  model.predict(inputs, verbose=0))
    config = reloaded.get_layer("dlt").get_config()
    assert (config["method"], config["iterations"], config["undistort_iterations"],
            config["precision"]) == ("sii", 3, 8, "float32")


# --------------------------------------------------------------------------- other backends

SECOND_BACKEND_SCRIPT = """
import json, sys
import numpy as np
import keras
import dlt_layer
data = np.load(sys.argv[1])
out = {
    "backend": keras.backend.backend(),
    "sii": keras.ops.convert_to_numpy(dlt_layer.triangulate(data["uv"], data["P"])).tolist(),
    "svd": keras.ops.convert_to_numpy(
        dlt_layer.triangulate(data["uv"], data["P"], method="svd")).tolist(),
    "undistort": keras.ops.convert_to_numpy(
        dlt_layer.undistort(data["uv"][None, :, 0], data["K"][None], data["dist"][None])).tolist(),
}
print("RESULT" + json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_results_under_another_keras_backend(rng, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"Keras backend {backend!r} is not installed (not in requirements.txt); "
                    f"`pip install {backend}` to run this check")
    P, X, uv = random_scene(rng, 4, 20)
    K = np.array([[1100.0, 0, 500], [0, 1100, 510], [0, 0, 1]])
    dist = np.array([-0.2, 0.24, -0.002, -0.001, 0.0005])
    np.savez(tmp_path / "inputs.npz", uv=uv.astype(np.float32), P=P.astype(np.float32), K=K, dist=dist)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(dlt_layer.__file__)))
    completed = subprocess.run(
        [sys.executable, "-c", SECOND_BACKEND_SCRIPT, str(tmp_path / "inputs.npz")],
        env={**os.environ, "KERAS_BACKEND": backend,
             "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))},
        capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT", 1)[1])
    assert result["backend"] == backend
    for method in ("sii", "svd"):
        assert errors_mm(np.array(result[method]), X).max() < 0.05, method
    expected = keras.ops.convert_to_numpy(
        dlt_layer.undistort(uv[None, :, 0].astype(np.float32), K[None], dist[None]))
    np.testing.assert_allclose(np.array(result["undistort"]), expected, atol=1e-3)
