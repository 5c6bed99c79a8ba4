from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.data import BadImageError, SourceError, count_frames, iter_frames, open_source, read_image, source_kind
from kapao_edge.errors import InputError


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    _write(folder / "b.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    _write(folder / "a.PNG", rng.integers(0, 256, (24, 16, 3), dtype=np.uint8))
    _write(folder / "c_grey.png", rng.integers(0, 256, (10, 12), dtype=np.uint8))
    _write(folder / "d_alpha.png", rng.integers(0, 256, (8, 9, 4), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def video_file(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for value in (0, 60, 120, 180, 240):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    return path


def test_folder_yields_sorted_images_as_three_channel_bgr(image_folder: Path):
    frames = list(iter_frames(image_folder))
    assert [f.name for f in frames] == ["a.PNG", "b.png", "c_grey.png", "d_alpha.png"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.image_bgr.shape for f in frames] == [(24, 16, 3), (20, 30, 3), (10, 12, 3), (8, 9, 3)]
    assert all(f.image_bgr.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[1].image_bgr, cv2.imread(str(image_folder / "b.png")))
    grey = cv2.imread(str(image_folder / "c_grey.png"), cv2.IMREAD_UNCHANGED)
    for channel in range(3):
        np.testing.assert_array_equal(frames[2].image_bgr[..., channel], grey)
    alpha = cv2.imread(str(image_folder / "d_alpha.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(frames[3].image_bgr, alpha[..., :3])
    assert count_frames(image_folder) == 4


def test_single_image(image_folder: Path):
    path = image_folder / "b.png"
    frames = list(iter_frames(path))
    assert len(frames) == 1 and frames[0].path == path and frames[0].name == "b.png"
    assert source_kind(path) == "image" and count_frames(path) == 1


def test_video_frames_in_order(video_file: Path):
    assert source_kind(video_file) == "video"
    assert count_frames(video_file) == 5
    frames = list(iter_frames(video_file))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[3].name == "clip_000003"
    assert all(f.image_bgr.shape == (48, 64, 3) for f in frames)
    means = [float(f.image_bgr.mean()) for f in frames]
    assert means == sorted(means) and abs(means[2] - 120) < 5  # MJPG is lossy but keeps flat greys


def test_missing_path_is_reported_at_call_time(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        iter_frames(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="does not exist"):
        count_frames(tmp_path / "nope")


def test_unsupported_extension(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_text("1 2 3")
    with pytest.raises(InputError, match="unsupported extension '.txt'"):
        iter_frames(path)


def test_empty_folder_and_folder_without_images(tmp_path: Path):
    with pytest.raises(InputError, match="no images"):
        iter_frames(tmp_path)
    (tmp_path / "readme.md").write_text("hello")
    with pytest.raises(InputError, match="no images"):
        count_frames(tmp_path)


def test_unreadable_image_and_video(tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(InputError, match="cannot decode"):
        read_image(broken)
    frames = iter_frames(broken)  # the path itself is fine: the failure comes with the frame
    with pytest.raises(InputError, match="cannot decode"):
        next(frames)
    fake_video = tmp_path / "fake.avi"
    fake_video.write_bytes(b"RIFF nonsense")
    with pytest.raises(InputError, match="video"):
        iter_frames(fake_video)


def test_real_coco_samples(coco_sample_dir: Path):
    annotations = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    expected = sorted((im["file_name"], im["height"], im["width"]) for im in annotations["images"])
    frames = list(iter_frames(coco_sample_dir))
    assert [(f.name, *f.image_bgr.shape[:2]) for f in frames] == expected
    assert count_frames(coco_sample_dir) == len(expected)


# --- open_source ---------------------------------------------------------------------------------


def test_open_source_video_knows_its_fps_length_and_source_times(video_file: Path):
    with open_source(video_file) as source:
        assert (source.kind, source.name, source.live, source.total) == ("video", "clip", False, 5)
        assert source.fps == pytest.approx(10.0)
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([f.timestamp for f in frames], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)
    reference = list(iter_frames(video_file))
    for got, want in zip(frames, reference):
        np.testing.assert_array_equal(got.image_bgr, want.image_bgr)


def _bad_images(folder: Path) -> None:
    """One undecodable file and one JPEG cut off half way (cv2 would decode it partly grey)."""
    rng = np.random.default_rng(1)
    ok, encoded = cv2.imencode(".jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert ok
    (folder / "e_truncated.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    (folder / "f_garbage.png").write_bytes(b"\x89PNG not really")


def test_bad_images_are_skipped_with_one_warning_each_and_counted(image_folder: Path):
    _bad_images(image_folder)
    source = open_source(image_folder)
    messages: list[str] = []
    source.on_warning = messages.append
    frames = list(source)
    assert [f.name for f in frames] == ["a.PNG", "b.png", "c_grey.png", "d_alpha.png"]
    assert [name for name, _ in source.skipped] == ["e_truncated.jpg", "f_garbage.png"]
    assert len(messages) == 2
    assert "truncated" in messages[0] and "cannot decode" in messages[1]
    assert source.total == 6  # what the folder holds; the skipped count says how many failed


def test_strict_makes_a_bad_image_fatal_and_says_truncated(image_folder: Path):
    _bad_images(image_folder)
    with pytest.raises(BadImageError, match="truncated"):
        list(open_source(image_folder, strict=True))
    truncated = image_folder / "e_truncated.jpg"
    assert read_image(truncated).shape == (40, 40, 3), "read_image keeps cv2's partial decode by default"
    with pytest.raises(BadImageError, match="truncated"):
        read_image(truncated, allow_truncated=False)


def test_glob_pattern_yields_matching_images_in_sorted_order(image_folder: Path):
    source = open_source(str(image_folder / "*.png"))
    assert source.kind == "glob"
    assert [f.name for f in source] == ["b.png", "c_grey.png", "d_alpha.png"]  # a.PNG does not match *.png
    with pytest.raises(InputError, match="no images match"):
        open_source(str(image_folder / "*.webp"))


def test_iterables_of_arrays(tmp_path: Path):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]
    source = open_source(iter(images))
    assert (source.kind, source.live, source.fps) == ("arrays", False, None)
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    for frame, image in zip(frames, images):
        np.testing.assert_array_equal(frame.image_bgr, image)
    stacked = open_source(np.stack(images))  # (N, H, W, 3): N frames
    assert stacked.total == 3 and len(list(stacked)) == 3
    assert len(list(open_source(images[0]))) == 1  # one (H, W, 3) array is one frame
    assert list(open_source(iter([images[0][..., 0]])))[0].image_bgr.shape == (12, 16, 3)
    with pytest.raises(InputError, match="frame 1 is not"):
        list(open_source([images[0], images[1].astype(np.float32)]))
    assert open_source(iter(images), live=True).live


def test_camera_that_does_not_exist_fails_at_open_with_one_clear_message():
    for source in (97, "97"):
        with pytest.raises(InputError, match="cannot open camera 97"):
            open_source(source)


def test_unreachable_url_fails_at_open_without_leaking_credentials():
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError, match="cannot open stream") as info:
        open_source(f"rtsp://viewer:secret@127.0.0.1:{port}/live", timeout_s=1.0)
    assert "secret" not in str(info.value) and "viewer:***@" in str(info.value)
    with pytest.raises(InputError, match="cannot open stream"):
        open_source(f"http://127.0.0.1:{port}/stream.mjpg", timeout_s=1.0)


def test_live_source_that_stops_delivering_is_retried_then_reported(tmp_path: Path, video_file: Path):
    """A live capture whose device vanished: bounded reopen attempts, then one SourceError."""
    source = open_source(video_file, live=True, retries=2, retry_delay=0.0)
    assert source.live and source.total is None
    video_file.unlink()  # the open capture still reads its frames; reopening now fails
    frames = []
    with pytest.raises(SourceError, match="stopped delivering frames after frame 5; gave up after 2 retries"):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 5
    source.close()


@pytest.fixture()
def local_http(tmp_path: Path):
    """HTTP servers on 127.0.0.1 only: ``serve(handler_class) -> base URL``, shut down after the test."""
    import threading
    from http.server import ThreadingHTTPServer

    servers = []

    def serve(handler) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_video_file_over_http_is_a_finite_url_source(local_http, video_file: Path):
    import functools
    from http.server import SimpleHTTPRequestHandler

    class Files(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    base = local_http(functools.partial(Files, directory=str(video_file.parent)))
    source = open_source(f"{base}/clip.avi", timeout_s=5.0)
    assert (source.kind, source.live, source.total, source.name) == ("url", False, 5, "clip")
    frames = list(source)  # ends like a file: no retry, no error
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([f.timestamp for f in frames], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)


def test_a_live_mjpeg_stream_that_ends_is_retried_then_reported_once(local_http):
    from http.server import BaseHTTPRequestHandler

    class Mjpeg(BaseHTTPRequestHandler):
        """An IP camera's MJPEG stream that sends 6 frames, then hangs up (and refuses afterwards)."""

        served = 0

        def log_message(self, *args):
            pass

        def do_GET(self):
            if Mjpeg.served:
                self.send_error(503)
                return
            Mjpeg.served += 1
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for value in range(6):
                ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 40 * value, np.uint8))
                assert ok
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % jpeg.size
                                 + jpeg.tobytes() + b"\r\n")
                self.wfile.flush()

    base = local_http(Mjpeg)
    source = open_source(f"{base}/live.mjpg", timeout_s=5.0, retries=2, retry_delay=0.0)
    assert source.live and source.total is None
    frames = []
    with pytest.raises(SourceError, match="live.mjpg stopped delivering frames after frame 6; gave up after 2 retries"):
        for frame in source:
            frames.append(frame)
    assert [f.index for f in frames] == list(range(6))
    means = [float(f.image_bgr.mean()) for f in frames]
    assert means == sorted(means)
    source.close()
    assert source.closed
