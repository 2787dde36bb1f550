"""Videos with OpenCV: open with one decoding thread, stream chosen frames forward, sample frames spread
over a whole video, count frames; write mp4.

Every module that reads video frames (the crop cache, the root finder, predict) goes through here,
and every one that writes a video (the synthetic set, predict's outputs) opens it here.
Frames are (H, W, 3) uint8 BGR, as OpenCV decodes and encodes them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence as SequenceOf

import cv2
import numpy as np


def open_video(path) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of ``path`` whose decoder runs on ONE thread.

    Several sequences are cached at once, each from its own thread, which is where the
    parallelism comes from; FFmpeg's default of one decoding thread per core in EVERY open
    video would oversubscribe the cores. The thread count only takes effect when passed at
    open time; an OpenCV without ``CAP_PROP_N_THREADS`` falls back to its default.
    """
    if hasattr(cv2, "CAP_PROP_N_THREADS"):
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if capture.isOpened():
            return capture
        capture.release()
    return cv2.VideoCapture(str(path))


class VideoEndedEarly(ValueError):
    """A video ends (no later frame decodes) before a frame that was asked for: the file is cut short.

    ``path``; ``frames``: the frames it decodes; ``claimed``: the frames its container lists.
    """

    def __init__(self, path, frames: int, needed: int, claimed: int):
        super().__init__(f"Video {path} ends after {frames} frames, but frame {needed} is needed (its container "
                         f"lists {claimed}): the file is cut short. Re-download or re-extract it.")
        self.path, self.frames, self.claimed = str(path), frames, claimed


def stream_frames(path, frame_indices: SequenceOf[int]) -> Iterator[np.ndarray]:
    """Yield the (H, W, 3) uint8 BGR frames at the increasing 0-based ``frame_indices``.

    The video is opened once and read forward: ``grab()`` for every frame, ``retrieve()`` only
    for the wanted ones. Every frame is decoded into the SAME array (copy it to keep it). A
    video that cannot be opened, or has a frame that does not decode before others that do,
    raises ``ValueError`` naming the file (and the frame); one that ends before a wanted frame
    raises ``VideoEndedEarly``, a ``ValueError`` that says how many frames it decodes.
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
                    raise _failed_grab(capture, path, position, index)
                position += 1
            ok, frame = capture.retrieve(frame)
            if not ok or frame is None:
                raise ValueError(f"Video {path}: frame {index} could not be decoded (corrupt file).")
            yield frame
    finally:
        capture.release()


@dataclasses.dataclass(frozen=True)
class VideoProperties:
    """What a video's container says: frame_count, width and height (px), fps."""

    frame_count: int
    width: int
    height: int
    fps: float


def video_properties(path) -> VideoProperties:
    """The container's frame count, frame size and rate; ValueError naming the file if OpenCV cannot open it."""
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ValueError(f"Cannot open video {path}: the file is missing, corrupt or not a video OpenCV "
                             "can decode.")
        return VideoProperties(frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
                               width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                               height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                               fps=float(capture.get(cv2.CAP_PROP_FPS)))
    finally:
        capture.release()


def sample_frames(path, count: int) -> Iterator[np.ndarray]:
    """Yield up to ``count`` (H, W, 3) uint8 BGR frames spread evenly over the whole video.

    For a background model, not for data. The video is read ONCE, forward (``grab()`` every
    frame, ``retrieve()`` the samples): a seek per sample restarts the decoder at the key frame
    before it, which on footage with few key frames (phones, pose2sim's demo: one) decodes the
    video from its start for every sample. The spread follows the container's frame count; a
    video that ends early gives the samples before its end. A video that cannot be opened or has
    no frame raises ``ValueError`` naming the file. Each frame is a new array.
    """
    capture = open_video(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        if total <= 0:
            raise ValueError(f"Cannot open video {path} or it has no frames: the file is missing, corrupt or "
                             "not a video OpenCV can decode. Re-download or regenerate it.")
        wanted = set(np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int)).tolist())
        for index in range(max(wanted) + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    yield frame
    finally:
        capture.release()


def _failed_grab(capture: cv2.VideoCapture, path, position: int, needed: int) -> ValueError:
    """The error for frame ``position`` not decoding: a damaged frame when a later one still decodes,
    else the end of a video cut short (``VideoEndedEarly``). Each failing ``grab()`` reads past at
    least one bad packet, and fails at once at the end of the file, so trying every frame the
    container still lists is cheap."""
    claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    for _ in range(claimed - position - 1):
        if capture.grab():
            return ValueError(f"Video {path}: frame {position} does not decode, but later frames do: the file is "
                              "damaged in the middle. Re-download or re-extract it.")
    return VideoEndedEarly(path, position, needed, claimed)


def video_frame_count(path: str) -> int:
    """Frames in a video according to its container; 0 when OpenCV cannot open it."""
    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


def open_video_writer(path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An mp4v ``cv2.VideoWriter`` for BGR frames of ``size`` (width, height) at ``fps``.

    mp4v (MPEG-4 part 2) is in every OpenCV build with FFmpeg, unlike H.264. Raises OSError
    naming the file when OpenCV cannot write it.
    """
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write the video {path} (mp4v codec, {width}x{height}). "
                      "Check that the folder is writable and OpenCV has FFmpeg support.")
    return writer
