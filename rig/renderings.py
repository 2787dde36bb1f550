"""Predictions drawn as the videos a user watches; arrays in, mp4 out, no TensorFlow.

* ``OverlayVideoWriter`` -> ``overlay.mp4``: the views tiled, the 2D joints and skeleton drawn over them;
* ``SkeletonVideoWriter`` -> ``skeleton_3d.mp4``: the 3D skeleton over a floor grid.

Units as ``exports``' files: 3D joints in world mm, 2D joints in pixels of each full frame (distorted),
pixel centres at integer coordinates. A joint that could not be predicted is NaN and is not
drawn. The writers stream: they hold one frame, so a video of any length fits in memory. Colours
are ``visualize``'s: the subject's left side blue, right red, centre green.
"""
from __future__ import annotations

import math

import cv2
import matplotlib.colors
import numpy as np
from common import geometry
from common import skeleton
from common import video_io
from common import visualize
from rig.exports import NUM_JOINTS
from rig.exports import checked

ANKLES = (skeleton.JOINT_NAMES_17.index("right_ankle"), skeleton.JOINT_NAMES_17.index("left_ankle"))

FLOOR_GRID_MM = 500.0
VIEW_ELEVATION_DEG = 20.0  # the skeleton video's camera: this far above the horizon,
VIEW_AZIMUTH_DEG = 45.0  # this far around ``up`` from the first horizontal axis,
VIEW_HALF_FOV_DEG = 25.0  # with this half field of view on the narrower side of the picture
VIEW_MARGIN = 1.1  # room around the track's bounding sphere
# The overlay's views fill at most a full-HD screen, their tiles at most this wide: a larger
# mosaic shows a screen nothing more and costs predict encoding time (a 2 x 2 mosaic of portrait
# 1080 x 1920 views 480 px wide is 960 x 1708 and took as long to encode as the videos to decode).
OVERLAY_SCREEN = (1920, 1080)
OVERLAY_TILE_WIDTH = 480
BACKGROUND_BGR = (32, 32, 32)
GRID_BGR = (110, 110, 110)
TEXT_BGR = (255, 255, 255)
_SHIFT_BITS = 4  # OpenCV draws at 1/16 pixel: joints land where they are, not on the nearest pixel
_DRAWABLE_PX = 1e6  # beyond this a coordinate is a failed prediction, and would overflow OpenCV's ints


def _bgr(color: str) -> tuple[int, int, int]:
    red, green, blue = matplotlib.colors.to_rgb(color)
    return round(255 * blue), round(255 * green), round(255 * red)


BONE_BGR = tuple(_bgr(visualize.edge_color(parent, child)) for parent, child in skeleton.EDGES_17)
# edge_color(j, j) is the colour of joint j's side of the body.
JOINT_BGR = tuple(_bgr(visualize.edge_color(joint, joint)) for joint in range(NUM_JOINTS))


# --------------------------------------------------------------------------- drawing

def _drawable(points: np.ndarray) -> np.ndarray:
    """(N,) True where a (N, 2) pixel point can be drawn: finite, not absurdly far out."""
    return np.all(np.isfinite(points) & (np.abs(points) < _DRAWABLE_PX), axis=-1)


def _fixed_point(point: np.ndarray) -> tuple[int, int]:
    return tuple(int(round(value * (1 << _SHIFT_BITS))) for value in point)


def draw_skeleton(image: np.ndarray, joints_px: np.ndarray, thickness: int, bone_order=None) -> None:
    """Draw the 17-joint skeleton into ``image`` (H, W, 3) uint8 BGR, in place.

    joints_px: (17, 2) pixels of ``image`` (centres at integers; NaN joints and their bones are
    skipped); bones ``thickness`` px wide in their side's colour, joints as dots of the same
    colour; bone_order: indices into ``EDGES_17`` to draw in that order (the later on top).
    """
    ok = _drawable(joints_px)
    for edge in range(len(skeleton.EDGES_17)) if bone_order is None else bone_order:
        parent, child = skeleton.EDGES_17[edge]
        if ok[parent] and ok[child]:
            cv2.line(image, _fixed_point(joints_px[parent]), _fixed_point(joints_px[child]),
                     BONE_BGR[edge], thickness, cv2.LINE_AA, _SHIFT_BITS)
    for joint in np.flatnonzero(ok):
        cv2.circle(image, _fixed_point(joints_px[joint]), (thickness + 1) << _SHIFT_BITS,
                   JOINT_BGR[joint], -1, cv2.LINE_AA, _SHIFT_BITS)


def _draw_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text with a dark outline, legible over any video."""
    for color, width in ((BACKGROUND_BGR, 3), (TEXT_BGR, 1)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, width, cv2.LINE_AA)


def _even(value: float) -> int:
    """The nearest even whole number of at least 2: video codecs want even frame sizes."""
    return max(2, 2 * round(value / 2))


class _VideoFile:
    """An mp4 written one frame at a time; closed by ``close()`` or at the end of a ``with`` block."""

    def __init__(self, path, fps: float, size: tuple[int, int]):
        self.size = size  # (width, height) of the video's frames
        self._writer = video_io.open_video_writer(path, fps, size)

    def _write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        self.close()


# --------------------------------------------------------------------------- overlay video

def grid_columns(num_views: int) -> int:
    """Columns of the overlay's grid: 1 view 1, 2 to 4 views 2, 5 to 9 views 3, 10 and more 4."""
    return min(4, math.ceil(math.sqrt(num_views)))


class OverlayVideoWriter(_VideoFile):
    """``overlay.mp4``: the V views tiled in a grid, each with its 2D joints and skeleton drawn over it.

    camera_names: (V,) names, written on the tiles; frame_sizes: V (width, height) of the full
    frames; fps: frames per second of the video; tile_width: pixels of a view's tile (made even;
    None: ``OVERLAY_TILE_WIDTH``, narrower where the grid would not fit ``OVERLAY_SCREEN``).
    Every view is scaled, keeping its aspect, into a tile ``tile_width`` wide and as high as the
    tallest view at that width, and centred in it; the tiles fill a grid of ``grid_columns(V)``
    columns, row by row, in the cameras' order. ``add`` writes one video frame; only that frame is
    held.
    """

    def __init__(self, path, camera_names, frame_sizes, fps: float, tile_width: int | None = None):
        self.camera_names = [str(name) for name in camera_names]
        self.frame_sizes = [(int(width), int(height)) for width, height in frame_sizes]
        if len(self.frame_sizes) != len(self.camera_names) or not self.camera_names:
            raise ValueError(f"{len(self.camera_names)} camera names but {len(self.frame_sizes)} frame sizes")
        self.columns = grid_columns(len(self.camera_names))
        rows = math.ceil(len(self.camera_names) / self.columns)
        if tile_width is None:
            (screen_width, screen_height), tallest = OVERLAY_SCREEN, max(h / w for w, h in self.frame_sizes)
            tile_width = min(OVERLAY_TILE_WIDTH, screen_width / self.columns, screen_height / rows / tallest)
        self.tile_size = (_even(tile_width),
                          _even(max(tile_width * height / width for width, height in self.frame_sizes)))
        self.thickness = max(2, self.tile_size[0] // 120)
        super().__init__(path, fps, (self.columns * self.tile_size[0], rows * self.tile_size[1]))

    def view_box(self, view: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) in video pixels of ``view``'s scaled frame inside its tile."""
        (width, height), (tile_width, tile_height) = self.frame_sizes[view], self.tile_size
        scale = min(tile_width / width, tile_height / height)
        scaled_width, scaled_height = round(width * scale), round(height * scale)
        row, column = divmod(view, self.columns)
        return (column * tile_width + (tile_width - scaled_width) // 2,
                row * tile_height + (tile_height - scaled_height) // 2, scaled_width, scaled_height)

    def to_video_pixels(self, view: int, points: np.ndarray) -> np.ndarray:
        """(..., 2) pixels of ``view``'s full frame -> (..., 2) pixels of the video frame.

        A resize maps pixel edges to pixel edges, so with centres at integers ``u' = s (u + 0.5) - 0.5``.
        """
        x, y, width, height = self.view_box(view)
        scale = np.array([width / self.frame_sizes[view][0], height / self.frame_sizes[view][1]])
        return (np.asarray(points, np.float64) + 0.5) * scale - 0.5 + np.array([x, y])

    def shrink(self, view: int, frame_bgr: np.ndarray) -> np.ndarray:
        """``view``'s (H_v, W_v, 3) full frame scaled to its box in the tile (a new array).

        Halved by pixel averaging while at least twice the box (OpenCV's fast path for a whole
        factor), then scaled the rest of the way bilinearly: one area resize by a fraction of a
        whole factor costs more than decoding the frame.
        """
        _, _, width, height = self.view_box(view)
        name = self.camera_names[view]
        if frame_bgr.shape[1::-1] != self.frame_sizes[view]:
            raise ValueError(f"camera {name}: frame is {frame_bgr.shape[1]}x{frame_bgr.shape[0]} px, "
                             f"expected {self.frame_sizes[view][0]}x{self.frame_sizes[view][1]}")
        while frame_bgr.shape[1] >= 2 * width and frame_bgr.shape[0] >= 2 * height:
            frame_bgr = cv2.resize(frame_bgr, (frame_bgr.shape[1] // 2, frame_bgr.shape[0] // 2),
                                   interpolation=cv2.INTER_AREA)
        return cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_LINEAR)

    def add(self, frames_bgr, joints_2d, label: str = "") -> None:
        """Write one video frame.

        frames_bgr: V (H_v, W_v, 3) uint8 BGR full frames, of the sizes given at construction, or
        their ``shrink``s; joints_2d: (V, 17, 2) pixels of the full frames (NaN joints are not
        drawn); label: text at the top left (e.g. "frame 120").
        """
        joints_2d = checked("joints_2d", joints_2d, (len(self.camera_names), NUM_JOINTS, 2))
        if len(frames_bgr) != len(self.camera_names):
            raise ValueError(f"{len(frames_bgr)} frames for {len(self.camera_names)} cameras")
        mosaic = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        for view, (frame, name) in enumerate(zip(frames_bgr, self.camera_names)):
            x, y, width, height = self.view_box(view)
            tile = mosaic[y:y + height, x:x + width]
            tile[:] = frame if frame.shape[1::-1] == (width, height) else self.shrink(view, frame)
            # drawn into the tile (a view of the mosaic): a bone leaving the frame stays out of its neighbours
            joints_in_tile = self.to_video_pixels(view, joints_2d[view]) - np.array([x, y])
            draw_skeleton(tile, joints_in_tile, self.thickness)
            _draw_text(tile, name, (4, height - 6), 0.4)
        if label:
            _draw_text(mosaic, label, (6, 18), 0.5)
        self._write(mosaic)


# --------------------------------------------------------------------------- 3D skeleton video

def _finite_points(joints: np.ndarray) -> np.ndarray:
    """(..., 3) -> (N, 3): the points with no NaN."""
    points = joints.reshape(-1, 3)
    return points[np.all(np.isfinite(points), axis=1)]


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, np.float64)
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"cannot make a direction of {vector}")
    return vector / norm


def horizontal_axes(up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the floor under ``up`` (3,): the world axis least along ``up``,
    made horizontal, and ``up x`` that, so (first, second, up) is right-handed."""
    up = _unit(up)
    axis = np.eye(3)[np.argmin(np.abs(up))]
    first = _unit(axis - axis.dot(up) * up)
    return first, np.cross(up, first)


def look_at_camera(eye, target, up, size: tuple[int, int], half_fov_deg: float) -> geometry.Camera:
    """A pinhole ``geometry.Camera`` (no distortion) at ``eye`` looking at ``target`` (world mm), with
    ``up`` pointing up in the picture and ``half_fov_deg`` the half field of view of the narrower side."""
    rotation = geometry.look_at(eye, target, up)
    width, height = size
    focal = min(width, height) / 2 / math.tan(math.radians(half_fov_deg))
    K = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])
    return geometry.Camera(R=rotation, t=-rotation @ eye, K=K, k=np.zeros(3), p=np.zeros(2),
                             width=width, height=height, id="skeleton_view")


class SkeletonVideoWriter(_VideoFile):
    """``skeleton_3d.mp4``: the 3D skeleton over a floor grid, seen from a fixed virtual camera.

    fps: frames per second; up: (3,) the up direction of the world (the rig frame's up in world
    coordinates, any length); floor: the floor's height along the unit ``up`` (mm: the floor is the
    plane of points X with X . up = floor); center (3,) world mm and radius (mm): a sphere the whole
    track stays in; size: (width, height) of the video. The floor carries grid lines every 0.5 m
    (on the world's 0.5 m lattice, so they do not move with the person). The camera (``camera``, an
    ``geometry.Camera`` without distortion, for ``geometry.project(..., distort=False)``) looks at
    ``center`` from ``VIEW_ELEVATION_DEG`` above the horizon, far enough that the sphere fits the
    picture. ``from_track`` fits all of this to a whole track.
    """

    def __init__(self, path, fps: float, up, floor: float, center, radius: float,
                 size: tuple[int, int] = (640, 480)):
        size = (_even(size[0]), _even(size[1]))
        self.up, self.floor, self.center = _unit(up), float(floor), np.asarray(center, np.float64)
        self.camera = self._view(float(radius), size)
        self.thickness = max(2, min(size) // 160)
        self._background = self._floor_grid(float(radius), size)
        super().__init__(path, fps, size)

    @classmethod
    def from_track(cls, path, joints_3d, fps: float, up, size: tuple[int, int] = (640, 480)):
        """The writer whose view fits a whole track ``joints_3d`` (T, 17, 3) world mm (NaN joints ignored):
        the floor at the lowest ankle of the track, the sphere around every joint of every frame."""
        joints_3d = checked("joints_3d", joints_3d, (None, NUM_JOINTS, 3)).astype(np.float64)
        points, ankles = _finite_points(joints_3d), _finite_points(joints_3d[:, list(ANKLES)])
        if not len(points):
            raise ValueError("the track has no finite joint to show")
        center = (points.min(axis=0) + points.max(axis=0)) / 2
        radius = max(float(np.linalg.norm(points - center, axis=1).max()), FLOOR_GRID_MM)
        floor = float(((ankles if len(ankles) else points) @ _unit(up)).min())
        return cls(path, fps, up, floor=floor, center=center, radius=radius, size=size)

    def _view(self, radius: float, size: tuple[int, int]) -> geometry.Camera:
        first, second = horizontal_axes(self.up)
        azimuth, elevation = math.radians(VIEW_AZIMUTH_DEG), math.radians(VIEW_ELEVATION_DEG)
        direction = (math.cos(elevation) * (math.cos(azimuth) * first + math.sin(azimuth) * second)
                     + math.sin(elevation) * self.up)
        # the sphere subtends the half field of view at this distance
        distance = VIEW_MARGIN * radius / math.sin(math.radians(VIEW_HALF_FOV_DEG))
        eye = self.center + distance * direction
        return look_at_camera(eye, self.center, self.up, size, VIEW_HALF_FOV_DEG)

    def _floor_grid(self, radius: float, size: tuple[int, int]) -> np.ndarray:
        """The background: grid lines every ``FLOOR_GRID_MM`` on the floor, over the track's footprint."""
        image = np.empty((size[1], size[0], 3), np.uint8)
        image[:] = BACKGROUND_BGR
        first, second = horizontal_axes(self.up)
        origin = self.floor * self.up  # the world origin dropped onto the floor: the lattice's origin
        half = 2 * radius  # the floor reaches well beyond the track
        # where the lines cross each axis: the 0.5 m lattice over center +- half
        ticks = [FLOOR_GRID_MM * np.arange(math.floor((self.center.dot(axis) - half) / FLOOR_GRID_MM),
                                           math.ceil((self.center.dot(axis) + half) / FLOOR_GRID_MM) + 1)
                 for axis in (first, second)]
        for along, across, positions, span in ((first, second, ticks[0], ticks[1]),
                                               (second, first, ticks[1], ticks[0])):
            for position in positions:
                base = origin + position * along
                segment = self._project_segment(base + span[0] * across, base + span[-1] * across)
                if segment is not None:
                    cv2.line(image, _fixed_point(segment[0]), _fixed_point(segment[1]), GRID_BGR, 1,
                             cv2.LINE_AA, _SHIFT_BITS)
        return image

    def _project_segment(self, start: np.ndarray, end: np.ndarray, near: float = 10.0):
        """(2, 2) pixels of the world segment start-end, cut where it passes behind the camera;
        None when all of it is behind."""
        points = geometry.world_to_camera(np.stack([start, end]), self.camera)
        depths = points[:, 2]
        if depths.max() <= near:
            return None
        if depths.min() < near:  # move the point behind the camera to the near plane
            behind = int(np.argmin(depths))
            fraction = (near - depths[behind]) / (depths[1 - behind] - depths[behind])
            points[behind] += fraction * (points[1 - behind] - points[behind])
        pixels = points[:, :2] / points[:, 2:] @ self.camera.K[:2, :2].T + self.camera.K[:2, 2]
        return pixels if _drawable(pixels).all() else None

    def add(self, joints_3d, label: str = "") -> None:
        """Write one video frame: ``joints_3d`` (17, 3) world mm (NaN joints are not drawn); label: text
        at the top left (e.g. "frame 120")."""
        joints_3d = checked("joints_3d", joints_3d, (NUM_JOINTS, 3)).astype(np.float64)
        image = self._background.copy()
        pixels = geometry.project(joints_3d, self.camera, distort=False)
        depths = geometry.world_to_camera(joints_3d, self.camera)[:, 2]
        # far bones first, so nearer ones cover them
        bone_depths = [depths[parent] + depths[child] for parent, child in skeleton.EDGES_17]
        far_to_near = np.argsort(np.nan_to_num(bone_depths, nan=-np.inf))[::-1]
        draw_skeleton(image, pixels, self.thickness, bone_order=far_to_near)
        if label:
            _draw_text(image, label, (6, 18), 0.5)
        self._write(image)
