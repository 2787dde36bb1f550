"""visualize.py: the pictures are drawn where the joints are, with equal 3D axes."""
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

import h36m_utils
import visualize

J = len(h36m_utils.J17)


def test_2d_plot_draws_the_skeleton_over_the_crop(tmp_path):
    rng = np.random.default_rng()
    size = 64
    images = np.full((1, 1, size, size, 3), 255, np.uint8)  # one white crop
    joints = rng.uniform(16, 48, size=(1, 1, J, 2))
    path = visualize.plot_keypoints_2d(images, joints, joints, str(tmp_path / "kpts.png"), ["S11 Walking 1 #0"])
    picture = matplotlib.image.imread(path)[..., :3]
    coloured = (picture.max(axis=-1) - picture.min(axis=-1)) > 0.3  # bone colours, not white/grey/black
    assert coloured.sum() > 50  # bones were drawn
    with pytest.raises(ValueError, match="frames/views differ"):
        visualize.plot_keypoints_2d(images, joints, np.concatenate([joints, joints]), str(tmp_path / "x.png"))


def test_3d_plot_uses_equal_axes(tmp_path):
    rng = np.random.default_rng()
    pose = rng.normal(0, 1, size=(J, 3)) * np.array([100.0, 300.0, 900.0]) + 2000.0
    figure = plt.figure()
    axis = figure.add_subplot(projection="3d")
    visualize.set_equal_axes_3d(axis, pose)
    spans = [float(np.diff(getter())[0]) for getter in (axis.get_xlim, axis.get_ylim, axis.get_zlim)]
    np.testing.assert_allclose(spans, [spans[2]] * 3, rtol=1e-9)
    for getter, column in zip((axis.get_xlim, axis.get_ylim, axis.get_zlim), pose.T):
        low, high = getter()
        assert low <= column.min() and column.max() <= high
    plt.close(figure)
    path = visualize.plot_skeletons_3d(pose[None], pose[None] + 10.0, str(tmp_path / "sub" / "3d.png"))
    assert matplotlib.image.imread(path).shape[0] > 100


def test_bones_are_coloured_by_side():
    assert visualize.edge_color(0, 4) == visualize.LEFT_COLOR  # pelvis -> left hip
    assert visualize.edge_color(0, 1) == visualize.RIGHT_COLOR  # pelvis -> right hip
    assert visualize.edge_color(0, 7) == visualize.CENTER_COLOR  # pelvis -> spine
