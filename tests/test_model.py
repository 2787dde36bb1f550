"""Tests of model.py and losses.py, mostly on the tiny config, with small random batches built here.

The batches are geometrically consistent: cameras on a ring around a random 17-point "person",
crops around each view's projection, P/K/dist/kp2d/kp3d built with h36m_utils (the repo's
verified camera conventions); the images are random noise.
"""
import dataclasses
import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import dlt_layer
from common import geometry
from train import losses
import model

IMAGE_SIZE = model.CONFIGS["tiny"].image_size
JOINTS = 17


# --------------------------------------------------------------------------- synthetic batches

def _ring_camera(angle: float, radius: float, rng) -> geometry.Camera:
    """A Human3.6M-like camera 1.5 m high on a ring, looking at the middle of the capture area."""
    centre = np.array([radius * np.cos(angle), radius * np.sin(angle), 1500.0])
    forward = np.array([0.0, 0.0, 900.0]) - centre + rng.normal(0, 100, 3)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(forward, right), forward])
    focal = rng.uniform(1100, 1200)
    return geometry.Camera(
        R=R, t=-R @ centre, K=np.array([[focal, 0, 500 + rng.normal(0, 5)], [0, focal, 500], [0, 0, 1.0]]),
        k=np.array([-0.2, 0.24, -0.002]) * rng.uniform(0.5, 1.5), p=np.array([-0.0015, -0.0009]),
        width=1000, height=1000, id=f"ring{angle:.2f}")


def _random_pose(rng) -> np.ndarray:
    """(J, 3) world mm: a person-sized cloud of points standing somewhere in the capture area."""
    pelvis = np.array([rng.uniform(-800, 800), rng.uniform(-800, 800), 900.0])
    return pelvis + rng.uniform([-300, -300, -850], [300, 300, 800], (JOINTS, 3))


def _crop_around(uv: np.ndarray) -> np.ndarray:
    """(3, 3) crop matrix of a square crop of IMAGE_SIZE pixels around 2D points (J, 2)."""
    low, high = uv.min(axis=0), uv.max(axis=0)
    side = 1.25 * (high - low).max() + 10.0
    centre = (low + high) / 2
    return geometry.crop_matrix(IMAGE_SIZE / side, centre[0] - side / 2, centre[1] - side / 2)


def make_batch(rng, batch: int, num_views: int):
    """inputs {images, P, K, dist, view_mask}, targets {kp2d, kp3d}, cameras [[Camera with crop K] * V] * B."""
    arrays, crop_cameras = {name: [] for name in ("P", "K", "dist", "kp2d", "kp3d")}, []
    for _ in range(batch):
        pose = _random_pose(rng)
        angles = rng.uniform(0, 2 * np.pi) + np.arange(num_views) * 2 * np.pi / num_views + rng.normal(0, 0.2, num_views)
        cameras = [_ring_camera(angle, rng.uniform(4000, 6000), rng) for angle in angles]
        crops = [_crop_around(geometry.project(pose, camera)) for camera in cameras]
        crop_cameras.append([dataclasses.replace(camera, K=crop @ camera.K) for camera, crop in zip(cameras, crops)])
        arrays["P"].append([geometry.projection_matrix(camera, crop) for camera, crop in zip(cameras, crops)])
        arrays["K"].append([camera.K for camera in crop_cameras[-1]])
        arrays["dist"].append([camera.dist for camera in cameras])
        arrays["kp2d"].append([geometry.project(pose, camera) for camera in crop_cameras[-1]])
        arrays["kp3d"].append(pose)
    arrays = {name: np.asarray(value, np.float32) for name, value in arrays.items()}
    inputs = {"images": rng.integers(0, 256, (batch, num_views, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
              **{name: arrays[name] for name in ("P", "K", "dist")},
              "view_mask": np.ones((batch, num_views), np.float32)}
    return inputs, {"kp2d": arrays["kp2d"], "kp3d": arrays["kp3d"]}, crop_cameras


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.fixture(scope="module")
def tiny_model():
    """One tiny 4-view model, read-only for the tests that use it."""
    keras.utils.set_random_seed(1)
    return model.build_model("tiny", num_views=4)


def _perturb_weights(network, rng):
    """Moves every weight away from its initial value (BN statistics included, variances kept > 0)."""
    for variable in network.weights:
        value = keras.ops.convert_to_numpy(variable)
        value = value * rng.uniform(0.5, 1.5, value.shape)
        if "variance" not in variable.path:
            value = value + rng.normal(0, 0.05, value.shape)
        variable.assign(value.astype(variable.dtype))


# --------------------------------------------------------------------------- model structure

@pytest.mark.parametrize("num_views", [2, 3, 4])
def test_output_shapes_and_finiteness(num_views, rng):
    network = model.build_model("tiny", num_views=num_views, with_heatmaps=True)
    inputs, _, _ = make_batch(rng, 2, num_views)
    outputs = network(inputs, training=False)
    config = model.CONFIGS["tiny"]
    assert set(outputs) == {"heatmaps", "kp2d", "kp3d"}
    plain = model.build_model("tiny", num_views=num_views)  # the training variant: the same weights
    assert set(plain(inputs, training=False)) == {"kp2d", "kp3d"} and plain.count_params() == network.count_params()
    heat = config.heatmap_size
    assert tuple(outputs["heatmaps"].shape) == (2, num_views, heat, heat, JOINTS)
    assert tuple(outputs["kp2d"].shape) == (2, num_views, JOINTS, 2)
    assert tuple(outputs["kp3d"].shape) == (2, JOINTS, 3)
    for name, value in outputs.items():
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value))), name
    # Heatmaps are spatial probability distributions.
    sums = keras.ops.convert_to_numpy(outputs["heatmaps"]).sum(axis=(2, 3))
    np.testing.assert_allclose(sums, 1.0, atol=1e-4)


def test_kp3d_is_undistorted_dlt_of_model_kp2d(tiny_model, rng):
    """kp3d == DLT(undistort(kp2d)): the model's float32 path against h36m_utils' undistortion and
    the same DLT (SII, 2 iterations) in float64. The 2D outputs of a random network do not
    agree across views, so the exact SVD solution differs from 2 SII steps by up to ~1 mm."""
    _perturb_weights(tiny_model, rng)
    logits = tiny_model.get_layer("heatmap_logits").kernel          # sharper maps: 2D outputs spread out
    logits.assign(keras.ops.convert_to_numpy(logits) * 30.0)
    inputs, _, crop_cameras = make_batch(rng, 3, 4)
    outputs = tiny_model(inputs, training=False)
    kp2d = keras.ops.convert_to_numpy(outputs["kp2d"]).astype(np.float64)
    assert kp2d.std(axis=2).min() > 1.0, "2D outputs collapsed; the comparison would be weak"
    pinhole = np.stack([np.stack([geometry.undistort_points(kp2d[b, v], crop_cameras[b][v])
                                  for v in range(4)]) for b in range(3)])          # (B, V, J, 2)
    reference = dlt_layer.triangulate(np.transpose(pinhole, (0, 2, 1, 3)), inputs["P"][:, None].astype(np.float64),
                                      method="sii", iterations=2, dtype="float64")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["kp3d"]),
                               keras.ops.convert_to_numpy(reference), atol=0.05)


def test_ftl_round_trips_on_row_space(rng):
    """FTL(FTL^-1(y)) = y; FTL^-1(FTL(x)) = x projected on the row space of the view's P."""
    inputs, _, crop_cameras = make_batch(rng, 2, 3)
    P = model.normalize_projection(inputs["P"], IMAGE_SIZE, 1000.0)
    points = 5
    view_features = rng.normal(size=(2, 3, 4, 4, 3 * points)).astype(np.float32)
    to_canonical = model.ToCanonical()(view_features, P)                      # (B, V, h, w, 4N)
    assert tuple(to_canonical.shape) == (2, 3, 4, 4, 4 * points)
    for view in range(3):   # FTL with view v's P of view v's canonical features gives them back
        back = model.FromCanonical()(to_canonical[:, view], P)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(back)[:, view], view_features[:, view], atol=1e-4)

    canonical = rng.normal(size=(2, 4, 4, 4 * points)).astype(np.float32)
    round_trip = keras.ops.convert_to_numpy(model.ToCanonical()(model.FromCanonical()(canonical, P), P))
    for b in range(2):
        for view, camera in enumerate(crop_cameras[b]):
            # The null space of P (in the normalised world unit, metres) is the camera centre.
            null = np.append(camera.center / 1000.0, 1.0)
            x = canonical[b].reshape(-1, 4).astype(np.float64)
            expected = x - np.outer(x @ null, null) / (null @ null)
            np.testing.assert_allclose(round_trip[b, view].reshape(-1, 4), expected, atol=1e-4)


def test_normalized_projection_keeps_rays_and_maps_crop_to_unit_square(rng):
    inputs, targets, _ = make_batch(rng, 2, 2)
    P = keras.ops.convert_to_numpy(model.normalize_projection(inputs["P"], IMAGE_SIZE, 1000.0)).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(P, axis=(-2, -1)), 1.0, rtol=1e-5)
    world = np.concatenate([targets["kp3d"] / 1000.0, np.ones((2, JOINTS, 1))], axis=-1)   # (B, J, 4) metres
    projected = np.einsum("bvij,bkj->bvki", P, world)
    normalised = projected[..., :2] / projected[..., 2:]
    raw = np.einsum("bvij,bkj->bvki", inputs["P"].astype(np.float64),
                    np.concatenate([targets["kp3d"], np.ones((2, JOINTS, 1))], axis=-1))
    pixels = raw[..., :2] / raw[..., 2:]
    # Crop edges -0.5 and S - 0.5 (pixel centres at integers) map to -1 and 1.
    np.testing.assert_allclose(normalised, (pixels + 0.5) * 2 / IMAGE_SIZE - 1, atol=1e-6)


def test_soft_argmax_pixel_convention(rng):
    layer = model.SoftArgmax(IMAGE_SIZE)
    heat = 32
    rows, cols = rng.integers(0, heat, JOINTS), rng.integers(0, heat, JOINTS)
    logits = np.zeros((1, heat, heat, JOINTS), np.float32)
    logits[0, rows, cols, np.arange(JOINTS)] = 60.0                     # one-hot after the softmax
    heatmaps, joints = layer(logits)
    cell = IMAGE_SIZE / heat
    expected = np.stack([(cols + 0.5) * cell - 0.5, (rows + 0.5) * cell - 0.5], axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(joints)[0], expected, atol=1e-3)
    # Flat logits: the expectation is the centre of the crop, (S - 1) / 2 in integer-centre pixels.
    _, centre = layer(np.zeros((1, heat, heat, 2), np.float32))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(centre), (IMAGE_SIZE - 1) / 2, atol=1e-4)


def test_config_and_argument_errors():
    with pytest.raises(ValueError, match="Unknown model config"):
        model.get_config("huge")
    with pytest.raises(ValueError, match="num_views >= 2"):
        model.build_model("tiny", num_views=1)
    bad = dataclasses.replace(model.CONFIGS["tiny"], heatmap_size=64)
    with pytest.raises(ValueError, match="inconsistent"):
        model.build_model(bad)
    with pytest.raises(ValueError, match="no pretrained weights"):
        model.build_model("tiny", weights="imagenet")


DOCUMENTATION = os.path.join(os.path.dirname(os.path.abspath(model.__file__)), "docs", "DOCUMENTATION.md")
# The architecture of each config as DESIGN.md section 4 and DOCUMENTATION.md's model table state it
# (tiny's 96 encoder channels: its config): encoder sub-model, its map (h, w, C), channels per
# view 3N, canonical channels 4N, heatmap side.
DOCUMENTED_ARCHITECTURES = {
    "tiny": ("tiny_encoder", (16, 16, 96), 48, 64, 32),
    "resnet50": ("resnet50", (8, 8, 2048), 300, 400, 64),
    "paper": ("resnet152", (8, 8, 2048), 300, 400, 64),
}


def _documented_parameter_counts() -> dict[str, int]:
    """{config name: parameter count} from DOCUMENTATION.md's model table (| config | input | backbone | ...)."""
    with open(DOCUMENTATION, encoding="utf-8") as file:
        lines = [line.strip() for line in file]
    header = next(index for index, line in enumerate(lines)
                  if line.startswith("| config |") and "| backbone |" in line and "| parameters |" in line)
    columns = [cell.strip() for cell in lines[header].strip("|").split("|")]
    counts = {}
    for line in lines[header + 2:]:             # + 2: past the | --- | row
        if not line.startswith("|"):
            break
        row = dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|"))))
        counts[row["config"].strip("`")] = int(row["parameters"].replace(",", ""))
    return counts


def _output_shape(network, layer: str) -> tuple:
    return tuple(network.get_layer(layer).output.shape)


@pytest.mark.parametrize("name", list(DOCUMENTED_ARCHITECTURES))
def test_configs_build_the_documented_architecture(name):
    """The built graph (weights=None) has DOCUMENTATION.md's parameter count and the documented layer shapes."""
    encoder, feature_map, view_channels, canonical_channels, heatmap_size = DOCUMENTED_ARCHITECTURES[name]
    network = model.build_model(name, num_views=4, num_joints=JOINTS, weights=None, with_heatmaps=True)
    built, documented = network.count_params(), _documented_parameter_counts()[name]
    assert built == documented, f"{name}: {built:,} parameters built, DOCUMENTATION.md says {documented:,}"
    cells = feature_map[:2]
    assert _output_shape(network, encoder) == (None, *feature_map)
    assert _output_shape(network, "to_view_points") == (None, *cells, view_channels)
    assert _output_shape(network, "ftl_inverse") == (None, 4, *cells, canonical_channels)
    fusion = [(layer.name, tuple(layer.output.shape)) for layer in network.layers
              if layer.name.startswith("fusion") and layer.name.endswith(("_relu", "_linear"))]
    assert fusion == [("fusion0_relu", (None, *cells, canonical_channels)),
                      ("fusion1_linear", (None, *cells, canonical_channels))]
    assert _output_shape(network, "ftl") == (None, 4, *cells, view_channels)
    assert _output_shape(network, "heatmaps") == (None, 4, heatmap_size, heatmap_size, JOINTS)


# --------------------------------------------------------------------------- information between views

EXCHANGE_PX = 1.0      # fused sharp tiny models move other views' joints by > 20 px
FLOAT_NOISE_PX = 1e-2  # FTL(FTL^-1(y)) - y in float32, through the decoder: < 2e-4 px seen


def _sharp_tiny_model(fusion_layers: int, rng, fusion: str = "concat", num_views: int = 4,
                      view_skip: bool = False) -> keras.Model:
    """A tiny model, perturbed weights and 10x heatmap logits, so kp2d spread over the crop."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    config = dataclasses.replace(model.CONFIGS["tiny"], fusion_layers=fusion_layers, fusion=fusion,
                                 view_skip=view_skip)
    network = model.build_model(config, num_views=num_views)
    _perturb_weights(network, rng)
    logits = network.get_layer("heatmap_logits").kernel
    logits.assign(keras.ops.convert_to_numpy(logits) * 10.0)
    return network


def _changes_from_view_zero(network, inputs, rng) -> dict[str, dict[str, float]]:
    """Max abs output changes when only view 0's image (new noise) or only its P (view 1's) changes.

    inputs: the model's inputs, images (B, V, S, S, 3), P (B, V, 3, 4). Returns
    {"image" | "P": {"own kp2d": px, "other kp2d": px, "kp3d": mm}}, "own" being view 0.
    Unchanged inputs must first give the same outputs bit for bit, so any change is the edit's.
    """
    def predict(batch):
        return {name: keras.ops.convert_to_numpy(value) for name, value in network(batch, training=False).items()}

    reference = predict(inputs)
    for name, value in predict(inputs).items():
        np.testing.assert_array_equal(value, reference[name], err_msg=f"{name} of unchanged inputs")
    images, P = inputs["images"].copy(), inputs["P"].copy()
    images[:, 0] = rng.integers(0, 256, images[:, 0].shape, dtype=np.uint8)
    P[:, 0] = P[:, 1]
    changes = {}
    for edit, batch in (("image", {**inputs, "images": images}), ("P", {**inputs, "P": P})):
        outputs = predict(batch)
        kp2d = np.abs(outputs["kp2d"] - reference["kp2d"])                       # (B, V, J, 2)
        changes[edit] = {"own kp2d": kp2d[:, 0].max(), "other kp2d": kp2d[:, 1:].max(),
                         "kp3d": np.abs(outputs["kp3d"] - reference["kp3d"]).max()}
    return changes


def _exchanging_edits(changes) -> set[str]:
    """The edits of view 0 ("image", "P") that moved another view's kp2d by more than EXCHANGE_PX."""
    return {edit for edit, change in changes.items() if change["other kp2d"] > EXCHANGE_PX}


@pytest.mark.parametrize("fusion", model.FUSIONS)
def test_views_exchange_information_through_fusion(fusion, rng):
    """View 0's image and its P both reach the other views' 2D joints, and the 3D joints."""
    changes = _changes_from_view_zero(_sharp_tiny_model(2, rng, fusion), make_batch(rng, 2, 4)[0], rng)
    assert _exchanging_edits(changes) == {"image", "P"}, changes
    assert min(change["kp3d"] for change in changes.values()) > 1.0, changes   # mm; > 200 seen


def test_views_kept_apart_without_fusion_layers(rng):
    """fusion_layers=0: the check of the test above finds no exchange, so it fails without fusion.

    View 0's image moves its own joints only; P changes no view's joints, as each view's code
    comes back unchanged through FTL(FTL^-1(y)) = P pinv(P) y = y.
    """
    network = _sharp_tiny_model(0, rng)
    assert not [layer.name for layer in network.layers
                if isinstance(layer, model.MergeViews) or layer.name.startswith("fusion")]
    changes = _changes_from_view_zero(network, make_batch(rng, 2, 4)[0], rng)
    assert _exchanging_edits(changes) == set(), changes
    assert changes["image"]["own kp2d"] > EXCHANGE_PX, changes          # the edit reached the decoder
    unchanged = [changes["image"]["other kp2d"], changes["P"]["own kp2d"], changes["P"]["other kp2d"]]
    np.testing.assert_allclose(unchanged, 0.0, atol=FLOAT_NOISE_PX, err_msg=str(changes))


@pytest.mark.parametrize("view_skip", [True, False])
def test_view_skip_gives_each_decoder_its_own_code_beside_the_fused_one(view_skip, rng):
    """With the per-view skip the views still exchange information; with the fused code silenced
    (last fusion layer zeroed) each view's joints still follow its own image only. Without the
    skip a silenced fusion leaves the decoders nothing: no image moves any joint."""
    network = _sharp_tiny_model(2, rng, view_skip=view_skip)
    inputs = make_batch(rng, 2, 4)[0]
    assert _exchanging_edits(_changes_from_view_zero(network, inputs, rng)) == {"image", "P"}
    last = network.get_layer("fusion1_linear")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    changes = _changes_from_view_zero(network, inputs, rng)
    assert _exchanging_edits(changes) == set(), changes
    if view_skip:
        assert changes["image"]["own kp2d"] > EXCHANGE_PX, changes
    else:
        np.testing.assert_allclose(changes["image"]["own kp2d"], 0.0, atol=FLOAT_NOISE_PX, err_msg=str(changes))


def _predict(network, inputs):
    return {name: keras.ops.convert_to_numpy(value) for name, value in network(inputs, training=False).items()}


def test_last_fusion_layer_is_linear_so_canonical_points_can_be_negative(rng):
    """The fused code is unconstrained (paper); ``fusion_last_relu`` is the old positive-orthant variant."""
    inputs = make_batch(rng, 2, 4)[0]
    for last_relu in (False, True):
        config = dataclasses.replace(model.CONFIGS["tiny"], fusion_last_relu=last_relu)
        network = model.build_model(config, num_views=4)
        _perturb_weights(network, rng)
        last = network.get_layer("fusion1_relu" if last_relu else "fusion1_linear").output
        fused = keras.ops.convert_to_numpy(keras.Model(network.inputs, last)(inputs, training=False))
        assert (fused.min() >= 0) == last_relu and fused.max() > 0


def test_mean_fusion_does_not_depend_on_the_order_of_the_views(rng):
    network = _sharp_tiny_model(2, rng, "mean")
    inputs = make_batch(rng, 2, 4)[0]
    order = np.array([2, 0, 3, 1])
    reference, permuted = _predict(network, inputs), _predict(network, {k: v[:, order] for k, v in inputs.items()})
    np.testing.assert_allclose(permuted["kp2d"], reference["kp2d"][:, order], atol=1e-3)
    np.testing.assert_allclose(permuted["kp3d"], reference["kp3d"], atol=1e-2)
    # The views' joints differ by far more than the tolerance, so an unpermuted output would fail.
    assert np.abs(reference["kp2d"][:, order] - reference["kp2d"]).max() > 1.0
    concat = _sharp_tiny_model(2, rng, "concat")
    changed = _predict(concat, {k: v[:, order] for k, v in inputs.items()})
    assert np.abs(changed["kp3d"] - _predict(concat, inputs)["kp3d"]).max() > 1.0  # slot k is camera k


@pytest.mark.parametrize("fusion", model.FUSIONS)
def test_a_masked_view_changes_nothing_the_model_sees(fusion, rng):
    """A masked view's image and camera reach neither the fused code nor the DLT: the visible views'
    joints and the 3D joints are those of the same model without that view (mean fusion)."""
    network = _sharp_tiny_model(2, rng, fusion)
    inputs = make_batch(rng, 2, 4)[0]
    masked = {**inputs, "view_mask": np.array([[1, 1, 1, 0], [1, 0, 1, 1]], np.float32)}
    edited = {**masked, "images": masked["images"].copy(), "P": masked["P"].copy()}
    edited["images"][0, 3] = rng.integers(0, 256, edited["images"][0, 3].shape, dtype=np.uint8)
    edited["images"][1, 1] = 0
    edited["P"][0, 3] = edited["P"][0, 0]
    a, b = _predict(network, masked), _predict(network, edited)
    np.testing.assert_allclose(b["kp3d"], a["kp3d"], atol=1e-2)
    visible = masked["view_mask"].astype(bool)
    np.testing.assert_allclose(b["kp2d"][visible], a["kp2d"][visible], atol=1e-3)
    assert np.abs(a["kp3d"] - _predict(network, inputs)["kp3d"]).max() > 1.0  # the mask does act
    if fusion == "mean":  # and equals the same weights built for the visible views only
        three = model.build_model(dataclasses.replace(model.CONFIGS["tiny"], fusion="mean"), num_views=3)
        three.set_weights(network.get_weights())
        first = {k: v[:1][:, [0, 1, 2]] for k, v in inputs.items()}
        first["view_mask"] = np.ones((1, 3), np.float32)
        alone = _predict(three, first)
        np.testing.assert_allclose(alone["kp3d"][0], a["kp3d"][0], atol=1e-2)
        np.testing.assert_allclose(alone["kp2d"][0], a["kp2d"][0, :3], atol=1e-3)


def test_mean_fusion_weights_serve_any_number_of_views(tmp_path, rng):
    """Weights of a 2-view order-free model load whole into models of 3 and 6 views: every weight
    equal by name (Keras' warning about unmatched op containers is about weightless ops)."""
    from common import weights_files
    network = _sharp_tiny_model(2, rng, "mean")
    path = str(tmp_path / "mean.weights.h5")
    weights_files.save_weights(network, path, {"config": "tiny-mean"})
    saved = {weight.path: keras.ops.convert_to_numpy(weight) for weight in network.weights}
    config = dataclasses.replace(model.CONFIGS["tiny"], fusion="mean", name="tiny-mean")
    for views in (2, 3, 6):
        other = model.build_model(config, num_views=views)
        weights_files.load_weights(other, path, "tiny-mean")
        loaded = {weight.path: keras.ops.convert_to_numpy(weight) for weight in other.weights}
        assert loaded.keys() == saved.keys()
        for name, value in saved.items():
            np.testing.assert_array_equal(loaded[name], value, err_msg=name)
        outputs = _predict(other, make_batch(rng, 1, views)[0])
        assert outputs["kp2d"].shape == (1, views, 17, 2) and np.isfinite(outputs["kp3d"]).all()
    with pytest.raises(ValueError):  # a concat model's fusion holds V x the channels
        concat = _sharp_tiny_model(2, rng, "concat")
        concat.save_weights(tmp_path / "concat.weights.h5")
        model.build_model(model.CONFIGS["tiny"], num_views=3).load_weights(tmp_path / "concat.weights.h5")


# --------------------------------------------------------------------------- training through the DLT

def _loss_3d_gradients(network, inputs, targets, loss):
    with tf.GradientTape() as tape:
        value = loss(targets["kp3d"], network(inputs, training=True)["kp3d"])
    return value, tape.gradient(value, network.trainable_variables)


def test_encoder_gets_gradients_from_the_3d_loss_alone(rng):
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    network = model.build_model("tiny", num_views=3)
    inputs, targets, _ = make_batch(rng, 2, 3)
    _, gradients = _loss_3d_gradients(network, inputs, targets, losses.Loss3D("l1"))
    encoder = {id(variable) for variable in network.get_layer("tiny_encoder").trainable_variables}
    assert len(encoder) > 10
    for variable, gradient in zip(network.trainable_variables, gradients):
        assert gradient is not None, variable.path
        gradient = keras.ops.convert_to_numpy(gradient)
        assert np.all(np.isfinite(gradient)), variable.path
        if id(variable) in encoder:
            encoder.remove(id(variable))
            assert np.abs(gradient).max() > 0, f"no gradient reaches the encoder's {variable.path}"
    assert not encoder, "some encoder variables are not trainable variables of the model"


def test_training_steps_with_3d_loss_lower_it_and_keep_gradients_finite(rng):
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    network = model.build_model("tiny", num_views=4)
    inputs, targets, _ = make_batch(rng, 4, 4)
    loss = losses.Loss3D("huber")
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step():
        value, gradients = _loss_3d_gradients(network, inputs, targets, loss)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
        optimizer.apply_gradients(zip(gradients, network.trainable_variables))
        return value, finite

    history = []
    for _ in range(12):
        value, finite = step()
        assert bool(finite), f"non-finite gradient at step {len(history)}"
        history.append(float(value))
    assert np.all(np.isfinite(history))
    assert np.mean(history[-3:]) < 0.8 * history[0], history


# --------------------------------------------------------------------------- saving

@pytest.mark.parametrize("fusion_layers", [2, 0])
def test_save_and_load_round_trip(fusion_layers, tmp_path, rng):
    config = dataclasses.replace(model.CONFIGS["tiny"], fusion_layers=fusion_layers)
    network = model.build_model(config, num_views=4)
    _perturb_weights(network, rng)
    inputs, _, _ = make_batch(rng, 2, 4)
    expected = {k: keras.ops.convert_to_numpy(v) for k, v in network(inputs, training=False).items()}

    network.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    network.save_weights(tmp_path / "model.weights.h5")
    rebuilt = model.build_model(config, num_views=4)
    rebuilt.load_weights(tmp_path / "model.weights.h5")
    for restored in (loaded, rebuilt):
        outputs = restored(inputs, training=False)
        for name, value in expected.items():
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs[name]), value, err_msg=name)


# --------------------------------------------------------------------------- losses

def test_loss_values_against_numpy(rng):
    true_2d, pred_2d = rng.uniform(0, 128, (2, 3, 4, 5, 2)).astype(np.float32)
    error = (pred_2d - true_2d) / 128
    np.testing.assert_allclose(float(losses.Loss2D(128, "mse")(true_2d, pred_2d)), np.mean(error ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(losses.Loss2D(128, "l1")(true_2d, pred_2d)), np.mean(np.abs(error)), rtol=1e-5)

    true_3d, pred_3d = rng.normal(0, 100, (2, 3, 17, 3)).astype(np.float32)
    difference = np.abs(pred_3d - true_3d)
    np.testing.assert_allclose(float(losses.Loss3D("l1")(true_3d, pred_3d)), difference.mean(), rtol=1e-5)
    huber = np.where(difference < 50, 0.5 * difference ** 2 / 50, difference - 25)
    np.testing.assert_allclose(float(losses.Loss3D("huber", 50.0)(true_3d, pred_3d)), huber.mean(), rtol=1e-5)

    pred_3d[1, 4, 2] = np.nan                            # never masked
    assert not np.isfinite(float(losses.Loss3D("l1")(true_3d, pred_3d)))
    with pytest.raises(ValueError, match="Unknown 3D loss"):
        losses.Loss3D("l2")
    with pytest.raises(ValueError, match="final_weight, warmup_steps, ramp_steps >= 0"):
        losses.Loss3DWeight(-1.0)


def test_metrics_in_mm_and_px_against_numpy(rng):
    true_3d, pred_3d = rng.normal(0, 100, (2, 5, 17, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses.mpjpe(true_3d, pred_3d)),
                               np.linalg.norm(pred_3d - true_3d, axis=-1).mean(axis=-1), rtol=1e-5)
    true_2d, pred_2d = rng.normal(0, 10, (2, 5, 4, 17, 2)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses.pixel_error(true_2d, pred_2d)),
                               np.linalg.norm(pred_2d - true_2d, axis=-1).mean(axis=(1, 2)), rtol=1e-5)


def test_ramp_weight_schedule():
    values = [losses.ramp_weight(step, 0.5, warmup_steps=3, ramp_steps=4) for step in range(9)]
    np.testing.assert_allclose(values, [0, 0, 0, 0.125, 0.25, 0.375, 0.5, 0.5, 0.5])
    assert losses.ramp_weight(3, 0.5, warmup_steps=3, ramp_steps=0) == 0.5


def test_fit_ramps_the_3d_weight_of_any_loss_and_fails_on_non_finite_loss(rng):
    """The ramp weighs whatever loss sits under kp3d: here a plain function the user wrote."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    network = model.build_model("tiny", num_views=2)
    inputs, targets, _ = make_batch(rng, 2, 2)
    weight_3d = losses.Loss3DWeight(0.01, warmup_steps=2, ramp_steps=2)

    def users_3d_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_pred - y_true) / 1000.0, axis=(1, 2))

    network.compile(optimizer=keras.optimizers.Adam(1e-4), loss={"kp2d": losses.Loss2D(IMAGE_SIZE), "kp3d": users_3d_loss},
                    loss_weights={"kp2d": 1.0, "kp3d": weight_3d.variable})
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            (float(keras.ops.convert_to_numpy(weight_3d.variable)), logs["loss"], logs["kp2d_loss"], logs["kp3d_loss"])))
    guard = losses.RaiseOnNonFinite()
    network.fit(inputs, targets, batch_size=2, epochs=5, verbose=0, callbacks=[weight_3d, guard, record])
    weights = [entry[0] for entry in seen]
    np.testing.assert_allclose(weights, [0, 0, 0.005, 0.01, 0.01])
    for weight, total, term_2d, term_3d in seen:            # logs: unweighted terms, weighted total
        assert term_3d > 1.0
        np.testing.assert_allclose(total, term_2d + weight * term_3d, rtol=1e-4)

    targets["kp3d"][1, 3, 0] = np.nan
    with pytest.raises(losses.NonFiniteLossError, match="kp3d_loss"):
        network.fit(inputs, targets, batch_size=2, epochs=1, verbose=0, callbacks=[weight_3d, guard])


# --------------------------------------------------------------------------- other backends

SECOND_BACKEND_SCRIPT = """
import numpy as np, keras, model
network = model.build_model("tiny", num_views=2)
rng = np.random.default_rng(0)
P = np.concatenate([np.eye(3), [[0.0], [0.0], [5000.0]]], axis=1) * 1.0
P2 = np.concatenate([[[0.0, 0, -1], [0, 1, 0], [1, 0, 0]], [[0.0], [0.0], [5000.0]]], axis=1)
K = np.array([[300.0, 0, 64], [0, 300, 64], [0, 0, 1]])
inputs = {"images": rng.integers(0, 256, (1, 2, 128, 128, 3), dtype=np.uint8),
          "P": np.stack([K @ P, K @ P2])[None].astype("float32"), "K": np.stack([K, K])[None].astype("float32"),
          "dist": np.zeros((1, 2, 6), "float32"), "view_mask": np.ones((1, 2), "float32")}
outputs = network(inputs, training=False)
assert tuple(outputs["kp3d"].shape) == (1, 17, 3)
assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in outputs.values())
print("ok", keras.backend.backend())
"""


def soft_argmax_float64(logits, image_size, beta):
    """(N, H, W, J) logits -> (N, J, 2) crop px, the soft-argmax of model.SoftArgmax in float64."""
    logits = np.asarray(logits, np.float64) * float(beta)
    n, height, width, joints = logits.shape
    flat = logits.reshape(n, height * width, joints)
    weights = np.exp(flat - flat.max(axis=1, keepdims=True))
    weights = (weights / weights.sum(axis=1, keepdims=True)).reshape(n, height, width, joints)
    centres = lambda cells: (np.arange(cells) + 0.5) * image_size / cells - 0.5
    return np.stack([np.einsum("nhwj,w->nj", weights, centres(width)),
                     np.einsum("nhwj,h->nj", weights, centres(height))], axis=-1)


def test_geometry_stays_float32_under_mixed_bfloat16(rng):
    """bfloat16 convolutions, float32 FTL, soft-argmax, joints and DLT (model.GEOMETRY_DTYPE).

    With heatmaps made peaky like a trained network's (logits spread about 4, so the joints spread
    over the crop): the joints equal a float64 soft-argmax of the model's own (bfloat16) logits
    and the 3D joints a float64 DLT of its 2D joints, far closer than bfloat16 arithmetic could
    (8 bits of mantissa: a 128 px coordinate to 0.5 px); and the whole model stays within a
    few pixels of its float32 twin, the convolutions' rounding only."""
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        network = model.build_model("tiny", num_views=4)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    for name in ("normalize_P", "ftl_inverse", "ftl", "soft_argmax", "kp2d", "kp3d"):
        assert network.get_layer(name).compute_dtype == "float32", name
    assert network.get_layer("fusion0_conv").compute_dtype == "bfloat16"
    _perturb_weights(network, rng)
    inputs, _, _ = make_batch(rng, 2, 4)
    logits_layer = network.get_layer("heatmap_logits")
    logits_of = keras.Model(network.inputs, logits_layer.output)
    spread = np.std(keras.ops.convert_to_numpy(logits_of(inputs, training=False)))
    logits_layer.kernel.assign(keras.ops.convert_to_numpy(logits_layer.kernel) * (4.0 / spread))
    outputs = {k: keras.ops.convert_to_numpy(v) for k, v in network(inputs, training=False).items()}
    for name in ("kp2d", "kp3d"):
        assert outputs[name].dtype == np.float32 and np.isfinite(outputs[name]).all(), name
    assert np.ptp(outputs["kp2d"]) > 30  # the joints spread over the 128 px crop
    logits = keras.ops.convert_to_numpy(logits_of(inputs, training=False))
    beta = keras.ops.convert_to_numpy(network.get_layer("soft_argmax").beta)
    np.testing.assert_allclose(outputs["kp2d"].reshape(8, 17, 2), soft_argmax_float64(logits, 128, beta), atol=2e-3)
    exact_3d = dlt_layer.UndistortTriangulate(precision="float64")(
        outputs["kp2d"], inputs["P"], inputs["K"], inputs["dist"], view_mask=inputs["view_mask"])
    np.testing.assert_allclose(outputs["kp3d"], keras.ops.convert_to_numpy(exact_3d), atol=0.05)
    twin = model.build_model("tiny", num_views=4)
    twin.set_weights(network.get_weights())
    gap = np.abs(keras.ops.convert_to_numpy(twin(inputs, training=False)["kp2d"]) - outputs["kp2d"])
    assert gap.mean() < 2.0, gap.mean()  # px: the bfloat16 convolutions' rounding, through peaky heatmaps


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_forward_under_a_second_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed, so the {backend} backend of Keras cannot be tested")
    result = subprocess.run([sys.executable, "-c", SECOND_BACKEND_SCRIPT], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": backend},
                            cwd=os.path.dirname(os.path.abspath(model.__file__)), timeout=300)
    assert result.returncode == 0 and f"ok {backend}" in result.stdout, result.stderr[-3000:]


def test_reestimate_batch_norm_sets_the_mean_of_the_batch_statistics(rng):
    """After re-estimation a BatchNorm layer's moving mean is the mean of its input's batch means
    over the given batches (computed here through a sub-model); its momentum is restored."""
    keras.utils.set_random_seed(0)
    network = model.build_model("tiny", num_views=2)
    batches = [make_batch(rng, 2, 2)[0] for _ in range(3)]
    norm = network.get_layer("decoder0_bn")
    assert model.reestimate_batch_norm(network, batches) == 3
    before_norm = keras.Model(network.inputs, network.get_layer("decoder0_deconv").output)
    means = [keras.ops.convert_to_numpy(before_norm(batch, training=True)).mean(axis=(0, 1, 2)) for batch in batches]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_mean), np.mean(means, axis=0), atol=1e-5)
    assert norm.momentum == 0.99
    encoder_norm = network.get_layer("tiny_encoder").get_layer("stem_bn")
    assert np.abs(keras.ops.convert_to_numpy(encoder_norm.moving_mean)).max() > 0  # nested layers too
