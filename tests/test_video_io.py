"""video_io on real mp4 files: frames streamed in order, a video cut short told apart from a damaged one."""
import re

import numpy as np
import pytest

from common import video_io
from media_files import break_frame, cut_after_header, write_frames

FRAMES = 30


@pytest.fixture
def video(tmp_path):
    """An mp4 of FRAMES frames whose frame i is grey level 8 i."""
    path = tmp_path / "Walking.54138969.mp4"
    write_frames(path, [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(FRAMES)])
    return path


def grey_levels(frames):
    return [int(round(frame.mean() / 8)) for frame in frames]


def test_stream_frames_yields_the_wanted_frames_in_order(video):
    assert grey_levels(video_io.stream_frames(video, [0, 3, 4, 29])) == [0, 3, 4, 29]
    assert video_io.video_frame_count(str(video)) == FRAMES


def test_a_video_cut_short_ends_early_saying_how_many_frames_decode(video):
    cut_after_header(video, keep_frames=17)
    assert video_io.video_frame_count(str(video)) == FRAMES  # the container still lists them all
    streamed = []
    message = f"Video {video} ends after 17 frames, but frame 20 is needed (its container lists 30)"
    with pytest.raises(video_io.VideoEndedEarly, match=re.escape(message)) as ended:
        for frame in video_io.stream_frames(video, [0, 16, 20]):
            streamed.append(frame.copy())
    assert grey_levels(streamed) == [0, 16]
    assert (ended.value.frames, ended.value.claimed, ended.value.path) == (17, FRAMES, str(video))


def test_a_frame_that_does_not_decode_before_others_that_do_is_an_error_naming_it(video):
    break_frame(video, 12)
    assert grey_levels(video_io.stream_frames(video, range(12))) == list(range(12))
    message = f"Video {video}: frame 12 does not decode, but later frames do"
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        list(video_io.stream_frames(video, [5, 20]))
    assert not isinstance(error.value, video_io.VideoEndedEarly)


class CountingCapture:
    """A capture that counts its seeks (``set(CAP_PROP_POS_FRAMES, ...)``) and passes the rest on."""

    def __init__(self, capture):
        self.capture, self.seeks = capture, 0

    def set(self, prop, value):
        self.seeks += 1
        return self.capture.set(prop, value)

    def __getattr__(self, name):
        return getattr(self.capture, name)


def test_background_samples_are_the_evenly_spread_frames_read_in_one_forward_pass(video, monkeypatch):
    """Guards issue 22's speed fix: one seek per sample decoded pose2sim's demo videos (one key frame) from
    their start 40 times. Planted fault: the old ``capture.set(POS_FRAMES)`` per sample -> seeks != 0."""
    opened = []
    original = video_io.open_video
    monkeypatch.setattr(video_io, "open_video", lambda path: opened.append(CountingCapture(original(path))) or opened[-1])
    assert grey_levels(video_io.sample_frames(video, 5)) == [0, 7, 14, 22, 29]
    assert [capture.seeks for capture in opened] == [0]
    assert grey_levels(video_io.sample_frames(video, 1000)) == list(range(FRAMES))


def test_background_samples_of_a_video_cut_short_are_those_before_its_end(video):
    cut_after_header(video, keep_frames=17)
    assert grey_levels(video_io.sample_frames(video, 4)) == [0, 10]  # 0, 10, 19, 29 asked; 19 and 29 lost
