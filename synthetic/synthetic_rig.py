"""The synthetic person of ``synthetic_h36m`` filmed by ANY calibrated rig (predict's tests, benchmarks).

    python synthetic_rig.py --calibration FILE --out DIR [--calibration-units m] [--frames 50]
                            [--action Walking] [--scale 0.5] [--size 1920 1080] [--seed 0]

writes into DIR one video per camera (``<camera id>.mp4``, 50 fps), ``ground_truth.npz``
(``joints_3d`` (T, 17, 3) world mm, ``joints_2d`` (T, V, 17, 2) distorted pixels, ``fps``,
``camera_ids``, ``videos``) and ``calibration.json`` (the cameras the videos were rendered with,
in the repo's camera JSON: after ``--scale``, and with the image sizes filled in).

The renderer (``synthetic_h36m``) draws a z-up scene with the floor at z = 0, the way a
calibration made with a board on the floor usually is: cameras given here must be in such a
world. The person walks on the floor below the point the cameras look at
(``rig_frame.nearest_point_to_axes``), moved toward it until every joint is inside every view.

``make_rig`` builds a rig unlike Human3.6M's (other sizes, heights, names, OpenCV's lens model);
``transform_world`` describes a rig and its labels in another world frame.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

import numpy as np

from rig import calibration
import h36m_utils
from common import geometry
from common import rig_frame
from synthetic import motion
from synthetic import render
from common.skeleton import J17

DEFAULT_FRAMES = 50
DEFAULT_SIZE = (1920, 1080)  # for calibrations without an image size (EasyMocap)
GROUND_TRUTH_FILE = "ground_truth.npz"
CALIBRATION_FILE = "calibration.json"


@dataclasses.dataclass(frozen=True)
class RigRecording:
    """What ``render_rig`` wrote.

    cameras: the V cameras, in order; videos: (V,) mp4 paths, one per camera; joints_3d:
    (T, 17, 3) world mm (``skeleton.J17`` of the 32); joints_2d: (T, V, 17, 2) distorted pixels
    of each view (pixel centres at integers); fps: frame rate; ground_truth: the .npz holding them.
    """

    cameras: tuple
    videos: tuple
    joints_3d: np.ndarray
    joints_2d: np.ndarray
    fps: float
    ground_truth: pathlib.Path


def render_rig(cameras, out_dir, *, frames: int = DEFAULT_FRAMES, action: str = "Walking", seed: int = 0,
               subject: str = "S1", prefix: str | None = None) -> RigRecording:
    """Film the synthetic ``subject`` performing ``action`` for ``frames`` frames with ``cameras``.

    cameras: at least 2 ``geometry.Camera`` with image sizes, in a z-up world with the floor at
    z = 0 (mm). Writes ``<camera id>.mp4`` (or ``<prefix>.<camera id>.mp4``) per camera and
    ``ground_truth.npz`` into ``out_dir``; the same seed gives the same motion and rooms.
    """
    cameras = tuple(cameras)
    _check_rig(cameras)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    poses = person_in_view(cameras, frames, action, seed, subject)
    videos = tuple(out_dir / (f"{prefix}.{camera.id}.mp4" if prefix else f"{camera.id}.mp4")
                   for camera in cameras)
    for index, (camera, video) in enumerate(zip(cameras, videos)):
        background = render.render_background(camera, np.random.default_rng([seed, 3, index]))
        render.write_video(video, background, render.body_draw_list(poses, camera), frames)
    joints_3d = poses[:, list(J17)]
    joints_2d = np.stack([geometry.project(joints_3d, camera) for camera in cameras], axis=1)
    ground_truth = out_dir / GROUND_TRUTH_FILE
    np.savez(ground_truth, joints_3d=joints_3d, joints_2d=joints_2d, fps=motion.FPS,
             camera_ids=np.array([camera.id for camera in cameras]),
             videos=np.array([video.name for video in videos]))
    return RigRecording(cameras, videos, joints_3d, joints_2d, float(motion.FPS), ground_truth)


def _check_rig(cameras) -> None:
    if len(cameras) < 2:
        raise ValueError(f"A rig needs at least 2 cameras, got {len(cameras)}.")
    unsized = [camera.id for camera in cameras if camera.width <= 0 or camera.height <= 0]
    if unsized:
        raise ValueError(f"Camera(s) {', '.join(unsized)} have no image size: fill it with "
                         "calibration.with_image_sizes (the CLI's --size).")


def floor_centre(cameras) -> np.ndarray:
    """(3,) world mm: the floor point (z = 0) below where the cameras' optical axes meet."""
    centre = rig_frame.nearest_point_to_axes(cameras)
    return np.array([centre[0], centre[1], 0.0])


def person_in_view(cameras, frames: int, action: str, seed: int, subject: str) -> np.ndarray:
    """(frames, 32, 3) world mm: ``synthetic_h36m``'s person, on the floor below where the
    cameras look (or the nearest floor point where every view can hold the motion), moved toward
    that point until every joint is inside every view."""
    if action not in h36m_utils.ACTIONS:
        raise ValueError(f"Unknown action {action!r}; choose from {', '.join(h36m_utils.ACTIONS)}.")
    if subject not in h36m_utils.SUBJECTS:
        raise ValueError(f"Unknown subject {subject!r}; choose from {', '.join(h36m_utils.SUBJECTS)}.")
    person = h36m_utils.SUBJECTS.index(subject) + 1
    offsets = motion.subject_offsets(np.random.default_rng([seed, person, 2]))
    poses = motion.animate(action, offsets, frames, np.random.default_rng([seed, person, 1]))
    for centre in _floor_points_near(floor_centre(cameras)):
        try:
            return motion.keep_in_view(poses + centre, cameras, centre=centre)
        except RuntimeError:  # a view cuts the person off here: try a floor point nearby
            continue
    raise RuntimeError(f"The synthetic {action} does not fit in every view of the rig "
                       f"({', '.join(camera.id for camera in cameras)}) anywhere within 1.5 m of where the "
                       "cameras look: the views share too little of the floor.")


def _floor_points_near(centre: np.ndarray, step_mm: float = 250.0, reach_mm: float = 1500.0) -> list:
    """(3,) floor points on a grid around ``centre``, nearest first (``centre`` itself first)."""
    steps = np.arange(-reach_mm, reach_mm + 1, step_mm)
    points = [centre + [dx, dy, 0.0] for dx in steps for dy in steps if np.hypot(dx, dy) <= reach_mm]
    return sorted(points, key=lambda point: float(np.hypot(*(point - centre)[:2])))


def transform_world(cameras, points: np.ndarray, rotation: np.ndarray, shift) -> tuple[list, np.ndarray]:
    """The same rig and points described in another world frame: ``X_new = rotation @ X + shift``.

    cameras: ``geometry.Camera``; points: (..., 3) world mm; rotation: (3, 3) proper rotation;
    shift: (3,) mm. Returns (the cameras with extrinsics in the new frame, the points (..., 3)
    in it); every projection of the points stays the same.
    """
    rotation = np.asarray(rotation, np.float64)
    # X_new = rotation (X - origin) with origin = -rotation^T shift: a RigFrame does the rest.
    frame = rig_frame.RigFrame(rotation=rotation, origin=-rotation.T @ np.asarray(shift, np.float64))
    return [frame.camera_to_rig(camera) for camera in cameras], frame.to_rig(points)


def make_rig(num_cameras: int = 4, seed: int = 0, width: int = 480, height: int = 360,
             names=None) -> list:
    """A rig unlike Human3.6M's: ``num_cameras`` cameras (``geometry.Camera``, OpenCV's lens
    model) around the origin of a z-up world, 3 to 6 m away, 1.2 to 2.5 m high, looking slightly
    down at the capture area's centre (within 0.2 m) with a small random roll; focal lengths
    grow with the distance so that the person fills a similar part of every view.

    names: the camera ids (default ``cam_a``, ``cam_b``, ...); width, height: image size in px.
    """
    if names is None:
        names = [f"cam_{chr(ord('a') + index)}" for index in range(num_cameras)]
    names = list(names)
    if len(names) != num_cameras or len(set(names)) != num_cameras:
        raise ValueError(f"make_rig: {num_cameras} cameras need {num_cameras} different names, got {names}.")
    rng = np.random.default_rng([seed, 7])
    # Spread around the area, each azimuth jittered by up to a quarter of the even spacing.
    spacing = 2 * np.pi / num_cameras
    jitter = rng.uniform(-0.25, 0.25, num_cameras)
    azimuths = rng.uniform(0, 2 * np.pi) + spacing * (np.arange(num_cameras) + jitter)
    return [_rig_camera(name, azimuth, width, height, rng) for name, azimuth in zip(names, azimuths)]


def _rig_camera(name: str, azimuth: float, width: int, height: int,
                rng: np.random.Generator) -> geometry.Camera:
    distance, camera_height = rng.uniform(3000, 6000), rng.uniform(1200, 2500)
    centre = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), camera_height])
    target = np.array([*rng.uniform(-200, 200, 2), rng.uniform(800, 1100)])
    R = geometry.look_at(centre, target, roll=np.radians(rng.uniform(-4, 4)))
    focal = min(width, height) * rng.uniform(0.85, 1.0) * distance / 3000
    cx, cy = np.array([width - 1, height - 1]) / 2 + [width, height] * rng.uniform(-0.02, 0.02, 2)
    K = np.array([[focal, 0, cx], [0, focal * rng.uniform(0.998, 1.002), cy], [0, 0, 1]])
    k = np.array([rng.uniform(-0.2, -0.02), rng.uniform(0, 0.12), rng.uniform(-0.02, 0.02)])
    return geometry.Camera(R=R, t=-R @ centre, K=K, k=k, p=rng.uniform(-0.002, 0.002, 2), width=width,
                             height=height, id=name, distortion_model="opencv")


def scale_images(cameras, factor: float) -> list:
    """The cameras of videos resized by ``factor``: K scaled about pixel centres
    (``u' + 0.5 = factor (u + 0.5)``), sizes rounded to even numbers (video codecs want them)."""
    offset = (1 - factor) / (2 * factor)
    return [dataclasses.replace(camera, K=geometry.crop_matrix(factor, offset, offset) @ camera.K,
                                width=2 * round(camera.width * factor / 2),
                                height=2 * round(camera.height * factor / 2))
            for camera in cameras]


def render_calibration(rig: calibration.Rig, out_dir, *, frames: int = DEFAULT_FRAMES,
                       action: str = "Walking", scale: float = 1.0, size=None, seed: int = 0) -> RigRecording:
    """Render through a calibration's cameras (what the command line does).

    rig: from ``calibration.load_calibration``; size: (width, height) px for every camera, needed
    where the file holds none (default ``DEFAULT_SIZE`` there), checked against the file's where
    it holds one. Writes ``calibration.json``, the cameras as rendered (scaled), beside the videos.
    """
    sizes = {camera.id: size or ((camera.width, camera.height) if camera.width else DEFAULT_SIZE)
             for camera in rig.cameras}
    cameras = scale_images(calibration.with_image_sizes(rig, sizes).cameras, scale)
    recording = render_rig(cameras, out_dir, frames=frames, action=action, seed=seed)
    calibration.write_json(cameras, pathlib.Path(out_dir) / CALIBRATION_FILE)
    return recording


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Render the synthetic person through a calibration file's cameras: one mp4 per "
                    "camera, ground_truth.npz and calibration.json (the cameras as rendered).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--calibration", required=True, help=f"calibration file: {calibration.FORMATS_HELP}")
    parser.add_argument(calibration.UNITS_FLAG, choices=sorted(calibration.UNIT_TO_MM), default=None,
                        help="unit of the calibration's translations (default: the format's: m for "
                             "TOML and EasyMocap, mm for the repo's JSON)")
    parser.add_argument("--out", required=True, help="folder for the videos and ground truth")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames (50 fps)")
    parser.add_argument("--action", default="Walking", help=f"one of {' '.join(h36m_utils.ACTIONS)}")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="render at this fraction of the calibrated image size (K scaled too)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help=f"image size of every camera; default: the file's, or {DEFAULT_SIZE[0]} "
                             f"{DEFAULT_SIZE[1]} where it has none (EasyMocap)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    if args.frames < 1 or not 0 < args.scale <= 4:
        parser.error("--frames must be at least 1 and --scale in (0, 4].")
    started = time.perf_counter()
    try:
        rig = calibration.load_calibration(args.calibration, args.calibration_units)
        for note in rig.notes:
            print(f"{args.calibration}: {note}")
        recording = render_calibration(rig, args.out, frames=args.frames, action=args.action,
                                       scale=args.scale, size=tuple(args.size) if args.size else None,
                                       seed=args.seed)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        parser.error(str(error))
    sizes = ", ".join(f"{camera.id} {camera.width}x{camera.height}" for camera in recording.cameras)
    print(f"Wrote {len(recording.videos)} videos of {args.frames} frames ({sizes}), "
          f"{recording.ground_truth} and {pathlib.Path(args.out) / CALIBRATION_FILE} "
          f"in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
