"""The 3D root (pelvis) of the one person in the scene, from the videos and the calibration alone.

No labels: pixels and cameras only. This is the COARSE root that test crops and predict-mode
crops are centred on (a refinement by the model's own pelvis may come on top, in the predict
loop). Every 3D step happens in the RIG frame of ``rig_frame`` (z up, mm), so the result does not
depend on the calibration's world frame.

1. Background, per camera: the per-pixel median of frames sampled over the whole video (or over
   ``background_videos``: the same camera's other videos, when the person stays in one place).
2. Silhouettes: pixels whose colour differs from the background by more than its noise allows,
   cleaned by morphology, on frames downscaled to ``Settings.work_size``.
3. Carving: a voxel is kept when every view that sees it shows foreground there and enough views
   see it (``Settings.views_may_miss``); a voxel outside a view's image is NOT carved by that
   view, which is how a person partly outside a frame is handled. A coarse grid over the space
   the cameras share finds the person (the tallest large connected volume: furniture missing from
   the background is carved too, and can be larger), a fine grid gives its shape.
4. The pelvis: its height from the carved person's head top (``HEAD_TO_PELVIS`` x the track's
   standing height below it); x, y from the trunk: the centres of the silhouettes' runs across
   the hips-to-chest band, triangulated (the carved volume of 4 views is too wide for its centre).
5. Over time: frames with no person (no volume of a person's size carved) are interpolated from
   the neighbouring found frames, held at the ends, and marked; the track is smoothed (a running
   median, then a small Gaussian).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import cv2
import numpy as np
from scipy import ndimage
from common import geometry
from common import video_io
from rig import calibration


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the root is found. Lengths in mm of the rig frame, sizes in working pixels.

    work_size: frames are downscaled so that their longer side has at most this many pixels.
    background_samples: frames for each camera's background median, spread over its background
    videos (over each whole video).
    noise_factor, min_threshold: a pixel is foreground when its colour (max over B, G, R) differs
    from the background by more than ``max(min_threshold, noise_factor x`` the background's own
    per-pixel spread ``)``.
    coarse_voxel_mm, fine_voxel_mm: the voxel sides of the search grid and of the person's grid.
    min_volume_m3, max_volume_m3, min_height_mm: what a carved volume must be to be a person (one
    carved by 4 views is 0.13 to 0.4 m^3 and, even seated, 1.1 m tall or more; far more volume is
    foreground everywhere: the light changed or a camera moved; less, or lower, is a part of a
    person, e.g. the legs when the background holds the rest, or someone lying on the floor).
    views_may_miss: a voxel must be seen by all views but this many (and by 2 at least): a person
    partly outside that many views is still carved whole.
    """

    work_size: int = 320
    background_samples: int = 40
    noise_factor: float = 4.0
    min_threshold: float = 25.0
    coarse_voxel_mm: float = 100.0
    fine_voxel_mm: float = 30.0
    min_volume_m3: float = 0.08
    max_volume_m3: float = 2.0
    min_height_mm: float = 1000.0
    views_may_miss: int = 1


@dataclasses.dataclass(frozen=True)
class RootTrack:
    """The root of every asked frame, and how it was obtained.

    frames: (T,) int video frame indices; roots: (T, 3) mm in the cameras' (rig) frame; status:
    (T,) str, "found" (seen in this frame), "interpolated" (between found frames) or "held" (the
    nearest found root, before the first or after the last found frame); views: (T, V) bool, the
    views whose silhouette gave the root's x, y; seconds: the time ``find_roots`` took; warnings:
    what may have made the roots unreliable, in words; source: where the roots came from
    ("silhouettes", "detections" or "centre").
    """

    frames: np.ndarray
    roots: np.ndarray
    status: np.ndarray
    views: np.ndarray
    seconds: float
    warnings: tuple = ()
    source: str = "silhouettes"

    def report(self) -> str:
        """One paragraph: frames found / interpolated / held (which ones), views used, seconds."""
        total = len(self.frames)
        counts = {kind: int(np.sum(self.status == kind)) for kind in ("found", "interpolated", "held")}
        lines = [f"Root from the {self.source}: found in {counts['found']} of {total} frames"]
        for kind in ("interpolated", "held"):
            if counts[kind]:
                lines.append(f"{kind} in {counts[kind]} (frames {frame_ranges(self.frames, self.status == kind)})")
        seen = self.views[self.status == "found"]
        per_view = ", ".join(f"{100 * share:.0f}%" for share in seen.mean(0)) if len(seen) else "-"
        return " ".join([", ".join(lines) + f". Views used where found: {per_view} of the frames (camera order).",
                         *self.warnings, f"{self.seconds:.1f} s ({self.seconds / max(total, 1):.3f} s per frame)."])


def frame_ranges(frames: np.ndarray, chosen: np.ndarray, most: int = 8) -> str:
    """The (T,) ``frames`` where (T,) bool ``chosen``, runs of neighbouring entries as ranges:
    ``"10-18, 40"``; after ``most`` runs, how many more."""
    positions = np.flatnonzero(chosen)
    runs = np.split(positions, np.flatnonzero(np.diff(positions) > 1) + 1)
    texts = [f"{frames[run[0]]}-{frames[run[-1]]}" if len(run) > 1 else f"{frames[run[0]]}" for run in runs]
    return ", ".join(texts[:most]) + (f" and {len(texts) - most} more runs" if len(texts) > most else "")


PROGRESS_SECONDS = 10.0  # between progress lines


def find_roots(videos: Sequence[str], cameras: Sequence[geometry.Camera], frames: Sequence[int], *,
               progress: bool = True, background_videos: Sequence[Sequence[str]] | None = None,
               settings: Settings = Settings()) -> RootTrack:
    """The 3D root of the one person in the scene at each of ``frames``, from the videos alone.

    videos: one per camera, in the order of ``cameras`` (at least 2; any size); cameras: in the
    RIG frame (``rig_frame.cameras_in_rig_frame``), whose roots are returned; frames: increasing
    video frame indices. background_videos: per camera, the videos whose frames make its
    background (default: its own video). Give more when the person stays in one place for much
    of the video (a median background would hold them): videos of the same camera in the same
    room, e.g. the subject's other sequences, or a few seconds of the empty room.
    progress: print a line every PROGRESS_SECONDS and at the end.

    Frames where no person is found are interpolated or held (``RootTrack.status``). Raises
    ``NoPersonFound`` (a ValueError) when no frame holds a person, naming the videos and what was tried.
    """
    started = time.perf_counter()
    frames = check_inputs(videos, cameras, frames, background_videos)
    background_given = background_videos is not None
    background_videos = background_videos or [[path] for path in videos]
    views = [make_view([str(p) for p in paths], camera, settings) for paths, camera in zip(background_videos, cameras)]
    min_views = max(2, len(views) - settings.views_may_miss)
    search = search_grid(views, settings, min_views)
    measurements, last_line = [], time.perf_counter()
    for images in zip(*[video_io.stream_frames(str(path), frames) for path in videos]):
        silhouettes = [silhouette(image, view) for image, view in zip(images, views)]
        measurements.append(measure(silhouettes, views, search, settings, min_views))
        if progress and (time.perf_counter() - last_line > PROGRESS_SECONDS or len(measurements) == len(frames)):
            last_line = time.perf_counter()
            print(f"root_finder: {len(measurements)}/{len(frames)} frames, person in "
                  f"{sum(m is not None for m in measurements)}, {last_line - started:.0f} s", flush=True)
    if not any(m is not None for m in measurements):
        raise NoPersonFound(no_person_finding(videos, background_videos, settings, min_views))
    roots, status = fill_gaps(frames, pelvis_track(measurements))
    used = np.array([m.views if m is not None else np.zeros(len(views), bool) for m in measurements])
    warnings = () if background_given else stillness_warning(roots[status == "found"])
    return RootTrack(frames=frames, roots=smooth(frames, roots, status == "found"), status=status, views=used,
                     seconds=time.perf_counter() - started, warnings=warnings)


# The median background holds the person where their trunk covers a pixel in more than half of
# the samples: a warning when some place is within STILL_RADIUS_MM (about the trunk's half width)
# of the root in STILL_SHARE of the found frames (at most STILL_SAMPLES of them, evenly spread).
STILL_RADIUS_MM = 200.0
BACKGROUND_HINT = ("background videos (background_videos; --background-videos DIR on the command line): the same "
                   "cameras' other videos of this room, or a few seconds of the empty room")
STILL_SHARE = 0.5
STILL_SAMPLES = 500


def stillness_warning(roots: np.ndarray) -> tuple:
    """(the warning,) when the found (N, 3) roots stay in one place, else ()."""
    places = roots[np.unique(np.linspace(0, len(roots) - 1, min(len(roots), STILL_SAMPLES)).astype(int)), :2]
    near_each = np.linalg.norm(places[:, None] - places[None], axis=-1) <= STILL_RADIUS_MM
    share = float(near_each.mean(1).max())
    if share < STILL_SHARE:
        return ()
    return (f"Warning: the person stays within {STILL_RADIUS_MM:.0f} mm of one place in {100 * share:.0f}% of "
            "the found frames, and the background came from these videos alone, so it may hold the person and "
            "hide the parts that do not move (roots off by up to half a metre in our synthetic tests). "
            f"Pass {BACKGROUND_HINT}.",)


def check_inputs(videos, cameras, frames, background_videos) -> np.ndarray:
    """(T,) int64 frames, after checking that the arguments fit together (ValueError if not)."""
    if len(videos) != len(cameras) or len(cameras) < 2:
        raise ValueError(f"find_roots needs one video per camera and at least 2 cameras; got {len(videos)} videos "
                         f"and {len(cameras)} cameras.")
    if background_videos is not None and (len(background_videos) != len(cameras)
                                          or not all(len(paths) for paths in background_videos)):
        raise ValueError("background_videos needs a non-empty list of videos for every camera, in the cameras' "
                         f"order; got {[len(paths) for paths in background_videos]} for {len(cameras)} cameras.")
    frames = np.asarray(frames, np.int64)
    if frames.ndim != 1 or not len(frames) or frames[0] < 0 or np.any(np.diff(frames) <= 0):
        raise ValueError(f"frames must be increasing video frame indices from 0; got {frames[:10]}...")
    return frames


class NoPersonFound(ValueError):
    """No frame holds a person. ``finding``: the videos, what was tried and what to check; the
    message adds the remedy in ``find_roots``'s terms (predict names its own flags instead)."""

    def __init__(self, finding: str):
        super().__init__(f"{finding} Pass {BACKGROUND_HINT}.")
        self.finding = finding


def no_person_finding(videos, background_videos, settings: Settings, min_views: int) -> str:
    """What to say when no frame holds a person: the videos, what was tried, what to check."""
    return (f"No person found in any frame of {', '.join(map(str, videos))}. Tried: a background from "
            f"{settings.background_samples} frames sampled over {sum(len(p) for p in background_videos)} video(s), "
            f"silhouettes where the colour differs from it by more than {settings.min_threshold:.0f} (or "
            f"{settings.noise_factor:g} x the background's noise), carved into voxels seen by at least {min_views} "
            f"views; no carved volume was of a person's size ({settings.min_volume_m3} to {settings.max_volume_m3} "
            f"m^3, {settings.min_height_mm / 1000:g} m tall or more). Check that the cameras are calibrated for these "
            "videos (same order and image size, in the rig frame) and that someone is in view of at least 2 "
            "cameras. If the person stays in one place, a background from their own videos holds them.")


# --------------------------------------------------------------------------- views

@dataclasses.dataclass(frozen=True)
class View:
    """One camera at the working scale, with its background model.

    camera: the rig-frame camera with K mapped to working pixels; size: (width, height) working
    pixels; background: (h, w, 3) uint8 BGR median; threshold: the colour distance above which a
    pixel is foreground; max_radius2: the largest squared normalised (pinhole)
    radius inside the image, beyond which a lens model can fold far-away points back in.
    """

    camera: geometry.Camera
    size: tuple
    background: np.ndarray
    threshold: float
    max_radius2: float


def working_size(camera: geometry.Camera, work_size: int) -> tuple[int, int]:
    """(width, height) of the downscaled frames: the longer side at most ``work_size``."""
    scale = min(1.0, work_size / max(camera.width, camera.height))
    return max(1, round(camera.width * scale)), max(1, round(camera.height * scale))


def largest_radius2(camera: geometry.Camera) -> float:
    """The largest squared normalised pinhole radius of the image's border pixels."""
    w, h = camera.width, camera.height
    u, v = np.linspace(-0.5, w - 0.5, 33), np.linspace(-0.5, h - 0.5, 33)
    border = np.concatenate([np.stack([u, np.full_like(u, -0.5)], -1), np.stack([u, np.full_like(u, h - 0.5)], -1),
                             np.stack([np.full_like(v, -0.5), v], -1), np.stack([np.full_like(v, w - 0.5), v], -1)])
    pinhole = geometry.undistort_points(border, camera)
    normalized = (pinhole - camera.K[:2, 2]) / np.diag(camera.K)[:2]
    return float(np.max(np.sum(normalized ** 2, -1)))


def shrink(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) frame -> (h, w, 3) at the working size, lightly blurred against coding noise."""
    small = frame if frame.shape[1::-1] == tuple(size) else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0)


def colour_distance(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 x2 -> (h, w) uint8: the largest per-channel absolute difference."""
    blue, green, red = cv2.split(cv2.absdiff(frame, background))
    return cv2.max(cv2.max(blue, green), red)


def background_model(paths: Sequence[str], camera: geometry.Camera, size: tuple[int, int],
                     settings: Settings) -> tuple[np.ndarray, float]:
    """(median (h, w, 3) uint8, threshold) of frames sampled evenly over the videos ``paths``.

    The threshold is ``noise_factor`` x the typical spread of a pixel around its median (the
    median over pixels of the median absolute deviation), at least ``min_threshold``: one number
    per view, since a per-pixel spread is largest exactly where the person often is.
    """
    samples = []
    per_video = max(1, -(-settings.background_samples // len(paths)))
    for path in paths:
        for frame in video_io.sample_frames(path, per_video):
            check_frame_size(frame, camera, path)
            samples.append(shrink(frame, size))
    samples = np.stack(samples)
    median = np.median(samples, axis=0).round().astype(np.uint8)
    spread = np.median(np.stack([colour_distance(sample, median) for sample in samples]), axis=0)
    return median, max(settings.min_threshold, settings.noise_factor * float(np.median(spread)))


def check_frame_size(frame: np.ndarray, camera: geometry.Camera, path: str) -> None:
    """Raise ValueError naming the video when its frames are neither the size its camera says nor a
    resize of it (``calibration.resize_factors``: a background video of another size is resampled to
    the working size like the others)."""
    if frame.shape[:2] != (camera.height, camera.width):
        calibration.resize_factors((camera.width, camera.height), frame.shape[1::-1],
                                   f"Video {path} of camera {camera.id}")


def make_view(background_paths: Sequence[str], camera: geometry.Camera, settings: Settings) -> View:
    """The working-scale camera and the background model of the videos ``background_paths``."""
    size = working_size(camera, settings.work_size)
    small = calibration.scaled_camera(camera, size)
    background, threshold = background_model(background_paths, camera, size, settings)
    return View(camera=small, size=size, background=background, threshold=threshold,
                max_radius2=largest_radius2(small))


# --------------------------------------------------------------------------- silhouettes

_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def silhouette(frame: np.ndarray, view: View) -> np.ndarray:
    """(H, W, 3) full frame -> (h, w) bool foreground at the working size.

    Opening removes isolated noisy pixels; closing fills the thin gaps between limbs of one colour
    close to the background's.
    """
    distance = colour_distance(shrink(frame, view.size), view.background)
    mask = (distance > view.threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _CLOSE).astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(h, w) bool grown by ``radius`` pixels."""
    if radius <= 0:
        return mask
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


# --------------------------------------------------------------------------- voxels

@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular voxel grid: voxel (i, j, k) is centred at ``corner + voxel_mm * (i, j, k)`` (rig mm)."""

    corner: np.ndarray
    voxel_mm: float
    shape: tuple

    @classmethod
    def spanning(cls, low: np.ndarray, high: np.ndarray, voxel_mm: float) -> "Grid":
        """The grid of ``voxel_mm`` voxels whose centres cover the box ``low`` .. ``high`` (3,) mm."""
        shape = tuple(int(n) for n in np.maximum(1, np.ceil((high - low) / voxel_mm) + 1))
        return cls(corner=np.asarray(low, np.float64), voxel_mm=float(voxel_mm), shape=shape)

    def in_camera(self, camera: geometry.Camera) -> np.ndarray:
        """(nx, ny, nz, 3) float32 voxel centres in ``camera``'s frame, mm (``R X + t``, summed per axis)."""
        axes = [self.corner[a] + self.voxel_mm * np.arange(n) for a, n in enumerate(self.shape)]
        x, y, z = (np.outer(axis, camera.R[:, a]).astype(np.float32) for a, axis in enumerate(axes))
        return x[:, None, None] + y[None, :, None] + (z + camera.t.astype(np.float32))[None, None, :]

    def position(self, index: np.ndarray) -> np.ndarray:
        """(..., 3) integer voxel indices -> (..., 3) rig mm of their centres."""
        return self.corner + self.voxel_mm * index


def pixel_index(local: np.ndarray, view: View) -> np.ndarray:
    """(N, 3) points in the view's camera frame, mm -> (N,) int64 flat index of the working pixel
    each falls on, -1 outside.

    Outside: behind the camera, beyond the image's widest pinhole radius (where the lens
    polynomial could fold a far point back into the image), or off the image.
    """
    camera = view.camera
    depth = local[:, 2]
    valid = depth > 0
    xy = local[:, :2] / np.where(valid, depth, 1)[:, None]
    valid &= np.sum(xy * xy, -1) <= view.max_radius2
    xy[~valid] = 0  # keeps the lens polynomial finite where the point is discarded anyway
    uv = geometry.distort_normalized(xy, camera.k, camera.p, camera.tangential_factor) @ camera.K[:2, :2].T
    column, row = np.round(uv + camera.K[:2, 2]).T.astype(np.int64)
    width, height = view.size
    valid &= (column >= 0) & (column < width) & (row >= 0) & (row < height)
    return np.where(valid, row * width + column, -1)


def carve(indices: np.ndarray, silhouettes: Sequence[np.ndarray]) -> np.ndarray:
    """(V, N) pixel indices, V (h, w) bool silhouettes -> (N,) bool: kept by every view that sees it."""
    kept = np.ones(indices.shape[1], bool)
    for index, mask in zip(indices, silhouettes):
        seen = index >= 0
        kept &= ~seen | mask.ravel()[np.where(seen, index, 0)]
    return kept


# A carved component counts as large from this share of the largest's voxels on.
LARGE_SHARE = 0.25


def person_component(occupied: np.ndarray) -> np.ndarray:
    """(nx, ny, nz) bool, z up -> the same with only the tallest of its large 26-connected components.

    Not simply the largest: a chair or box that is not in the background (moved between the
    videos the background is learned from) is carved too and can hold more voxels than the
    person, but it is lower than the head of an adult, standing or seated.
    """
    labels, count = ndimage.label(occupied, structure=np.ones((3, 3, 3)))
    if count <= 1:
        return occupied
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    large = np.flatnonzero(sizes >= LARGE_SHARE * sizes.max())
    heights = np.broadcast_to(np.arange(occupied.shape[2]), occupied.shape)
    tops = ndimage.maximum(heights, labels, large)
    return labels == large[np.argmax(tops)]


@dataclasses.dataclass(frozen=True)
class SearchGrid:
    """The coarse grid over the space the cameras share, projected once.

    grid: the whole box; where: (M,) flat grid indices of the voxels seen by at least
    ``min_views`` views; pixels: (V, M) their working-pixel indices (-1 outside a view);
    dilation: (V,) pixels by which each view's silhouette grows to cover a coarse voxel.
    """

    grid: Grid
    where: np.ndarray
    pixels: np.ndarray
    dilation: np.ndarray


def search_grid(views: Sequence[View], settings: Settings, min_views: int) -> SearchGrid:
    """The coarse grid: within 0.8 of the cameras' (median) horizontal distance from the rig
    origin, from 3 m below the lowest camera to 0.5 m above the highest."""
    centres = np.array([view.camera.center for view in views])
    reach = 0.8 * np.median(np.linalg.norm(centres[:, :2], axis=1))
    low = np.array([-reach, -reach, centres[:, 2].min() - 3000.0])
    high = np.array([reach, reach, centres[:, 2].max() + 500.0])
    grid = Grid.spanning(low, high, settings.coarse_voxel_mm)
    pixels = np.stack([pixel_index(grid.in_camera(view.camera).reshape(-1, 3), view) for view in views])
    where = np.flatnonzero(np.sum(pixels >= 0, axis=0) >= min_views)
    pixels_per_mm = np.array([np.mean(np.diag(view.camera.K)[:2]) / np.linalg.norm(view.camera.center)
                              for view in views])
    dilation = np.ceil(0.5 * settings.coarse_voxel_mm * np.sqrt(3) * pixels_per_mm).astype(int)
    return SearchGrid(grid=grid, where=where, pixels=pixels[:, where], dilation=dilation)


@dataclasses.dataclass(frozen=True)
class Volume:
    """The carved person of one frame: voxels (N, 3) rig mm, cubes of side voxel_mm."""

    voxels: np.ndarray
    voxel_mm: float

    @property
    def cubic_metres(self) -> float:
        return len(self.voxels) * (self.voxel_mm / 1000.0) ** 3


def carve_person(silhouettes: Sequence[np.ndarray], views: Sequence[View], search: SearchGrid,
                 settings: Settings, min_views: int) -> Volume | None:
    """The carved person of one frame (``person_component``), or None when no volume of a person's size is found.

    First on the coarse search grid (silhouettes grown to cover a coarse voxel), then on a fine
    grid over the coarse volume's bounding box, carving only the fine voxels within one coarse
    voxel of the coarse volume.
    """
    coarse = np.zeros(search.grid.shape, bool)
    coarse.flat[search.where[carve(search.pixels, [dilate(s, r) for s, r in zip(silhouettes, search.dilation)])]] = True
    coarse = person_component(coarse)
    if not coarse.any():
        return None
    box = np.argwhere(coarse)
    fine = Grid.spanning(search.grid.position(box.min(0) - 1), search.grid.position(box.max(0) + 1),
                         settings.fine_voxel_mm)
    candidates = near(coarse, search.grid, fine)
    pixels = np.stack([pixel_index(fine.in_camera(view.camera)[candidates], view) for view in views])
    seen = pixels >= 0
    occupied = np.zeros(fine.shape, bool)
    occupied[candidates] = carve(pixels, silhouettes) & (seen.sum(0) >= min_views)
    person = person_component(occupied)
    if not person.any():
        return None
    volume = Volume(voxels=fine.position(np.argwhere(person)), voxel_mm=fine.voxel_mm)
    person_sized = (settings.min_volume_m3 <= volume.cubic_metres <= settings.max_volume_m3
                    and np.ptp(volume.voxels[:, 2]) >= settings.min_height_mm)
    return volume if person_sized else None


def near(coarse: np.ndarray, coarse_grid: Grid, fine: Grid) -> np.ndarray:
    """(fine shape) bool: the fine voxels whose centre lies within one coarse voxel of ``coarse``
    (the fine grid spans ``coarse``'s bounding box and one coarse voxel more)."""
    low = np.argwhere(coarse).min(0) - 1  # the coarse index of the fine grid's corner
    high = np.argwhere(coarse).max(0) + 2
    window = np.pad(coarse, 1)[tuple(slice(a + 1, b + 1) for a, b in zip(low, high))]
    grown = ndimage.binary_dilation(window, structure=np.ones((3, 3, 3)))
    lookup = []
    for axis, n in enumerate(fine.shape):
        offset = fine.voxel_mm * np.arange(n)  # from the fine corner, which sits on coarse voxel ``low``
        lookup.append(np.clip(np.round(offset / coarse_grid.voxel_mm).astype(int), 0, grown.shape[axis] - 1))
    return grown[np.ix_(*lookup)]


# --------------------------------------------------------------------------- the pelvis

# The pelvis lies HEAD_TO_PELVIS x the person's standing height below the top of the head: the mean
# of (head top - pelvis) / standing height over the labels of the synthetic TRAINING subjects
# S1 S5 S6 S7 (refit it on a real set's training subjects: benchmarks/bench_root.py prints the
# mean offset that remains, per axis). The standing height (the carved person's head top above its
# lowest point, 90th percentile over the track) is clipped to an adult's range, so that a track
# seated throughout still gets a plausible one.
HEAD_TO_PELVIS = 0.434
STANDING_HEIGHT_MM = (1500.0, 1950.0)
NOMINAL_HEIGHT_MM = 1700.0  # for the per-frame guess, before the track's height is known
STANDING_HEIGHT_PERCENTILE = 90
# x, y come from the trunk: the silhouettes' centres between these heights above the pelvis
# (hips to lower chest), triangulated. Lower bands are thrown by the thighs of a seated person,
# higher ones by the arms; chosen on the training subjects.
TRUNK_BAND_MM = (-50.0, 400.0)
TRUNK_ROWS = 24  # heights sampled in the band
RUN_GAP_MM = 150.0  # the farthest a trunk's silhouette run may lie from where it is expected
TRUNK_ITERATIONS = 2  # re-centre the band on the triangulated trunk this many times


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What one frame's silhouettes say about the person.

    top, bottom: rig z (mm) of the carved person's head top and lowest point (99.5th and 0.5th
    percentiles of its voxels); xy: (2,) mm, its trunk axis; views: (V,) bool, the views whose
    silhouette gave the trunk axis (none: fewer than 2 did, and x, y are the median of the carved
    volume's trunk band).
    """

    top: float
    bottom: float
    xy: np.ndarray
    views: np.ndarray


def measure(silhouettes: Sequence[np.ndarray], views: Sequence[View], search: SearchGrid, settings: Settings,
            min_views: int) -> Measurement | None:
    """One frame: carve the person, then find its trunk axis; None when no person is found."""
    volume = carve_person(silhouettes, views, search, settings, min_views)
    if volume is None:
        return None
    height = volume.voxels[:, 2]
    top, bottom = np.percentile(height, [99.5, 0.5])
    pelvis_z = top - HEAD_TO_PELVIS * NOMINAL_HEIGHT_MM
    band = volume.voxels[(height >= pelvis_z + TRUNK_BAND_MM[0]) & (height <= pelvis_z + TRUNK_BAND_MM[1])]
    guess = np.array([*np.median((band if len(band) else volume.voxels)[:, :2], axis=0), pelvis_z])
    used = np.zeros(len(views), bool)  # none: x, y stay those of the carved volume's band
    for _ in range(TRUNK_ITERATIONS):
        centres = [trunk_centre(mask, view, guess) for mask, view in zip(silhouettes, views)]
        seen = np.array([centre is not None for centre in centres])
        if seen.sum() < 2:
            break
        used = seen
        guess[:2] = triangulate([c for c in centres if c is not None], [v.camera for v, s in zip(views, seen) if s])[:2]
    return Measurement(top=float(top), bottom=float(bottom), xy=guess[:2], views=used)


def trunk_centre(mask: np.ndarray, view: View, pelvis: np.ndarray) -> np.ndarray | None:
    """(2,) working pixels: the median centre of the silhouette's runs across the trunk band
    above ``pelvis`` (3,) rig mm; None when too few of its rows are seen whole (out of the
    image, cut by its border, or no run near where the trunk should be)."""
    depth = float(geometry.world_to_camera(pelvis, view.camera)[2])
    if depth <= 0:
        return None
    heights = np.linspace(*TRUNK_BAND_MM, TRUNK_ROWS)
    columns, rows = geometry.project(pelvis + heights[:, None] * np.array([0.0, 0.0, 1.0]), view.camera).T
    inside = (np.round(rows) >= 0) & (np.round(rows) < mask.shape[0])
    first, last = runs_near(mask[np.round(rows[inside]).astype(int)], columns[inside],
                            RUN_GAP_MM * view.camera.K[0, 0] / depth)
    whole = (first > 0) & (last < mask.shape[1] - 1)  # NaN (no run) compares False
    if whole.sum() < TRUNK_ROWS // 3:
        return None
    return np.median(np.stack([(first + last)[whole] / 2.0, rows[inside][whole]], -1), axis=0)


def runs_near(rows: np.ndarray, columns: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """rows (n, w) bool, columns (n,) -> (first, last) (n,) float: the run of True in each row that
    holds the True pixel nearest its column, NaN where none lies within ``gap`` pixels."""
    index = np.arange(rows.shape[1])
    distance = np.where(rows, np.abs(index - columns[:, None]), np.inf)
    nearest = distance.argmin(1)
    first = np.where(~rows & (index < nearest[:, None]), index, -1).max(1) + 1.0
    last = np.where(~rows & (index > nearest[:, None]), index, rows.shape[1]).min(1) - 1.0
    far = distance[np.arange(len(rows)), nearest] > gap
    first[far], last[far] = np.nan, np.nan
    return first, last


def triangulate(points: Sequence[np.ndarray], cameras: Sequence[geometry.Camera]) -> np.ndarray:
    """(3,) mm: the least-squares point (DLT, float64 SVD) seen at the distorted pixels ``points``."""
    rows = []
    for point, camera in zip(points, cameras):
        u, v = geometry.undistort_points(point, camera)
        P = geometry.projection_matrix(camera)
        rows += [u * P[2] - P[0], v * P[2] - P[1]]
    rows = np.array(rows)
    rows /= np.linalg.norm(rows[:, :3], axis=1, keepdims=True)  # each row: the distance (mm) to its plane
    solution = np.linalg.svd(rows)[2][-1]
    return solution[:3] / solution[3]


# --------------------------------------------------------------------------- the track

# Smoothing over time, in video frames (50 fps: 0.2 s and 0.08 s), whatever the stride: a running
# median over +-SMOOTH_MEDIAN_FRAMES removes single-frame outliers, then a Gaussian of sigma
# SMOOTH_SIGMA_FRAMES the remaining jitter.
SMOOTH_MEDIAN_FRAMES = 10
SMOOTH_SIGMA_FRAMES = 4.0


def pelvis_track(measurements: Sequence[Measurement | None]) -> np.ndarray:
    """(T, 3) rig mm, NaN where no person was found: x, y of the trunk axis, z below the head top
    by ``HEAD_TO_PELVIS`` x the track's standing height."""
    found = [m for m in measurements if m is not None]
    standing = np.clip(np.percentile([m.top - m.bottom for m in found], STANDING_HEIGHT_PERCENTILE),
                       *STANDING_HEIGHT_MM)
    return np.array([[*m.xy, m.top - HEAD_TO_PELVIS * standing] if m is not None else [np.nan] * 3
                     for m in measurements])


def fill_gaps(frames: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) frames, (T, 3) roots with NaN rows -> (roots with every row filled, (T,) status).

    A missing frame between found ones is interpolated linearly in the frame index; before the
    first or after the last found frame the nearest found root is held.
    """
    found = ~np.isnan(roots[:, 0])
    filled = np.stack([np.interp(frames, frames[found], roots[found, axis]) for axis in range(3)], -1)
    status = np.where(found, "found", "interpolated").astype(object)
    status[~found & ((frames < frames[found][0]) | (frames > frames[found][-1]))] = "held"
    return filled, status.astype(str)


def smooth(frames: np.ndarray, roots: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(T, 3) roots smoothed over time: the median of the FOUND roots within +-SMOOTH_MEDIAN_FRAMES
    (a frame with none keeps its own), then a Gaussian of sigma SMOOTH_SIGMA_FRAMES (cut at 4
    sigma); frames: (T,) increasing video frame indices, found: (T,) bool."""
    medians = roots.copy()
    for i, window in enumerate(windows(frames, SMOOTH_MEDIAN_FRAMES)):
        if found[window].any():
            medians[i] = np.median(roots[window][found[window]], axis=0)
    smoothed = np.empty_like(roots)
    for i, window in enumerate(windows(frames, 4 * SMOOTH_SIGMA_FRAMES)):
        weights = np.exp(-0.5 * ((frames[window] - frames[i]) / SMOOTH_SIGMA_FRAMES) ** 2)
        smoothed[i] = weights @ medians[window] / weights.sum()
    return smoothed


def windows(frames: np.ndarray, half_width: float) -> list:
    """For each of the (T,) increasing ``frames``, the slice of those within +-``half_width`` of it,
    narrowed near the ends of the track so that it stays centred on the frame (a one-sided window
    would pull the root toward where the person is going)."""
    reach = np.minimum(half_width, np.minimum(frames - frames[0], frames[-1] - frames))
    starts = np.searchsorted(frames, frames - reach, side="left")
    ends = np.searchsorted(frames, frames + reach, side="right")
    return [slice(start, end) for start, end in zip(starts, ends)]
