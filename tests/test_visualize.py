"""visualize.py: the pictures are drawn where the joints are, with equal 3D axes."""
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from common import skeleton
from common import visualize

J = len(skeleton.J17)


def test_2d_plot_draws_the_skeleton_over_the_crop(tmp_path):
    """The bones' colours fall where the joints are: inside the joints' box, mapped from crop pixels
    to the picture through the black crop's place in the (white) figure, and nowhere else."""
    rng = np.random.default_rng()
    size = 64
    images = np.zeros((1, 1, size, size, 3), np.uint8)  # one black crop
    joints = np.stack([rng.uniform(6, 22, J), rng.uniform(38, 58, J)], axis=-1)[None, None]  # lower left
    path = visualize.plot_keypoints_2d(images, joints, joints, str(tmp_path / "kpts.png"), ["S11 Walking 1 #0"])
    picture = matplotlib.image.imread(path)[..., :3]
    rows, cols = np.nonzero(picture.max(axis=-1) < 0.05)  # the crop (the title's text is thin and apart)
    top, bottom = np.percentile(rows, [1, 99])
    left, right = np.percentile(cols, [1, 99])
    scale_x, scale_y = (right - left) / size, (bottom - top) / size
    coloured = (picture.max(axis=-1) - picture.min(axis=-1)) > 0.3  # bone colours, not white/grey/black
    ys, xs = np.nonzero(coloured)
    assert len(xs) > 50  # bones were drawn
    margin = 4  # picture pixels: the line width
    x_low, x_high = left + (joints[0, 0, :, 0].min() + 0.5) * scale_x, left + (joints[0, 0, :, 0].max() + 0.5) * scale_x
    y_low, y_high = top + (joints[0, 0, :, 1].min() + 0.5) * scale_y, top + (joints[0, 0, :, 1].max() + 0.5) * scale_y
    inside = (xs > x_low - margin) & (xs < x_high + margin) & (ys > y_low - margin) & (ys < y_high + margin)
    assert inside.all(), (xs[~inside][:5], ys[~inside][:5], (x_low, x_high, y_low, y_high))
    assert xs.max() - xs.min() > 0.5 * (x_high - x_low)  # and the bones span the joints, not a dot
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
