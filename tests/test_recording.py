"""Recording with bounded memory (engine.recording, engine.gif.GifStream, celeblook_desktop.recorder) on frames of
a real talking-head clip: the GIF decodes to the frames it was given and plays in real time, memory stays at a
few frames however many are written, the duration limit ends a take, MP4 by suffix, and a failed save keeps both
the previous file and the recorded frames."""
from __future__ import annotations

import io
import tracemalloc

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, ImageSequence

from celeblook_desktop.recorder import LIMIT_S, MAX_SIDE as MAX_SIDE_TEST, Recorder, save_take
from engine.errors import BadInputError, CelebLookError
from engine.gif import GifStream, fit_size, global_palette, write_gif
from engine.recording import Spool, encode_take
from engine.video import VideoReader


@pytest.fixture(scope="module")
def clip_frames(videos_dir):
    """36 BGR frames of a talking head at most 480 px a side (what the recorder keeps)."""
    with VideoReader(videos_dir / "d18.mp4") as reader:
        return [fit_size(f.image, 480) for f in reader.frames(36)]


def rgb(frame):
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def test_gif_stream_decodes_to_its_frames_in_real_time(clip_frames):
    frames = [rgb(f) for f in clip_frames] + [rgb(clip_frames[-1])] * 3  # a still end: one longer frame
    buf = io.BytesIO()
    gif = GifStream(buf, (frames[0].shape[1], frames[0].shape[0]), global_palette(frames[::6]), fps=12.0)
    for f in frames:
        gif.add(f)
    gif.close()
    decoded = iio.imread(buf.getvalue(), index=None, extension=".gif")[..., :3]
    assert decoded.shape[0] == len(clip_frames), "repeated frames become one longer frame"
    error = np.abs(decoded.astype(int) - np.stack(frames[:len(clip_frames)]).astype(int)).mean(axis=(1, 2, 3))
    assert error.max() < 4.0, error  # 255 colours for a whole take: a little banding, no wrong frames
    durations = [fr.info["duration"] for fr in ImageSequence.Iterator(Image.open(io.BytesIO(buf.getvalue())))]
    assert sum(durations) == pytest.approx(1000 * len(frames) / 12.0, abs=10)  # real time, no drift
    assert durations[-1] >= 3 * 80


def test_gif_stream_memory_is_a_few_frames_not_the_take(clip_frames):
    """Python-side peak while writing 150 frames stays under 12 frames' worth (the old writer stacked them all:
    150 frames' worth before Pillow even started)."""
    frame_bytes = clip_frames[0].nbytes
    palette = global_palette([rgb(clip_frames[0])])
    tracemalloc.start()
    try:
        sink = _Sink()
        gif = GifStream(sink, (clip_frames[0].shape[1], clip_frames[0].shape[0]), palette, fps=12.0)
        tracemalloc.reset_peak()
        for i in range(150):
            gif.add(rgb(clip_frames[i % len(clip_frames)]))
        gif.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sink.bytes > 150 * 1000, "it did write the frames"
    assert peak < 12 * frame_bytes, f"{peak / frame_bytes:.1f} frames' worth"


class _Sink:
    """A file that counts what is written and keeps none of it (so only the writer's own memory is measured)."""

    bytes = 0

    def write(self, data) -> int:
        self.bytes += len(data)
        return len(data)


def test_write_gif_refuses_mixed_sizes_and_nothing(tmp_path, clip_frames):
    with pytest.raises(BadInputError):
        write_gif(tmp_path / "e.gif", [])
    with pytest.raises(BadInputError, match="same size"):
        write_gif(tmp_path / "m.gif", [rgb(clip_frames[0]), rgb(clip_frames[0][:100])])


def test_recorder_spools_to_disk_and_stops_at_its_limit(tmp_path, clip_frames):
    rec = Recorder(spool_parent=tmp_path)
    rec.start(limit_s=LIMIT_S[".gif"], t=0.0)
    kept = [rec.add(clip_frames[i % len(clip_frames)], t=i / 30.0) for i in range(30 * 60)]  # 60 s at 30 fps
    assert rec.limit_reached and not rec.add(clip_frames[0], t=61.0)
    assert sum(kept) == rec.spool.count == pytest.approx(12 * 50, abs=2), "12 fps for the 50 s limit, no more"
    assert len(list(rec.spool.folder.glob("*.jpg"))) == rec.spool.count, "the frames are on disk, not in memory"
    take = rec.stop()
    assert take.limit_reached and take.fps == pytest.approx(12.0, rel=0.02) and not rec.recording
    mp4 = save_take(take, tmp_path / "take.mp4")
    capture = cv2.VideoCapture(str(mp4))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == take.frames
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(take.fps, rel=0.01)
    capture.release()
    assert not take.spool.folder.exists(), "the spool goes once the file is safe"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.mp4"], "no temporary file left"


def test_a_take_ends_on_the_last_frame_shown(tmp_path, clip_frames):
    """A frame that was not due (the recorder keeps at most 12 a second) but was the last one shown when the user
    stopped still ends the take: the recording ends where the window did."""
    rec = Recorder(spool_parent=tmp_path)
    rec.start(t=0.0)
    frames = clip_frames[:19] + [np.ascontiguousarray(clip_frames[35][:, ::-1])]  # the last one: mirrored, distinct
    kept = [rec.add(f, t=i / 30.0) for i, f in enumerate(frames)]  # 20 frames at 30 fps: the last is not due
    assert not kept[-1]
    take = rec.stop()
    assert take.frames == sum(kept) + 1
    last = cv2.imread(str(sorted(take.spool.folder.glob("*.jpg"))[-1]))
    want, before = fit_size(frames[-1], MAX_SIDE_TEST).astype(int), fit_size(frames[-2], MAX_SIDE_TEST).astype(int)
    assert np.abs(last.astype(int) - want).mean() < np.abs(last.astype(int) - before).mean() / 2
    take.spool.discard()


def test_failed_save_keeps_the_old_file_and_the_frames(tmp_path, clip_frames):
    good = tmp_path / "out.gif"
    spool = Spool(tmp_path)
    for f in clip_frames[:6]:
        spool.add(f)
    encode_take(spool, good, 12.0)
    before = good.read_bytes()

    rec = Recorder(spool_parent=tmp_path)
    rec.start(t=0.0)
    for i, f in enumerate(clip_frames):
        rec.add(f, t=i / 12.0)
    take = rec.stop()
    (take.spool.folder / "000020.jpg").unlink()  # the disk lost a frame while it was being encoded
    with pytest.raises(CelebLookError, match=f"frames are kept in {take.spool.folder}"):
        save_take(take, good)
    assert good.read_bytes() == before, "a partial file never replaces a good one"
    assert not list(tmp_path.glob(".out.gif*")), "and no temporary file is left"
    assert take.spool.folder.is_dir() and take.frames == len(clip_frames)

    with pytest.raises(CelebLookError, match="output folder does not exist.*frames are kept"):
        save_take(take, tmp_path / "gone" / "x.gif")
    with pytest.raises(BadInputError, match=r"\.gif or \.mp4"):
        encode_take(take.spool, tmp_path / "x.webp", 12.0)
