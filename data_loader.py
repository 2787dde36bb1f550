"""The ``tf.data`` pipeline: Human3.6M sequences -> synchronised multi-view crops + cameras + targets.

One element is one frame index of one sequence, seen by all V cameras at once::

    inputs  = {"images": uint8 (V, S, S, 3) RGB crops,
               "P": float32 (V, 3, 4) = crop @ K @ [R | t]   (pinhole, crop pixels, world mm),
               "K": float32 (V, 3, 3) = crop @ K,
               "dist": float32 (V, 5) [k1, k2, k3, p1, p2]  (official Human3.6M model)}
    targets = {"kp2d": float32 (V, J, 2) crop pixels, DISTORTED (the D2 labels: what the image shows),
               "kp3d": float32 (J, 3) world mm (the D3 labels)}
    metadata = {"subject", "action", "sequence": tf.string, "frame": int32}

and ``build_dataset`` batches them (a leading B axis on everything). J = the 17 joints
``h36m_utils.J17``. Label row ``i`` of every CDF belongs to video frame ``i`` (0-based).

How it stays fast: every sequence is opened once per camera and read FORWARD (``grab()`` skips
the frames between strides without colour conversion, ``retrieve()`` decodes the kept ones);
never a seek, which makes naive loaders crawl on mp4. Many sequences are read at once by
``Dataset.interleave`` (OpenCV releases the GIL while decoding and warping, so the threads
really run in parallel). Each capture decodes on ONE FFmpeg thread (``open_video``): the
parallelism comes from the sequences, and OpenCV's default of one decoder thread per core in
every one of the many open videos oversubscribed the cores. Frames are decoded into reused
buffers, BGR -> RGB runs on the S x S crop only, and each sequence hands ``CHUNK_FRAMES`` frames
at a time to ``tf.data`` (``sequence_chunks``, unbatched again inside ``interleave``, so the
element order is unchanged) to pay ``from_generator``'s per-call Python cost once per chunk.

Crops: a square box around the 32 projected (D2) joints of the frame, its side enlarged by
``margin``; training jitters its scale and centre. ``cv2.warpAffine`` cuts it out with the top
rows of ``h36m_utils.crop_matrix`` and pads whatever lies outside the frame with black, so the
geometry is never clamped. The same matrix maps K, P and the 2D targets (pixel centres at
integer coordinates throughout).
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence as SequenceOf

import cv2
import numpy as np
import tensorflow as tf

import h36m_utils

# A box is never smaller than this (pixels), so a degenerate pose cannot blow up the crop scale.
MIN_BOX_SIDE = 16.0
# FFmpeg decoding threads per open video (see ``open_video``).
DECODER_THREADS = 1
# Frames handed from Python to tf.data at once per sequence (see ``sequence_chunks``).
CHUNK_FRAMES = 8


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """How crops are cut.

    image_size: side S of the square crop in pixels. margin: the box side is the joints' larger
    extent times ``1 + margin``. scale_jitter / shift_jitter (training only): the side is
    multiplied by a factor uniform in ``[1 - scale_jitter, 1 + scale_jitter]`` and the centre
    moved by up to ``shift_jitter`` times the side along each axis. With the defaults every joint
    stays inside the jittered crop.
    """

    image_size: int
    margin: float = 0.3
    scale_jitter: float = 0.1
    shift_jitter: float = 0.05

    def __post_init__(self):
        if int(self.image_size) != self.image_size or self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.margin <= -1 or not 0 <= self.scale_jitter < 1 or self.shift_jitter < 0:
            raise ValueError(
                f"Need margin > -1, 0 <= scale_jitter < 1, shift_jitter >= 0; got margin={self.margin}, "
                f"scale_jitter={self.scale_jitter}, shift_jitter={self.shift_jitter}")


# --------------------------------------------------------------------------- crop geometry

def joint_box(points: np.ndarray, margin: float) -> tuple[np.ndarray, float]:
    """Square box around (J, 2) pixel points: (centre (2,), side), side = extent * (1 + margin)."""
    low, high = points.min(axis=0), points.max(axis=0)
    side = max(float((high - low).max()) * (1.0 + margin), MIN_BOX_SIDE)
    return (low + high) / 2.0, side


def jitter_box(center: np.ndarray, side: float, config: CropConfig,
               rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Randomly rescale and shift a box (training augmentation); returns (centre (2,), side)."""
    side = side * rng.uniform(1.0 - config.scale_jitter, 1.0 + config.scale_jitter)
    center = center + rng.uniform(-config.shift_jitter, config.shift_jitter, size=2) * side
    return center, side


def box_crop_matrix(center: np.ndarray, side: float, image_size: int) -> np.ndarray:
    """(3, 3) ``crop_matrix`` mapping the box onto an S x S crop, pixel centres at integers.

    The box's edges ``center -/+ side / 2`` land on the crop's outer pixel edges -0.5 and S - 0.5.
    """
    scale = image_size / side
    offset = center - side / 2.0 + 0.5 / scale
    return h36m_utils.crop_matrix(scale, offset[0], offset[1])


def apply_crop(points: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """(..., 2) frame pixels -> (..., 2) crop pixels through a (3, 3) ``crop_matrix``."""
    return points * np.diag(crop)[:2] + crop[:2, 2]


def crop_frame(frame_bgr: np.ndarray, crop: np.ndarray, image_size: int,
               out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) BGR frame -> (S, S, 3) RGB crop; whatever falls outside the frame is black.

    ``out``: a C-contiguous (S, S, 3) uint8 array to write into (saves an allocation per frame).
    """
    patch = cv2.warpAffine(frame_bgr, crop[:2], (image_size, image_size), dst=out, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB, dst=patch)


# --------------------------------------------------------------------------- reading files

def open_video(path) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of ``path`` whose decoder runs on ONE thread.

    The loader reads many videos at once (``parallel_sequences`` x V), each from its own
    ``tf.data`` thread, so that is where the parallelism comes from. FFmpeg's default, one
    decoding thread per CPU core in EVERY capture, would oversubscribe the cores many times over
    and spend the time handing frames between threads. The thread count only takes effect when
    passed at open time (``CAP_PROP_N_THREADS`` in the open parameters); an OpenCV without it
    falls back to its default.
    """
    if hasattr(cv2, "CAP_PROP_N_THREADS"):
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, DECODER_THREADS])
        if capture.isOpened():
            return capture
        capture.release()
    return cv2.VideoCapture(str(path))


def stream_frames(path, frame_indices: SequenceOf[int]) -> Iterator[np.ndarray]:
    """Yield the (H, W, 3) uint8 BGR frames at the increasing 0-based ``frame_indices``.

    The video is opened once and read forward: ``grab()`` for every frame, ``retrieve()`` only
    for the wanted ones. Every frame is decoded into the SAME array (copy it to keep it): a fresh
    3 MB array per frame would cost page faults, as TensorFlow makes glibc hand freed memory
    back to the system at once. A video that cannot be opened or ends early raises
    ``ValueError`` naming the file.
    """
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ValueError(f"Cannot open video {path}: the file is missing, corrupt or not a "
                             "video OpenCV can decode. Re-download or regenerate it.")
        position, frame = 0, None  # how many frames grab() has returned so far; the frame buffer
        for index in frame_indices:
            while position <= index:
                if not capture.grab():
                    raise ValueError(
                        f"Video {path} is truncated or corrupt: it ended after {position} frames, but "
                        f"frame {index} is needed. Re-download the file, or rebuild the sequence index "
                        "(find_sequences) so that its frame count matches the videos.")
                position += 1
            ok, frame = capture.retrieve(frame)
            if not ok or frame is None:
                raise ValueError(f"Video {path}: frame {index} could not be decoded (corrupt file).")
            yield frame
    finally:
        capture.release()


def read_labels(path, num_frames: int, dims: int, joints: SequenceOf[int] | None = None) -> np.ndarray:
    """The first ``num_frames`` poses of a D2 (dims=2) or D3 (dims=3) CDF: (num_frames, J, dims) float64.

    ``joints`` picks joints of the 32 (all when None). The wrong kind of file, too few rows or
    non-finite values raise ``ValueError`` naming the file.
    """
    poses = h36m_utils.read_poses(str(path))
    if poses.shape[-1] != dims:
        raise ValueError(f"Labels {path} hold {poses.shape[-1]}D points where {dims}D ones are expected "
                         f"({'D2' if dims == 2 else 'D3'}_Positions); the file is in the wrong folder.")
    if len(poses) < num_frames:
        raise ValueError(f"Labels {path} hold {len(poses)} frames but the sequence index expects "
                         f"{num_frames}. Rebuild the index with find_sequences, or replace the file.")
    poses = poses[:num_frames] if joints is None else poses[:num_frames, list(joints)]
    if not np.isfinite(poses).all():
        raise ValueError(f"Labels {path} contain NaN or infinite values in their first {num_frames} "
                         "frames; replace the file.")
    return poses


# --------------------------------------------------------------------------- one sequence

def sequence_frame_indices(num_frames: int, stride: int, phase: int = 0) -> range:
    """The 0-based frames read from a sequence: ``phase, phase + stride, ... < num_frames``."""
    return range(phase, num_frames, stride)


def sequence_chunks(sequence, cameras: SequenceOf[h36m_utils.Camera], frame_indices: SequenceOf[int],
                    config: CropConfig, rng: np.random.Generator | None = None, chunk: int = 8) -> Iterator[tuple]:
    """Yield ``(inputs, targets, metadata)`` numpy dicts for ``chunk`` consecutive frames at a time.

    sequence: an ``h36m_utils.Sequence``; cameras: its subject's V cameras in the views' order;
    frame_indices: increasing 0-based frames < ``sequence.num_frames``; rng: jitters the boxes
    (training) when given, else the crops are deterministic. Every array has the shape given in
    the module docstring with a leading axis of length <= ``chunk`` (the last chunk may be
    shorter), metadata included.

    The data set unbatches them again: handing frames to ``tf.data`` in chunks pays its
    per-element Python cost (``from_generator``'s call, the nested structure, the tensor
    conversions) once per chunk instead of once per frame. The crops and the jitter are exactly
    those of frame-by-frame reading (the same random draws in the same order).
    """
    frame_indices = list(frame_indices)
    if not frame_indices:
        return
    count, views, size = frame_indices[-1] + 1, len(cameras), config.image_size
    kp3d = read_labels(sequence.d3_path, count, 3, h36m_utils.J17).astype(np.float32)
    kp2d_all = np.stack([read_labels(sequence.d2_paths[camera.id], count, 2) for camera in cameras])
    kp2d_j17 = kp2d_all[:, :, list(h36m_utils.J17)]
    dist = np.stack([camera.dist for camera in cameras]).astype(np.float32)
    K = np.stack([camera.K for camera in cameras])  # (V, 3, 3)
    Rt = np.stack([np.concatenate([camera.R, camera.t[:, None]], axis=1) for camera in cameras])  # (V, 3, 4)
    streams = [stream_frames(sequence.videos[camera.id], frame_indices) for camera in cameras]
    strings = {"subject": sequence.subject, "action": sequence.action, "sequence": sequence.name}
    try:
        frames_iter = zip(*streams)
        for first in range(0, len(frame_indices), chunk):
            indices = frame_indices[first:first + chunk]
            n = len(indices)
            images = np.empty((n, views, size, size, 3), np.uint8)
            crops = np.empty((n, views, 3, 3))
            # zip stops on ``indices`` first, so no frame is pulled past the chunk; a video that
            # ends early raises inside its stream.
            for row, (index, frames) in enumerate(zip(indices, frames_iter)):
                for view, (frame, camera) in enumerate(zip(frames, cameras)):
                    if frame.shape[:2] != (camera.height, camera.width):
                        raise _size_error(camera, frame.shape)
                    center, side = joint_box(kp2d_all[view, index], config.margin)
                    if rng is not None:
                        center, side = jitter_box(center, side, config, rng)
                    crop = box_crop_matrix(center, side, size)
                    crop_frame(frame, crop, size, out=images[row, view])
                    crops[row, view] = crop
            cropK = crops @ K  # (n, V, 3, 3)
            scale, shift = crops[:, :, None, [0, 1], [0, 1]], crops[:, :, None, :2, 2]
            inputs = {"images": images, "P": (cropK @ Rt).astype(np.float32), "K": cropK.astype(np.float32),
                      "dist": np.broadcast_to(dist, (n, *dist.shape))}
            targets = {"kp2d": (kp2d_j17[:, indices].transpose(1, 0, 2, 3) * scale + shift).astype(np.float32),
                       "kp3d": kp3d[indices]}
            metadata = {name: np.array([value.encode()] * n, dtype=object) for name, value in strings.items()}
            metadata["frame"] = np.asarray(indices, np.int32)
            yield inputs, targets, metadata
    finally:
        for stream in streams:
            stream.close()


def _size_error(camera: h36m_utils.Camera, shape) -> ValueError:
    return ValueError(f"Camera {camera.id}: the video frame is {shape[1]}x{shape[0]} "
                      f"but the camera file says {camera.width}x{camera.height}; the camera file "
                      "does not belong to this video.")


# --------------------------------------------------------------------------- the data set

def count_frames(sequences, stride: int = 1) -> int:
    """Elements in one pass over every ``stride``-th frame of every sequence (= one training epoch)."""
    return sum(len(sequence_frame_indices(sequence.num_frames, stride)) for sequence in sequences)


def steps_per_epoch(sequences, batch_size: int, stride: int = 1) -> int:
    """Training batches in one epoch: ``count_frames // batch_size`` (use it as Keras' steps_per_epoch)."""
    return max(count_frames(sequences, stride) // batch_size, 1)


def build_dataset(sequences, cameras, *, image_size: int, batch_size: int, training: bool, stride: int = 1,
                  margin: float = CropConfig.margin, scale_jitter: float = CropConfig.scale_jitter,
                  shift_jitter: float = CropConfig.shift_jitter, seed: int | None = None,
                  with_metadata: bool = False, camera_ids: SequenceOf[str] = h36m_utils.CAMERA_IDS,
                  parallel_sequences: int = 8, shuffle_buffer: int = 128, drop_remainder: bool | None = None,
                  input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(inputs, targets)`` or ``(inputs, targets, metadata)``.

    sequences: ``h36m_utils.Sequence`` list (``find_sequences``); cameras: ``load_cameras`` output;
    image_size: crop side S; batch_size: the batch this data set yields (under
    ``distribute_datasets_from_function`` pass ``input_context.get_per_replica_batch_size(global)``).
    Shapes: images (B, V, S, S, 3) uint8; P (B, V, 3, 4); K (B, V, 3, 3); dist (B, V, 5);
    kp2d (B, V, J, 2); kp3d (B, J, 3); metadata strings (B,), frame (B,) int32; V = len(camera_ids).

    training=True: repeats forever (an epoch is ``steps_per_epoch(sequences, batch_size, stride)``
    batches, i.e. as many frames as one pass over every ``stride``-th frame); sequences come in a
    fresh random order each pass, read from a random phase in ``[0, stride)``, with jittered crops,
    in a non-deterministic interleaving, through a shuffle buffer of ``shuffle_buffer`` frames, and
    full batches only. training=False: one pass over frames 0, stride, 2 stride, ... of every
    sequence, unjittered, in a fixed order (sequences interleaved), last batch kept.

    parallel_sequences: sequences read at once (each holds V open videos). shuffle_buffer costs
    V * S * S * 3 bytes a frame (0.8 MB at S = 256). seed: makes the crops' jitter, the phases
    and the orders of shuffles reproducible (the interleaving stays non-deterministic when
    training). input_context: shards the sequences across input
    pipelines (``distribute_datasets_from_function``); without it the data set is marked for
    ``AutoShardPolicy.DATA``, which ``experimental_distribute_dataset`` needs.
    """
    sequences, config = list(sequences), CropConfig(image_size, margin, scale_jitter, shift_jitter)
    if batch_size < 1 or stride < 1 or parallel_sequences < 1 or shuffle_buffer < 1:
        raise ValueError("batch_size, stride, parallel_sequences and shuffle_buffer must be >= 1; got "
                         f"{batch_size}, {stride}, {parallel_sequences}, {shuffle_buffer}")
    views = _cameras_per_sequence(sequences, cameras, camera_ids)
    base_seed = np.random.SeedSequence(seed).entropy

    def generate(sequence_index, visit):
        sequence = sequences[sequence_index]
        rng = np.random.default_rng([base_seed, int(visit)]) if training else None
        phase = int(rng.integers(stride)) if training else 0
        frames = sequence_frame_indices(sequence.num_frames, stride, phase)
        return sequence_chunks(sequence, views[sequence_index], frames, config, rng, chunk=CHUNK_FRAMES)

    signature = tf.nest.map_structure(lambda spec: tf.TensorSpec((None, *spec.shape), spec.dtype),
                                      _element_signature(len(camera_ids), image_size))
    order = tf.data.Dataset.range(len(sequences))
    if input_context is not None:
        order = _shard(order, len(sequences), input_context)
    if training:
        order = order.shuffle(len(sequences), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = order.enumerate().interleave(
        lambda visit, index: tf.data.Dataset.from_generator(
            generate, args=(index, visit), output_signature=signature).unbatch(),
        cycle_length=min(parallel_sequences, len(sequences)), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder)
    if not with_metadata:
        dataset = dataset.map(lambda inputs, targets, metadata: (inputs, targets))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _cameras_per_sequence(sequences, cameras, camera_ids) -> list[list[h36m_utils.Camera]]:
    """Check every sequence has its subject's cameras and files; return each one's V cameras."""
    if not sequences:
        raise ValueError("No sequences to load: the index found none. Print find_sequences' report "
                         "to see what was skipped, and check --data / --labels.")
    views = []
    for sequence in sequences:
        where = f"sequence {sequence.subject} '{sequence.name}'"
        if sequence.subject not in cameras:
            raise ValueError(f"The camera file has no subject {sequence.subject} ({where}); use the "
                             "camera file that covers every subject you load.")
        missing = [camera_id for camera_id in camera_ids if camera_id not in cameras[sequence.subject]
                   or camera_id not in sequence.videos or camera_id not in sequence.d2_paths]
        if missing:
            raise ValueError(f"{where} lacks camera(s) {missing} (camera file, video or D2 labels); "
                             "drop the sequence or pass camera_ids without them.")
        if sequence.num_frames < 1:
            raise ValueError(f"{where} has num_frames={sequence.num_frames}; nothing to read.")
        views.append([cameras[sequence.subject][camera_id] for camera_id in camera_ids])
    return views


def _shard(order: tf.data.Dataset, num_sequences: int, context: tf.distribute.InputContext) -> tf.data.Dataset:
    """Each input pipeline reads its own share of the sequences."""
    if num_sequences < context.num_input_pipelines:
        raise ValueError(f"{num_sequences} sequences cannot be shared by {context.num_input_pipelines} "
                         "input pipelines; load more sequences or use fewer workers.")
    return order.shard(context.num_input_pipelines, context.input_pipeline_id)


def _element_signature(num_views: int, image_size: int) -> tuple[dict, dict, dict]:
    """The ``tf.TensorSpec`` structure of one unbatched ``(inputs, targets, metadata)`` element."""
    joints, size = len(h36m_utils.J17), image_size
    spec = functools.partial(tf.TensorSpec, dtype=tf.float32)
    inputs = {"images": tf.TensorSpec((num_views, size, size, 3), tf.uint8), "P": spec((num_views, 3, 4)),
              "K": spec((num_views, 3, 3)), "dist": spec((num_views, 5))}
    targets = {"kp2d": spec((num_views, joints, 2)), "kp3d": spec((joints, 3))}
    metadata = {"subject": tf.TensorSpec((), tf.string), "action": tf.TensorSpec((), tf.string),
                "sequence": tf.TensorSpec((), tf.string), "frame": tf.TensorSpec((), tf.int32)}
    return inputs, targets, metadata
