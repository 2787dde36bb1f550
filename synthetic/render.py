"""Rendering the synthetic person: each frame painted from 3D limb outlines and joint balls projected
through ``geometry.project`` (official distortion), over a room, so the pixels agree with the 2D labels.

By default every body part has its own colour (left and right differ) and the 17 standard joints carry
white balls; ``Look`` makes the sides alike and leaves the balls out. ``visible_joints`` says which
joints each picture shows (self-occlusion, props, outside the image).
"""
from __future__ import annotations

import dataclasses
import pathlib

import cv2
import numpy as np

from common import geometry
from common import video_io
from common.skeleton import J17
from synthetic.motion import FPS


@dataclasses.dataclass(frozen=True)
class BodyPart:
    """A limb drawn as a capsule between two joints (of the 32)."""

    name: str
    joint_a: int
    joint_b: int
    radius_mm: float
    colour_rgb: tuple


# Saturated colours (one channel well below 200) so that the white joint balls stand out;
# the left side in warm colours, the right side in cool ones.
BODY_PARTS = (
    BodyPart("hips", 1, 6, 85, (70, 70, 85)),
    BodyPart("abdomen", 0, 12, 110, (150, 150, 50)),
    BodyPart("chest", 12, 13, 120, (150, 150, 50)),
    BodyPart("shoulders", 17, 25, 60, (150, 150, 50)),
    BodyPart("neck", 13, 14, 45, (185, 135, 100)),
    BodyPart("head", 14, 15, 90, (205, 150, 115)),
    BodyPart("left_upper_arm", 17, 18, 48, (220, 50, 50)),
    BodyPart("left_forearm", 18, 19, 40, (240, 140, 30)),
    BodyPart("left_hand", 19, 22, 32, (230, 200, 40)),
    BodyPart("right_upper_arm", 25, 26, 48, (40, 80, 220)),
    BodyPart("right_forearm", 26, 27, 40, (30, 180, 220)),
    BodyPart("right_hand", 27, 30, 32, (120, 70, 200)),
    BodyPart("left_thigh", 6, 7, 70, (200, 40, 140)),
    BodyPart("left_shin", 7, 8, 52, (240, 120, 170)),
    BodyPart("left_foot", 8, 9, 40, (120, 50, 30)),
    BodyPart("right_thigh", 1, 2, 70, (30, 140, 60)),
    BodyPart("right_shin", 2, 3, 52, (120, 210, 70)),
    BodyPart("right_foot", 3, 4, 40, (20, 90, 90)),
)
JOINT_BALL_MM = 40.0           # radius of the white ball on each of the 17 joints
MIN_JOINT_BALL_PX = 2.5        # never smaller than this in the image
JOINT_BALL_RGB = (255, 255, 255)
# Shading: (radius fraction, shift toward the light as a radius fraction, brightness).
_SHADING_BANDS = ((1.0, 0.0, 0.6), (0.75, 0.2, 0.85), (0.4, 0.4, 1.1))
_AXIS_SAMPLES, _CAP_SAMPLES = 6, 7
_SHIFT_BITS = 4  # sub-pixel precision of OpenCV drawing: coordinates x 16


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def capsule_outlines(a: np.ndarray, b: np.ndarray, radius: np.ndarray, shift: np.ndarray,
                     camera: geometry.Camera) -> np.ndarray:
    """Silhouettes of capsules seen from ``camera``, as 3D points on their rims.

    a, b: (..., 3) world mm end points; radius, shift: (...,) mm, broadcast with a and b; the
    capsule's axis is moved by ``shift`` toward the light (up-left in the image) for shading.
    Returns (..., 2 * (axis samples + cap samples), 3) world mm, in drawing order: projected
    with ``geometry.project`` they outline the capsule in the distorted image.
    """
    a, b = np.broadcast_arrays(a, b)
    radius, shift = (np.asarray(x, np.float64)[..., None, None] for x in (radius, shift))
    axis = a[..., None, :] + np.linspace(0, 1, _AXIS_SAMPLES)[:, None] * (b - a)[..., None, :]
    view = _unit(axis - camera.center)
    side = np.cross((b - a)[..., None, :], view)
    # A capsule seen end-on (or a sphere) has no preferred side: use the image's x direction.
    end_on = np.linalg.norm(side, axis=-1, keepdims=True) < 1e-6
    side = _unit(np.where(end_on, np.cross(camera.R[1], view), side))
    along = np.cross(view, side)  # in the image plane, from a toward b
    # The shading shift goes toward the light (up-left in the image): one sign per capsule.
    light = -(camera.R[0] + camera.R[1])
    towards_light = np.sum(side[..., _AXIS_SAMPLES // 2, :] * light, -1)
    axis = axis + np.where(towards_light < 0, -1.0, 1.0)[..., None, None] * shift * side
    cap = np.linspace(0, np.pi, _CAP_SAMPLES + 2)[1:-1, None]
    # Half circles around the ends, from one side to the other, facing away from the capsule.
    cap_b = axis[..., -1:, :] + radius * (np.cos(cap) * side[..., -1:, :]
                                          + np.sin(cap) * along[..., -1:, :])
    cap_a = axis[..., :1, :] - radius * (np.cos(cap) * side[..., :1, :]
                                         + np.sin(cap) * along[..., :1, :])
    return np.concatenate([axis + radius * side, cap_b,
                           (axis - radius * side)[..., ::-1, :], cap_a], -2)


def _surface_mm() -> np.ndarray:
    """(17,) how far in front of each standard joint its body surface lies (largest limb radius)."""
    surface = np.zeros(32)
    for part in BODY_PARTS:
        for joint in (part.joint_a, part.joint_b):
            surface[joint] = max(surface[joint], part.radius_mm)
    return surface[list(J17)]


@dataclasses.dataclass(frozen=True)
class Look:
    """How the person looks. The defaults are the original set's: every part its own colour (left
    warm, right cool) and a white ball on each standard joint, which let one view place each joint
    it sees. ``alike_sides`` paints each right part in its left twin's colour (the real data's
    commonest 2D error is a left/right swap); ``joint_balls=False`` leaves the balls out."""

    joint_balls: bool = True
    alike_sides: bool = False


def _part_colours(look: Look) -> list:
    """(parts,) RGB colours of ``BODY_PARTS`` under ``look``."""
    colours = {part.name: part.colour_rgb for part in BODY_PARTS}
    if look.alike_sides:
        colours.update({name: colours[name.replace("right_", "left_")] for name in colours if name.startswith("right_")})
    return [colours[part.name] for part in BODY_PARTS]


@dataclasses.dataclass(frozen=True)
class _DrawList:
    """Everything to draw for one camera, all frames: the body's polygons and discs, and the
    static polygons of the props (``synthetic.props``), each item with its depth."""

    polygons: np.ndarray   # (T, parts, bands, points, 2) int32, pixel coordinates << shift
    discs: np.ndarray      # (T, balls, 3) int32: centre x, y, radius, << shift (balls: 17 or 0)
    props: list            # (props,) of (points, 2) int32 polygons << shift, the same in every frame
    depths: np.ndarray     # (T, parts + balls + props) mm, larger is farther
    colours: list          # (parts x bands) BGR tuples, the ball colour, then one per prop

    @property
    def num_items(self) -> int:
        return self.depths.shape[1]


def body_draw_list(poses: np.ndarray, camera: geometry.Camera, look: Look = Look(), props=()) -> _DrawList:
    """The shapes showing ``poses`` (T, 32, 3) world mm in ``camera``'s image, with ``props``
    (``synthetic.props.Prop``, static) in the scene."""
    joint_a = poses[:, [p.joint_a for p in BODY_PARTS]]
    joint_b = poses[:, [p.joint_b for p in BODY_PARTS]]
    radius = np.array([p.radius_mm for p in BODY_PARTS])
    bands = np.array(_SHADING_BANDS)
    outlines = capsule_outlines(joint_a[:, :, None], joint_b[:, :, None],  # (T, parts, bands, ..)
                                radius[:, None] * bands[:, 0], radius[:, None] * bands[:, 1],
                                camera)
    polygons = np.round(geometry.project(outlines, camera) * 2 ** _SHIFT_BITS).astype(np.int32)

    joints = poses[:, list(J17)]
    depth = geometry.world_to_camera(joints, camera)[..., 2]
    ball_px = np.maximum(MIN_JOINT_BALL_PX, camera.K[0, 0] * JOINT_BALL_MM / depth)
    centres = geometry.project(joints, camera)
    discs = np.concatenate([centres, ball_px[..., None]], -1)
    discs = np.round(discs * 2 ** _SHIFT_BITS).astype(np.int32)

    part_depth = geometry.world_to_camera((joint_a + joint_b) / 2, camera)[..., 2]
    # A ball sits on the body surface, in front of the limbs that meet at its joint.
    ball_depth = depth - _surface_mm() - JOINT_BALL_MM
    if not look.joint_balls:
        discs, ball_depth = discs[:, :0], ball_depth[:, :0]
    prop_polygons = [np.round(prop.outline(camera) * 2 ** _SHIFT_BITS).astype(np.int32) for prop in props]
    prop_depth = np.broadcast_to([prop.depth(camera) for prop in props], (len(poses), len(props)))
    colours = [tuple(int(min(255, c * brightness)) for c in colour[::-1])
               for colour in _part_colours(look) for _, _, brightness in _SHADING_BANDS]
    return _DrawList(polygons, discs, prop_polygons, np.concatenate([part_depth, ball_depth, prop_depth], -1),
                     colours + [JOINT_BALL_RGB[::-1]] + [prop.colour_rgb[::-1] for prop in props])


def _paint(image: np.ndarray, shapes: _DrawList, frame: int, item_ids: bool) -> np.ndarray:
    """Paint ``frame``'s items over ``image``, far to near: in their colours (shaded, antialiased),
    or with ``item_ids`` each item's index + 1 over its whole outline, aliased (``item_at_joints``)."""
    num_parts, num_bands = shapes.polygons.shape[1:3]
    num_balls = shapes.discs.shape[1]
    antialias = cv2.LINE_8 if item_ids else cv2.LINE_AA
    for item in np.argsort(-shapes.depths[frame], kind="stable"):
        if item < num_parts:
            for band in range(1 if item_ids else num_bands):  # band 0 is the part's whole outline
                colour = int(item) + 1 if item_ids else shapes.colours[item * num_bands + band]
                cv2.fillPoly(image, [shapes.polygons[frame, item, band]], colour, antialias, _SHIFT_BITS)
        elif item < num_parts + num_balls:
            x, y, r = shapes.discs[frame, item - num_parts]
            colour = int(item) + 1 if item_ids else shapes.colours[num_parts * num_bands]
            cv2.circle(image, (int(x), int(y)), int(r), colour, -1, antialias, _SHIFT_BITS)
        else:
            prop = item - num_parts - num_balls
            colour = int(item) + 1 if item_ids else shapes.colours[num_parts * num_bands + 1 + prop]
            cv2.fillPoly(image, [shapes.props[prop]], colour, antialias, _SHIFT_BITS)
    return image


def draw_frame(background: np.ndarray, shapes: _DrawList, frame: int) -> np.ndarray:
    """(H, W, 3) BGR: the body (and props) of ``frame`` painted over ``background``, far to near."""
    return _paint(background.copy(), shapes, frame, item_ids=False)


def _joint_items(shapes: _DrawList) -> list:
    """For each of the 17 joints, the ids (index + 1) of the items that show it: its ball and
    the parts that meet at it."""
    num_parts = shapes.polygons.shape[1]
    has_balls = shapes.discs.shape[1] > 0
    return [{index + 1 for index, part in enumerate(BODY_PARTS) if joint in (part.joint_a, part.joint_b)}
            | ({num_parts + number + 1} if has_balls else set()) for number, joint in enumerate(J17)]


def visible_joints(shapes: _DrawList, joints_px: np.ndarray, size: tuple) -> np.ndarray:
    """(T, 17) bool: whether each joint shows in the picture, for ``joints_px`` (T, 17, 2) the
    joints' projections (distorted px) and ``size`` (width, height) of the image.

    A joint shows when the nearest item painted at its pixel is one of its own (its ball or a part
    meeting at it: ``_joint_items``), with items in the painting's order; hidden when another part
    of the body (self-occlusion) or a prop covers it, or when it projects outside the image.
    """
    width, height = size
    owners, visible = _joint_items(shapes), np.zeros(joints_px.shape[:2], bool)
    pixel = np.round(joints_px).astype(int)
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
    for frame in range(len(joints_px)):
        ids = _paint(np.zeros((height, width), np.uint16), shapes, frame, item_ids=True)
        for joint in np.flatnonzero(inside[frame]):
            x, y = pixel[frame, joint]
            visible[frame, joint] = int(ids[y, x]) in owners[joint]
    return visible


_ROOM_HALF_MM = np.array([4500.0, 6500.0])  # walls at x = +-4.5 m, y = +-6.5 m
_CEILING_MM = 3500.0
_WALL_RGB = np.array([(125, 135, 150), (140, 130, 115), (120, 140, 125), (135, 125, 140)],
                     np.float64)


def render_background(camera: geometry.Camera, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 BGR: the room (tiled floor with a grid, panelled walls, ceiling).

    Ray traced per pixel through the undistorted pixel position, so the lens distortion
    bends the room's lines exactly as it bends the body.
    """
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    pinhole = geometry.undistort_points(np.stack([u, v], -1), camera)
    normalized = (pinhole - camera.K[:2, 2]) / np.diag(camera.K)[:2]
    rays = np.concatenate([normalized, np.ones_like(u)[..., None]], -1)
    rays = rays @ camera.R  # camera -> world directions (R^T applied to each row)
    origin = camera.center
    # Distance along each ray to the floor, the ceiling and the four walls; the nearest wins.
    with np.errstate(divide="ignore", invalid="ignore"):
        hits = [np.where(rays[..., 2] < 0, -origin[2] / rays[..., 2], np.inf),
                np.where(rays[..., 2] > 0, (_CEILING_MM - origin[2]) / rays[..., 2], np.inf)]
        for axis in (0, 1):
            for sign in (1, -1):
                wall = sign * _ROOM_HALF_MM[axis]
                hits.append(np.where(rays[..., axis] * sign > 0,
                                     (wall - origin[axis]) / rays[..., axis], np.inf))
    hits = np.stack(hits)
    surface, distance = hits.argmin(0), hits.min(0)
    point = origin + distance[..., None] * rays

    colour = np.empty(u.shape + (3,))
    x, y, z = point[..., 0], point[..., 1], point[..., 2]
    checker = (np.floor(x / 1000) + np.floor(y / 1000)) % 2
    floor = np.where(checker[..., None] > 0, (110, 100, 88), (92, 85, 78))
    grid = (np.abs((x + 250) % 500 - 250) < 12) | (np.abs((y + 250) % 500 - 250) < 12)
    colour[:] = np.where(grid[..., None], (150, 145, 135), floor)
    for wall in range(4):
        across = y if wall < 2 else x
        panel = 1 + 0.08 * ((np.floor(across / 1000) % 2) - 0.5)
        seam = np.abs((across + 500) % 1000 - 500) < 15
        shade = np.where(seam | (z < 150), 0.7, panel) * np.where(np.abs(z - 1100) < 30, 0.85, 1)
        colour[surface == wall + 2] = (_WALL_RGB[wall] * shade[..., None])[surface == wall + 2]
    colour[surface == 1] = (160, 160, 155)
    colour *= np.clip(1.15 - distance / 25000, 0.7, 1.0)[..., None]   # a little fog
    colour += rng.normal(0, 3, colour.shape)
    image = np.clip(colour, 0, 175).astype(np.uint8)[..., ::-1]
    return cv2.GaussianBlur(image, (3, 3), 0.6)


# --------------------------------------------------------------------------- files

def write_video(path: pathlib.Path, background: np.ndarray, shapes: _DrawList, frames: int) -> None:
    """Render ``frames`` frames to an mp4v video at FPS; raises OSError if it cannot be written."""
    height, width = background.shape[:2]
    writer = video_io.open_video_writer(path, FPS, (width, height))
    try:
        for frame in range(frames):
            writer.write(draw_frame(background, shapes, frame))
    finally:
        writer.release()
