"""The predict loop: synchronised videos of V calibrated cameras -> 2D and 3D joints, no labels.

One path for a user's own rig (``--mode predict``) and for the test protocol (``--mode test``):

1. The cameras are re-expressed in their rig frame (``rig_frame``): the model never sees the
   calibration's world frame, and the 3D joints are mapped back into it at the end.
2. The root (pelvis) of every frame (``find_root_track``): from the user's 2D detections
   (``detections``), the videos (``root_finder``: silhouettes carved into a volume, smoothed
   over time) or the cameras' centre; or given (``--root labels``, the labelled pelvis).
3. The frames are streamed in chunks of ``batch_size`` (bounded memory); each chunk is cut
   into root-centred crops (``crops.root_box``: a fixed world square around the root, in
   every view), the model predicts, and, for a root found in the videos, the crops are cut
   again around the model's own triangulated pelvis (``refinements`` times) before the final
   prediction, in the frames where the model agrees with itself across views
   (``self_consistency``; elsewhere the root stays): the model trained on roots as far off as
   the root finder's (``crop_augmentation``), and its pelvis is then much closer than the
   silhouettes'. A root from detections is not refined.
4. 2D joints go back into each full frame's pixels; 3D joints into the calibration's world.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Sequence as SequenceOf

import numpy as np

from common import crops
from common import geometry
from common import skeleton
from common import rig_frame
from common import video_io
from common.progress import ProgressBar
from rig import run_summary

DEFAULT_REFINEMENTS = 2
# The model's pelvis replaces the root only where the model agrees with itself across views: the
# median (over joints) distance between its 2D joints and its triangulated 3D joints reprojected, in
# the worst view, at most this share of the crop's side (0.03 of a 2 m box is 60 mm).
REFINE_MAX_ERROR_SHARE = 0.03


@dataclasses.dataclass
class VideoPrediction:
    """What the model says about T frames of V synchronised videos.

    frames (T,) video frame indices; joints_3d (T, J, 3) world mm (the calibration's frame);
    joints_2d (T, V, J, 2) full-frame pixels, distorted (as the image shows them);
    kp2d_crop (T, V, J, 2) crop pixels; crops (T, V, 3, 3) frame pixels -> crop pixels of the
    final crops; root (T, 3) world mm, the root the final crops are centred on; first_root
    (T, 3) world mm, the root before the model's refinements; root_status (T,) str, where the
    first root came from ("labels", or the root finder's "found" / "interpolated" / "held");
    root_report: the root finder's account (empty for given roots); pictures {frame: (V, S, S, 3)
    uint8 RGB final crops} of the frames asked for; notes: what was not as asked (a video that
    ends before its container says: the frames before its end are predicted), a sentence each;
    root_source: "labels" or the ``RootTrack.source``; refined (T,) bool: the final root is the
    model's own pelvis (consistent across views), not the first root.
    """

    frames: np.ndarray
    joints_3d: np.ndarray
    joints_2d: np.ndarray
    kp2d_crop: np.ndarray
    crops: np.ndarray
    root: np.ndarray
    first_root: np.ndarray
    root_status: np.ndarray
    root_report: str
    pictures: dict
    notes: tuple = ()
    root_source: str = "labels"
    refined: np.ndarray | None = None


def crop_matrices(cameras: SequenceOf[geometry.Camera], root: np.ndarray, box_mm: float,
                  image_size: int) -> np.ndarray:
    """(V, 3, 3) frame -> crop matrices of the root-box crops of one frame; root (3,) mm in the
    cameras' frame."""
    return np.stack([crops.box_crop_matrix(*crops.root_box(root, camera, box_mm), image_size) for camera in cameras])


def crop_view(frame_bgr: np.ndarray, matrix: np.ndarray, image_size: int) -> np.ndarray:
    """(S, S, 3) uint8 RGB crop of one (H, W, 3) BGR frame (OpenCV's order) by a (3, 3) crop matrix."""
    return crops.crop_frame(frame_bgr, matrix, image_size)[..., ::-1]


def crop_views(frames_bgr: SequenceOf[np.ndarray], cameras: SequenceOf[geometry.Camera], root: np.ndarray,
               box_mm: float, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The V root-box crops of one frame: ((V, S, S, 3) uint8 RGB, (V, 3, 3) frame -> crop matrices).

    frames_bgr: V (H, W, 3) BGR frames (OpenCV's order); root (3,) mm in the cameras' frame.
    """
    matrices = crop_matrices(cameras, root, box_mm, image_size)
    return np.stack([crop_view(frame, matrix, image_size) for frame, matrix in zip(frames_bgr, matrices)]), matrices


def model_inputs(images: np.ndarray, matrices: np.ndarray, cameras) -> dict:
    """The model's input dict for B frames: images (B, V, S, S, 3), matrices (B, V, 3, 3) -> P, K,
    dist, view_mask (all views visible), float32, in the cameras' frame."""
    K = matrices @ np.stack([camera.K for camera in cameras])
    Rt = np.stack([np.concatenate([camera.R, camera.t[:, None]], axis=1) for camera in cameras])
    batch, views = matrices.shape[:2]
    return {"images": images, "P": (K @ Rt).astype(np.float32), "K": K.astype(np.float32),
            "dist": np.broadcast_to(np.stack([camera.dist for camera in cameras]),
                                    (batch, views, geometry.DIST_SIZE)).astype(np.float32),
            "view_mask": np.ones((batch, views), np.float32)}


def _take(stream, count: int, keep: Callable) -> tuple[list, video_io.VideoEndedEarly | None]:
    """``keep(position, frame)`` of each of the next ``count`` frames of one stream (the frame is the
    stream's reused buffer: ``keep`` returns copies or crops of it), and the ``VideoEndedEarly``
    that cut them short (None when all were read)."""
    taken = []
    try:
        for position in range(count):
            taken.append(keep(position, next(stream)))
    except video_io.VideoEndedEarly as ended:
        return taken, ended
    return taken, None


def _read_chunk(streams, count: int, pool, keeps) -> tuple[list, video_io.VideoEndedEarly | None]:
    """What ``keeps[v]`` keeps of each of the next ``count`` frames of every stream v, as a list of
    V per frame, each video decoded (and its frames cropped) on its own thread of ``pool``
    (OpenCV releases the GIL), and the ``VideoEndedEarly`` of a video that ended before them
    (None when all were read)."""
    taken = [job.result() for job in [pool.submit(_take, stream, count, keep) for stream, keep in zip(streams, keeps)]]
    ended = next((end for _, end in taken if end is not None), None)
    return [list(views) for views in zip(*(frames for frames, _ in taken))], ended


def _predict_padded(network, inputs: dict, batch_size: int) -> dict:
    """The network's outputs for a batch of B <= ``batch_size`` samples, run as a full batch (the
    last sample repeated): a smaller last chunk would make TensorFlow trace the model again, which
    costs as much as many chunks."""
    count = len(inputs["images"])
    padded = {key: np.concatenate([value, np.repeat(value[-1:], batch_size - count, axis=0)])
              for key, value in inputs.items()} if count < batch_size else inputs
    return {key: np.asarray(value)[:count] for key, value in network.predict_on_batch(padded).items()}


def _predict_chunk(network, frames_bgr: list | None, cameras, roots: np.ndarray, box_mm: float, image_size: int,
                   refinements: int, batch_size: int = 0, cut: tuple | None = None):
    """B frames (each V BGR frames), (B, 3) first roots -> (kp3d (B, J, 3), kp2d (B, V, J, 2) crop px,
    images (B, V, S, S, 3), matrices (B, V, 3, 3), final roots (B, 3), refined (B,) bool), all in
    the cameras' frame. A refinement moves a root to the model's pelvis only where the model is
    consistent across views (``self_consistency``); elsewhere the root stays. batch_size: the
    model runs on batches of this size (``_predict_padded``; 0: as many as given). cut: the first
    crops, (images (B, V, S, S, 3), matrices (B, V, 3, 3)), when already cut around ``roots``;
    frames_bgr is then needed only for the refinements."""
    refined = np.zeros(len(roots), bool)
    for step in range(refinements + 1):
        if step or cut is None:
            views = [crop_views(views, cameras, root, box_mm, image_size) for views, root in zip(frames_bgr, roots)]
            cut = np.stack([c[0] for c in views]), np.stack([c[1] for c in views])
        images, matrices = cut
        outputs = _predict_padded(network, model_inputs(images, matrices, cameras), max(batch_size, len(roots)))
        kp3d, kp2d = np.asarray(outputs["kp3d"], np.float64), np.asarray(outputs["kp2d"], np.float64)
        if step < refinements:
            pelvis = kp3d[:, skeleton.PELVIS]
            accept = np.isfinite(pelvis).all(axis=1) & (
                self_consistency(kp3d, kp2d, matrices, cameras) <= REFINE_MAX_ERROR_SHARE * image_size)
            roots = np.where(accept[:, None], pelvis, roots)
            refined |= accept
    return kp3d, kp2d, images, matrices, roots, refined


def self_consistency(kp3d: np.ndarray, kp2d: np.ndarray, matrices: np.ndarray, cameras) -> np.ndarray:
    """(B,) crop pixels: how far the model's (B, V, J, 2) crop-pixel joints lie from its (B, J, 3)
    triangulated joints projected into the (B, V, 3, 3) crops, the median over joints in the worst
    view; inf where a joint is not finite."""
    projected = np.stack([geometry.project(np.nan_to_num(kp3d), camera) for camera in cameras], 1)  # (B, V, J, 2)
    distance = np.linalg.norm(geometry.apply_affine(projected, matrices) - kp2d, axis=-1)
    worst = np.median(distance, axis=-1).max(axis=-1)
    return np.where(np.isfinite(kp3d).all(axis=(1, 2)), worst, np.inf)


def find_root_track(cameras, videos, frames, *, source: str = "silhouettes", detections=None, fps: float = 50.0,
                    background_videos=None, progress: bool = True):
    """The first root of every frame (``root_finder.RootTrack``) in the RIG frame of ``cameras`` (world).

    source: "silhouettes" (``root_finder``, from the videos), "detections" (``detections``, a
    ``detections.Detections`` of these cameras, at ``fps``) or "centre" (the point the cameras look
    at, ``rig_frame``'s origin, in every frame: a coarse root for one person who stays near it,
    with status "centre").
    """
    if source not in run_summary.ROOT_SOURCES:
        raise ValueError(f"Unknown root source {source!r}; choose one of {', '.join(run_summary.ROOT_SOURCES)}.")
    local, _ = rig_frame.cameras_in_rig_frame(cameras)
    frames = np.asarray(frames, np.int64)
    from rig import root_finder  # only predict and the estimated-root protocol need it
    if source == "detections":
        from rig import detections as detections_lib
        return detections_lib.find_roots(detections, local, frames, fps)
    if source == "centre":
        return root_finder.RootTrack(frames=frames, roots=np.zeros((len(frames), 3)),
                                     status=np.full(len(frames), "centre"), views=np.zeros((len(frames), len(local)), bool),
                                     seconds=0.0, source="centre")
    return root_finder.find_roots(videos, local, frames, progress=progress, background_videos=background_videos)


class _FrameStore:
    """One view's full frames of a chunk, in one array reused from chunk to chunk: on a loaded
    machine, touching fresh memory for every chunk of full frames costs more than decoding them."""

    def __init__(self, capacity: int):
        self.capacity, self.array = capacity, None

    def put(self, position: int, frame: np.ndarray) -> np.ndarray:
        """Frame ``position`` of the chunk: a copy of ``frame`` in the store (valid until the next chunk)."""
        if self.array is None or self.array.shape[1:] != frame.shape:
            self.array = np.empty((self.capacity, *frame.shape), frame.dtype)
        self.array[position] = frame
        return self.array[position]


def _keeper(view: int, matrices: np.ndarray | None, image_size: int, store: _FrameStore,
            thumbnail: Callable | None) -> Callable:
    """keep(position, frame) for ``_take`` of view ``view``: (the frame's crop by
    ``matrices[position, view]``, or the frame in ``store`` when ``matrices`` is None; the
    ``thumbnail(view, frame)`` of ``on_chunk``, or None without one)."""
    def keep(position: int, frame: np.ndarray) -> tuple:
        first = (store.put(position, frame) if matrices is None
                 else crop_view(frame, matrices[position, view], image_size))
        return first, None if thumbnail is None else thumbnail(view, frame)
    return keep


def poses_from_videos(network, cameras: SequenceOf[geometry.Camera], videos: SequenceOf[str],
                   frames: SequenceOf[int], *, image_size: int, box_mm: float, roots: np.ndarray | None = None,
                   refinements: int = DEFAULT_REFINEMENTS, batch_size: int = 8, picture_frames=(),
                   on_chunk: Callable | None = None, thumbnail: Callable = lambda view, frame: frame.copy(),
                   background_videos=None, progress: bool = True, what: str = "predicting frames",
                   track=None) -> VideoPrediction:
    """Run ``network`` over ``frames`` of the V ``videos`` seen by ``cameras`` (world frame, in order).

    roots: None (found in the videos by ``root_finder``, then refined by the model) or (T, 3)
    world mm (used as they are, e.g. the labelled pelvis). picture_frames: frames whose final
    crops are kept (``VideoPrediction.pictures``). on_chunk(thumbnails, frame_indices,
    joints_2d, joints_3d): called for every chunk with the ``thumbnail(view, frame_bgr)`` of its V
    frames per frame (to draw an overlay; default: a copy of the BGR frame), made as the frame is
    decoded. background_videos: per camera, the videos its background is learned from
    (``root_finder``; default: its own video; give more where the person stays in one place).
    track: the first roots already found (``find_root_track``, rig frame; roots must then be
    None). A root from 2D detections is the triangulated mid-hip already and is not refined.
    Frames are decoded once here (and once more by the silhouette
    root finder); at most ``batch_size`` frames of every view are held at a time, and only their
    crops where the root is not refined.
    """
    frames = np.asarray(frames, np.int64)
    local, frame = rig_frame.cameras_in_rig_frame(cameras)
    if roots is None:
        if track is None:
            track = find_root_track(cameras, videos, frames, background_videos=background_videos, progress=progress)
        first_roots, status, report, source = track.roots, track.status, track.report(), track.source
        refine = 0 if source == "detections" else refinements
    else:
        first_roots, status, report, source = frame.to_rig(roots), np.full(len(frames), "labels"), "", "labels"
        refine = 0
    streams = [video_io.stream_frames(path, frames) for path in videos]
    results, pictures, wanted, notes = [], {}, set(int(f) for f in picture_frames), []
    bar = ProgressBar(len(frames), what, enabled=progress)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(streams))
    stores = [_FrameStore(batch_size) for _ in streams]
    try:
        for start in range(0, len(frames), batch_size):
            # Without refinements the crops are cut as each frame is decoded, and no full frame is
            # kept: fresh memory for a chunk of full frames costs more than decoding them.
            first_matrices = None if refine else np.stack([crop_matrices(local, root, box_mm, image_size)
                                                            for root in first_roots[start:start + batch_size]])
            read, ended = _read_chunk(streams, min(batch_size, len(frames) - start), pool, [
                _keeper(view, first_matrices, image_size, stores[view], thumbnail if on_chunk is not None else None)
                for view in range(len(streams))])
            chunk = frames[start:start + len(read)]
            if ended is not None:
                notes.append(f"{ended} Predicted the {start + len(read)} frames before its end, of the "
                             f"{len(frames)} asked for.")
            if not len(chunk):
                break
            kept = [[kept_view[0] for kept_view in views] for views in read]
            cut = None if refine else (np.stack(kept), first_matrices[:len(chunk)])
            kp3d, kp2d, images, matrices, final, refined = _predict_chunk(
                network, None if cut else kept, local, first_roots[start:start + len(chunk)], box_mm, image_size,
                refine, batch_size, cut=cut)
            joints_2d = geometry.apply_affine(kp2d, np.linalg.inv(matrices))
            joints_3d = frame.to_world(kp3d)
            results.append((kp3d, kp2d, matrices, final, joints_2d, joints_3d, refined))
            pictures.update({int(f): images[i] for i, f in enumerate(chunk) if int(f) in wanted})
            if on_chunk is not None:
                on_chunk([[kept_view[1] for kept_view in views] for views in read], chunk, joints_2d, joints_3d)
            bar.advance(len(chunk))
            if ended is not None:
                break
    finally:
        bar.finish()
        pool.shutdown(wait=True)
        for stream in streams:
            stream.close()
    if not results:
        raise ValueError(f"No frame of {', '.join(videos)} could be read (see the notes above): nothing to predict.")
    kp3d, kp2d, matrices, final, joints_2d, joints_3d, refined = (np.concatenate(parts) for parts in zip(*results))
    done = len(kp3d)
    return VideoPrediction(frames=frames[:done], joints_3d=joints_3d, joints_2d=joints_2d, kp2d_crop=kp2d,
                           crops=matrices, root=frame.to_world(final), first_root=frame.to_world(first_roots[:done]),
                           root_status=np.asarray(status)[:done], root_report=report, pictures=pictures,
                           notes=tuple(notes), root_source=source, refined=refined)

