"""Streams: the stage runner (order, back-pressure, errors, shutdown, the latest policy) and poses
over real sources with a real model, compared with the per-image pipeline frame by frame."""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.runtime.stream import run_stages, stream


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stream-")]


@pytest.fixture(autouse=True)
def no_threads_left_behind():
    yield
    assert not _stream_threads(), "every stream thread must be joined when the stream ends"


# --- the stage runner ----------------------------------------------------------------------------


def test_results_come_in_input_order_whatever_each_stage_takes():
    def jitter(x):  # later items often finish a stage sooner than earlier ones would
        time.sleep(0.002 * ((7 * x) % 3))
        return x

    run = run_stages(range(40), [jitter, lambda x: x * 10, jitter, lambda x: x + 1], queue_size=2)
    assert list(run) == [x * 10 + 1 for x in range(40)]


class _Counted:
    """A source that counts what was taken from it and whether it was closed."""

    def __init__(self, count: int, size: int = 1 << 16) -> None:
        self.count, self.size = count, size
        self.pulled = 0
        self.closed = False

    def __iter__(self):
        for index in range(self.count):
            self.pulled += 1
            yield np.full(self.size, index % 256, np.uint8)  # (size,) a 64 KiB "frame"

    def close(self) -> None:
        self.closed = True


def test_a_slow_consumer_holds_the_source_back_instead_of_growing_memory():
    source = _Counted(1000)
    stages = [lambda a: a.copy(), lambda a: a + 1]
    queue_size = 2
    bound = queue_size * (len(stages) + 1) + len(stages) + 1  # items in links plus one in hand per thread
    with run_stages(source, stages, queue_size=queue_size) as run:
        for taken, frame in enumerate(run, start=1):
            time.sleep(0.02)  # a consumer far slower than the stages: they fill every link and wait
            assert source.pulled <= taken + bound
            assert run.queued() <= queue_size * (len(stages) + 1)
            if taken == 10:
                break
    assert source.pulled <= 10 + bound
    assert source.closed, "stopping early closes the source"


def test_breaking_out_of_a_plain_for_loop_joins_the_threads_and_closes_the_source():
    source = _Counted(1000)
    for frame in run_stages(source, [lambda a: a]):
        if frame[0] == 2:
            break
    assert source.closed and not _stream_threads()


def test_an_error_in_a_stage_reaches_the_consumer_after_the_items_before_it():
    def fails_at_five(x):
        if x == 5:
            raise ValueError("stage failed on 5")
        return x

    got = []
    with pytest.raises(ValueError, match="stage failed on 5"):
        for x in run_stages(range(100), [lambda x: x, fails_at_five]):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_an_error_in_the_source_reaches_the_consumer():
    def source():
        yield 0
        yield 1
        raise OSError("camera unplugged")

    got = []
    with pytest.raises(OSError, match="camera unplugged"):
        for x in run_stages(source(), [lambda x: x]):
            got.append(x)
    assert got == [0, 1]


def test_ctrl_c_while_waiting_for_a_result_stops_and_joins_everything():
    source = _Counted(1000)
    interrupted = threading.Event()

    def stalls_then_interrupts(frame):
        if frame[0] == 3 and not interrupted.is_set():
            interrupted.set()
            _thread.interrupt_main()  # Ctrl-C arrives while the consumer waits on this stage
            time.sleep(0.2)
        return frame

    got = []
    with pytest.raises(KeyboardInterrupt):
        for frame in run_stages(source, [stalls_then_interrupts]):
            got.append(int(frame[0]))
    assert got == list(range(len(got))) and len(got) <= 3  # the interrupt may land before 0..2 are all taken
    assert source.closed


def test_bad_arguments():
    with pytest.raises(InputError, match="policy"):
        run_stages([], [lambda x: x], policy="newest")
    with pytest.raises(InputError, match="queue_size"):
        run_stages([], [lambda x: x], queue_size=0)
    with pytest.raises(InputError, match="at least one stage"):
        run_stages([], [])


def test_latest_policy_drops_frames_nobody_took_and_says_how_many():
    """Deterministic: the first stage is held on frame 0 until the source has produced frames 1..9."""
    busy, produced = threading.Event(), threading.Event()

    def live_camera():
        yield 0
        assert busy.wait(5)
        yield from range(1, 10)
        produced.set()  # runs when the reader asks for frame 10: frame 9 is in the slot by now

    def first_stage(x):
        if x == 0:
            busy.set()
            assert produced.wait(5)
        return x

    run = run_stages(live_camera(), [first_stage, lambda x: x], policy="latest")
    got = [(x, run.dropped_before) for x in run]
    assert got == [(0, 0), (9, 8)], "frames 1..8 went stale while frame 0 was processed"
    assert run.dropped == 8


def test_wait_policy_never_drops():
    run = run_stages(range(50), [lambda x: (time.sleep(0.001), x)[1]], policy="wait", queue_size=1)
    got = [(x, run.dropped_before) for x in run]
    assert got == [(x, 0) for x in range(50)] and run.dropped == 0


# --- poses over sources --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_pipeline():
    import kapao_edge

    return kapao_edge.PosePipeline(kapao_edge.load_engine("bundled"), imgsz=256)


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory, synth_set: Path) -> Path:
    """The 12 synthetic scenes as a 10 fps MJPG video (lossy, but every decode gives the same pixels)."""
    path = tmp_path_factory.mktemp("video") / "scenes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    for image in sorted((synth_set / "images").iterdir()):
        writer.write(cv2.resize(cv2.imread(str(image)), (256, 256)))
    writer.release()
    return path


def _assert_same_poses(got, want) -> None:
    assert len(got) == len(want)
    np.testing.assert_array_equal(got.keypoints, want.keypoints)  # (P, K, 3)
    np.testing.assert_array_equal(got.boxes, want.boxes)  # (P, 4)
    np.testing.assert_array_equal(got.scores, want.scores)  # (P,)


def test_stream_of_a_video_equals_the_per_image_pipeline_frame_for_frame(bundled_pipeline, scene_video: Path):
    from kapao_edge.data import iter_frames

    reference = [bundled_pipeline(frame.image_bgr).poses for frame in iter_frames(scene_video)]
    assert sum(len(p) for p in reference) > 0, "the bundled model must find people in the scenes"
    with stream(bundled_pipeline, scene_video) as poses_stream:
        assert poses_stream.policy == "wait" and poses_stream.source.fps == pytest.approx(10.0)
        results = list(poses_stream)
        assert poses_stream.source.closed, "the end of the stream releases the source"
    assert [r.frame_index for r in results] == list(range(12))
    assert [r.dropped for r in results] == [0] * 12
    np.testing.assert_allclose([r.timestamp for r in results], np.arange(12) / 10.0, atol=1e-6)
    for result, want in zip(results, reference):
        _assert_same_poses(result.poses, want)
        assert set(result.timings) == {"read", "preprocess", "infer", "postprocess", "latency"}
        assert all(v >= 0 for v in result.timings.values())


def test_stream_of_arrays_and_folders_equals_the_per_image_pipeline(bundled_pipeline, synth_set: Path):
    from kapao_edge.data import iter_frames

    frames = [frame.image_bgr for frame in iter_frames(synth_set / "images")][:6]
    reference = [bundled_pipeline(image).poses for image in frames]
    from_arrays = list(stream(bundled_pipeline, iter(frames)))
    from_folder = list(stream(bundled_pipeline, synth_set / "images"))[:6]
    for got_a, got_f, want in zip(from_arrays, from_folder, reference):
        _assert_same_poses(got_a.poses, want)
        _assert_same_poses(got_f.poses, want)
    assert [r.timestamp for r in from_folder] == [None] * 6


def test_live_stream_keeps_up_by_dropping_and_reports_it_frame_by_frame(bundled_pipeline, scene_video: Path):
    """A video played as a live source reads far faster than the model runs: frames are dropped,
    each result says which frame it is and how many went before it, and the newest frame is kept."""
    from kapao_edge.data import iter_frames

    reference = [bundled_pipeline(frame.image_bgr).poses for frame in iter_frames(scene_video)]
    with stream(bundled_pipeline, scene_video, live=True, retries=0) as poses_stream:
        assert poses_stream.policy == "latest"
        results = []
        with pytest.raises(InputError, match="stopped delivering frames"):  # a live source that ends is a failure
            for result in poses_stream:
                results.append(result)
    indices = [r.frame_index for r in results]
    assert indices == sorted(indices) and indices[-1] == 11, "the newest frame is never the one dropped"
    assert len(results) + results[-1].dropped == 12
    for position, result in enumerate(results):
        assert result.dropped == result.frame_index - position
        _assert_same_poses(result.poses, reference[result.frame_index])


def test_stream_raises_at_call_time_for_sources_that_cannot_open(bundled_pipeline, tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        stream(bundled_pipeline, tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="policy"):
        stream(bundled_pipeline, iter([]), policy="newest")
    with pytest.raises(InputError, match="cannot open camera"):
        stream(bundled_pipeline, 97)
