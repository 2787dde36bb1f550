"""crops: root-centred boxes (checked on the real Human3.6M sample), the cache box, cutting."""
import json

import cv2
import numpy as np
import pytest
import scipy.ndimage

from common import crops
import h36m_utils
from common import geometry


def test_box_edges_land_on_crop_pixel_edges():
    rng = np.random.default_rng()
    center, side, size = rng.uniform(-200, 1200, 2), rng.uniform(50, 900), int(rng.integers(32, 300))
    crop = crops.box_crop_matrix(center, side, size)
    corners = np.array([center - side / 2, center + side / 2])
    np.testing.assert_allclose(geometry.apply_affine(corners, crop), [[-0.5, -0.5], [size - 0.5, size - 0.5]], atol=1e-9)
    np.testing.assert_allclose(geometry.apply_affine(center, crop), [(size - 1) / 2] * 2, atol=1e-9)


def real_frames(sample_dir):
    """[(camera, (17, 3) world mm, (17, 2) labelled pixels)] of the 4 real annotated frames."""
    cameras = h36m_utils.load_cameras(str(sample_dir / "camera-parameters.json"))
    content = json.loads((sample_dir / "h36m_coco.json").read_text())
    frames = []
    for image, annotation in zip(content["images"], content["annotations"]):
        subject, camera_id = image["file_name"].split("_")[0], image["file_name"].split(".")[1].split("_")[0]
        world = np.reshape(annotation["keypoints_3d"], (-1, 4))[:, :3] * 1000.0
        frames.append((cameras[subject][camera_id], world, np.reshape(annotation["keypoints"], (-1, 3))[:, :2]))
    return frames


def test_root_box_of_two_metres_holds_the_real_joints(h36m_sample_dir):
    """On the 4 real frames (standing, sitting, walking): the box is centred on the pelvis' pixel,
    its side is 2 m at the pelvis' depth, and every labelled joint lies inside the unjittered crop."""
    for camera, world, labelled in real_frames(h36m_sample_dir):
        center, side = crops.root_box(world[0], camera, 2000.0)
        np.testing.assert_allclose(center, labelled[0], atol=1e-3)  # the labelled pelvis pixel
        depth = geometry.world_to_camera(world[0], camera)[2]
        assert side == pytest.approx(2000.0 * camera.K[0, 0] / depth, rel=1e-3)
        inside = geometry.apply_affine(labelled, crops.box_crop_matrix(center, side, 256))
        assert inside.min() > 0 and inside.max() < 255


def test_root_box_depends_on_the_pelvis_only_and_refuses_points_behind_the_camera(h36m_sample_dir):
    camera, world, _ = real_frames(h36m_sample_dir)[0]
    center, side = crops.root_box(world[0], camera, 2000.0)
    bigger = crops.root_box(world[0], camera, 3000.0)
    np.testing.assert_array_equal(bigger[0], center)
    assert bigger[1] == pytest.approx(1.5 * side)
    behind = camera.center + (camera.center - world[0])  # mirrored through the camera centre
    with pytest.raises(ValueError, match=f"behind camera {camera.id}"):
        crops.root_box(behind, camera, 2000.0)


def test_cache_margin_is_a_fraction_of_the_box_on_every_side():
    for size, margin in ((256, 0.25), (128, 0.1), (64, 0.0)):
        config = crops.CropConfig(size, margin=margin)
        assert config.cache_size == size + 2 * config.pad
        assert size * margin <= config.pad < size * margin + 1
    with pytest.raises(ValueError, match="box_mm > 0"):
        crops.CropConfig(64, box_mm=0)
    with pytest.raises(ValueError, match="margin"):
        crops.CropConfig(64, margin=-0.1)


def test_unjittered_crop_is_the_centre_window_of_the_cached_crop():
    rng = np.random.default_rng()
    frame = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (5, 5), 2)
    config = crops.CropConfig(48)
    center, side = rng.uniform(50, 300, 2), rng.uniform(60, 250)
    cached = crops.crop_frame(frame, crops.cache_crop_matrix(center, side, config), config.cache_size)
    direct = crops.crop_frame(frame, crops.box_crop_matrix(center, side, config.image_size), config.image_size)
    window = cached[config.pad:config.pad + config.image_size, config.pad:config.pad + config.image_size]
    # The same source positions; OpenCV rounds them to 1/32 px, so a level may differ at a steep edge.
    difference = np.abs(window.astype(int) - direct)
    assert difference.max() <= 1 and difference.mean() < 0.05


def test_crop_outside_the_frame_is_padded_not_clamped():
    rng = np.random.default_rng()
    frame = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    # Scale 1, integer offset hanging over the top-left corner: the crop is a padded slice of the frame.
    crop = geometry.crop_matrix(1.0, -7, -3)
    padded = np.pad(frame, ((3, 30), (7, 30), (0, 0)))
    np.testing.assert_array_equal(crops.crop_frame(frame, crop, 32), padded[:32, :32])


def test_scaled_crop_matches_bilinear_reference():
    rng = np.random.default_rng()
    frame = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (5, 5), 2)
    scale, ox, oy, size = 1.7, 60.3, -9.6, 48  # the box runs off the right and top edges
    image = crops.crop_frame(frame, geometry.crop_matrix(scale, ox, oy), size)
    # Crop pixel (x, y) shows frame point (x / s + ox, y / s + oy): scipy's bilinear, zero outside.
    ys, xs = np.mgrid[0:size, 0:size] / scale + np.array([oy, ox])[:, None, None]
    reference = np.stack([scipy.ndimage.map_coordinates(frame[..., c].astype(float), [ys, xs], order=1,
                                                        mode="grid-constant", cval=0) for c in range(3)], -1)
    # OpenCV rounds sample positions to 1/32 pixel and weights to fixed point: a few levels at steep edges.
    assert np.abs(image - reference).max() <= 4 and np.abs(image - reference).mean() < 0.5
    assert (image[:, -5:] == 0).all() and (image[:5] == 0).all()  # padding, not stretched border pixels
