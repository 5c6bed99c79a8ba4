"""PosePipeline: one frame -> poses path; uint8 + compact files give the poses of float + full files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from kapao_edge import PosePipeline, load_engine
from kapao_edge.errors import InputError
from kapao_edge.io_options import IoOptions
from kapao_edge.postprocess import PostprocessConfig


def _assert_same_poses(a, b, tol: float = 0.01) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=tol, rtol=0)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=tol, rtol=0)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("thresholds", ["demo", "val"])
def test_uint8_compact_file_gives_the_poses_of_the_float_full_file(bundled_files, scenes, thresholds: str) -> None:
    with load_engine(bundled_files["float"]) as full, load_engine(bundled_files["uint8_compact"]) as compact:
        assert compact.input_format == "uint8" and compact.metadata.max_candidates == 1024
        config = PostprocessConfig.named(thresholds, full.metadata.postprocess)
        reference = PosePipeline(full, imgsz=448, config=config)
        deployed = PosePipeline(compact, imgsz=448, config=config)
        people = 0
        for frame in scenes:
            expected, actual = reference(frame), deployed(frame)
            assert actual.dropped_candidates == 0  # the count fits in K: the exactness promise applies
            _assert_same_poses(actual.poses, expected.poses)
            people += len(expected.poses)
        assert people > 0  # the comparison saw poses


def test_torch_engine_runs_the_same_io_as_the_exported_file(bundled_files, scenes) -> None:
    with load_engine("bundled", input_format="uint8", max_candidates=1024) as torch_engine, \
            load_engine(bundled_files["uint8_compact"]) as onnx_engine:
        torch_pipe, onnx_pipe = PosePipeline(torch_engine, imgsz=448, preprocess="host"), PosePipeline(onnx_engine, imgsz=448)
        for frame in scenes[:3]:
            _assert_same_poses(torch_pipe(frame).poses, onnx_pipe(frame).poses, tol=0.05)


def test_wrong_input_kind_is_refused_clearly(bundled_files) -> None:
    frames = np.zeros((1, 448, 448, 3), np.uint8)
    with load_engine(bundled_files["uint8_compact"]) as compact, load_engine(bundled_files["float"]) as full:
        with pytest.raises(InputError, match="expects uint8 frames.*skip the float conversion"):
            compact(frames.astype(np.float32))
        with pytest.raises(InputError, match=r"expects uint8 frames shaped \(B, H, W, 3\)"):
            compact(np.zeros((1, 3, 448, 448), np.uint8))
        with pytest.raises(InputError, match="export with --input uint8"):
            full(frames)


def test_overflowing_k_warns_once_and_reports_dropped_rows(tmp_path: Path, scenes) -> None:
    from kapao_edge.export import export_onnx
    from kapao_edge.model import read_checkpoint

    small = tmp_path / "k4.onnx"
    export_onnx(read_checkpoint("bundled").model, small, imgsz=(256, 256), io=IoOptions("uint8", 4), verify=False)
    with load_engine(small) as engine:
        pipeline = PosePipeline(engine, imgsz=448, config=PostprocessConfig.official_val())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [pipeline(frame) for frame in scenes[:3]]
        dropped = [w for w in caught if "did not fit in this file's 4" in str(w.message)]
        assert len(dropped) == 1  # once per pipeline, not once per frame
        assert all(r.dropped_candidates > 0 for r in results)


def test_thresholds_below_the_floor_are_flagged(bundled_files) -> None:
    with load_engine(bundled_files["uint8_compact"]) as engine:
        with pytest.warns(RuntimeWarning, match="below this file's candidate floor"):
            PosePipeline(engine, config=PostprocessConfig.official_val(conf_thres=0.0001))


def test_map_overlaps_stages_and_keeps_frame_order(bundled_files, scenes) -> None:
    with load_engine(bundled_files["float"]) as engine:
        pipeline = PosePipeline(engine, imgsz=448)
        sequential = [pipeline(frame) for frame in scenes]
        for batch in (1, 3):
            overlapped = list(pipeline.map(iter(scenes), batch=batch))
            assert len(overlapped) == len(scenes)
            for got, want in zip(overlapped, sequential):
                _assert_same_poses(got.poses, want.poses, tol=1e-4)


def test_map_raises_a_stage_error_and_stops(bundled_files, scenes) -> None:
    with load_engine(bundled_files["float"]) as engine:
        pipeline = PosePipeline(engine, imgsz=448)
        frames = [scenes[0], np.zeros((4, 4), np.float64), scenes[1]]  # the second is no image
        with pytest.raises(InputError, match="expected a uint8 image"):
            list(pipeline.map(frames))


def test_device_letterbox_on_the_cpu_matches_the_host_letterbox(scenes) -> None:
    with load_engine("bundled") as engine:
        assert engine.letterboxes_on_device
        host = PosePipeline(engine, imgsz=448, preprocess="host")
        device = PosePipeline(engine, imgsz=448, preprocess="device")
        for frame in scenes[:3]:
            a, b = host(frame), device(frame)
            assert a.letterbox == b.letterbox  # same geometry: poses map back identically
            assert abs(len(a.poses) - len(b.poses)) <= 1  # pixels differ by at most one grey level


def test_pipeline_refuses_what_it_cannot_do(bundled_files) -> None:
    with load_engine(bundled_files["float"]) as engine:
        with pytest.raises(InputError, match="cannot letterbox on its device"):
            PosePipeline(engine, preprocess="device")
        with pytest.raises(InputError, match="preprocess must be"):
            PosePipeline(engine, preprocess="gpu")
    with pytest.raises(InputError, match="needs an engine"):
        PosePipeline("bundled")


def test_load_engine_refuses_unknown_options(bundled_files) -> None:
    with pytest.raises(InputError, match="takes no option threads"):
        load_engine("bundled", threads=2)
    with pytest.raises(InputError, match="onnxruntime backend takes no option device"):
        load_engine(bundled_files["float"], device="cuda")
    with load_engine(bundled_files["float"], threads=None) as engine:  # None means "not given"
        assert engine.backend == "onnxruntime"


def test_default_size_is_the_one_the_model_documents(tiny_onnx: Path) -> None:
    """`PosePipeline(engine)` with no size runs at the size the file documents, like every CLI command."""
    from kapao_edge.commands._common import model_imgsz
    from kapao_edge.engines import load_engine
    from kapao_edge.model import read_checkpoint

    bundled = load_engine("bundled")
    documented = int(read_checkpoint("bundled").meta["imgsz"])
    assert bundled.metadata.documented_imgsz == documented
    assert PosePipeline(bundled).imgsz == documented == model_imgsz("bundled")
    with load_engine(tiny_onnx) as engine:  # exported at 256x256: the file records it
        assert engine.metadata.documented_imgsz == 256
        assert PosePipeline(engine).imgsz == 256 == model_imgsz(tiny_onnx)
        assert PosePipeline(engine, imgsz=320).imgsz == 320


def test_the_pipeline_gives_its_tracker_each_frame() -> None:
    """PosePipeline(tracker=...) gives the ids of feeding the tracker the same poses and frames by
    hand, and its tracks hold colour looks: the frames reached the tracker."""
    from kapao_edge.data.synth.video import generate_video
    from kapao_edge.runtime.tracker import PoseTracker

    frames = [f.image for f in generate_video(4242, 8, (320, 480))]
    with load_engine("bundled") as engine:
        tracked = PosePipeline(engine, imgsz=320, tracker=PoseTracker())
        plain = PosePipeline(engine, imgsz=320, config=tracked.config)
        by_hand = PoseTracker()
        shown = 0
        for image in frames:
            ids = tracked(image).poses.ids  # (P,)
            assert ids.tolist() == by_hand.update(plain(image).poses, image).tolist()
            shown += int((ids >= 0).sum())
    assert shown > 0
    assert any(track.appearance is not None for track in tracked.tracker._tracks)
