"""TensorRT backend: option checks, profiles and sidecars everywhere; plan building where TensorRT imports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from kapao_edge.engines import load_engine
from kapao_edge.engines.tensorrt_backend import (
    NEEDS_TENSORRT,
    Profile,
    build_plan,
    check_build_options,
    derive_profile,
    parse_shape,
    plan_input_shape,
    read_sidecar,
    sidecar_path,
    summarize_onnx,
    write_sidecar,
)
from kapao_edge.errors import EngineError, InputError

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
DYNAMIC = ["batch", 3, "height", "width"]


@pytest.fixture(scope="module")
def qdq_onnx(tiny_onnx: Path, tmp_path_factory) -> Path:
    """A minimal Q/DQ graph carrying our metadata: the precision marker an INT8 export has."""
    from onnx import TensorProto, helper

    from kapao_edge.export.metadata import read_onnx_metadata, set_onnx_metadata

    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.02])
    zero = helper.make_tensor("zero", TensorProto.INT8, [], [0])
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["images", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["predictions"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        initializer=[scale, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    set_onnx_metadata(model, read_onnx_metadata(onnx.load(str(tiny_onnx))))
    path = tmp_path_factory.mktemp("qdq") / "qdq.onnx"
    onnx.save(model, str(path))
    return path


# ------------------------------------------------------------------ shapes and profiles


def test_shapes_parse_like_trtexec() -> None:
    assert parse_shape("1x3x640x640") == (1, 3, 640, 640)
    assert parse_shape(" 4X3x256x320 ") == (4, 3, 256, 320)
    for bad in ["1x3x640", "1x3x640x640x1", "1,3,640,640", "ax3x64x64", ""]:
        with pytest.raises(InputError, match="--opt-shape must look like 1x3x640x640"):
            parse_shape(bad, option="--opt-shape")


def test_default_profiles_cover_only_the_dynamic_axes() -> None:
    dynamic = derive_profile(DYNAMIC)
    assert (dynamic.min, dynamic.opt, dynamic.max) == ((1, 3, 128, 128), (1, 3, 640, 640), (4, 3, 1280, 1280))
    fixed_hw = derive_profile(["batch", 3, 256, 320])
    assert (fixed_hw.min, fixed_hw.max) == ((1, 3, 256, 320), (4, 3, 256, 320))
    static = derive_profile([2, 3, 128, 192])
    assert static.min == static.opt == static.max == (2, 3, 128, 192)


def test_opt_shape_alone_pins_every_axis_of_the_plan() -> None:
    profile = derive_profile(DYNAMIC, opt_shape=(2, 3, 256, 320))
    assert profile.min == profile.max == (2, 3, 256, 320)
    assert plan_input_shape(DYNAMIC, profile) == [2, 3, 256, 320]
    batch_one = derive_profile(DYNAMIC, min_shape=(1, 3, 128, 128), opt_shape=(1, 3, 256, 256), max_shape=(1, 3, 512, 512))
    assert plan_input_shape(DYNAMIC, batch_one) == [1, 3, "height", "width"]
    assert batch_one.contains((1, 3, 128, 512)) and not batch_one.contains((1, 3, 576, 128))
    assert not batch_one.contains((2, 3, 256, 256))


@pytest.mark.parametrize(
    ("input_shape", "shapes", "message"),
    [
        (DYNAMIC, {"opt_shape": (1, 3, 200, 256)}, "--opt-shape 1x3x200x256: height and width must be positive multiples of 64"),
        (DYNAMIC, {"opt_shape": (1, 3, 0, 256)}, "multiples of 64"),
        (DYNAMIC, {"opt_shape": (1, 4, 256, 256)}, "3 channels"),
        (DYNAMIC, {"opt_shape": (0, 3, 256, 256)}, "batch must be >= 1"),
        (DYNAMIC, {"min_shape": (1, 3, 256, 256)}, "together, or --opt-shape alone"),
        (DYNAMIC, {"min_shape": (1, 3, 256, 256), "opt_shape": (1, 3, 256, 256)}, "together"),
        (DYNAMIC, {"min_shape": (2, 3, 256, 256), "opt_shape": (1, 3, 256, 256), "max_shape": (4, 3, 256, 256)}, "min <= opt <= max"),
        (DYNAMIC, {"min_shape": (1, 3, 128, 128), "opt_shape": (1, 3, 640, 640), "max_shape": (1, 3, 512, 1280)}, "min <= opt <= max"),
        ([2, 3, 128, 192], {"opt_shape": (1, 3, 128, 192)}, "fixed batch of 2"),
        (["batch", 3, 128, 192], {"opt_shape": (1, 3, 128, 128)}, "fixed 128x192 inputs"),
    ],
)
def test_bad_profiles_are_refused_with_the_reason(input_shape, shapes, message) -> None:
    with pytest.raises(InputError, match=message):
        derive_profile(input_shape, **shapes)


# ------------------------------------------------------------------ the ONNX as the builder will see it


def test_onnx_summary_tells_fp32_from_explicit_precision(tiny_onnx: Path, tiny_fp16_onnx: Path, qdq_onnx: Path) -> None:
    fp32 = summarize_onnx(tiny_onnx)
    assert (fp32.input_name, fp32.precision, fp32.explicit_precision) == ("images", "fp32", False)
    assert fp32.input_shape == DYNAMIC and fp32.metadata["preset"] == "coco"
    fp16 = summarize_onnx(tiny_fp16_onnx)
    assert (fp16.precision, fp16.explicit_precision) == ("fp16", True)
    assert summarize_onnx(qdq_onnx).explicit_precision


def test_unusable_onnx_files_are_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ONNX file not found"):
        summarize_onnx(tmp_path / "missing.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("definitely not a protobuf")
    with pytest.raises(InputError, match="is not an ONNX model"):
        summarize_onnx(text)
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(InputError, match="no kapao_edge metadata: export it with `kapao-edge export` first"):
        summarize_onnx(foreign)


def test_build_options_are_checked(tiny_onnx: Path, tiny_fp16_onnx: Path) -> None:
    check_build_options(summarize_onnx(tiny_onnx), fp16=True, workspace_mb=512)  # FP32 + --fp16 is allowed
    with pytest.raises(InputError, match="--fp16 needs an FP32 ONNX; .* is already fp16"):
        check_build_options(summarize_onnx(tiny_fp16_onnx), fp16=True, workspace_mb=None)
    with pytest.raises(InputError, match="--workspace-mb must be >= 1, got 0"):
        check_build_options(summarize_onnx(tiny_onnx), fp16=False, workspace_mb=0)


# ------------------------------------------------------------------ sidecars


def test_sidecar_round_trip_keeps_the_onnx_metadata(tiny_onnx: Path, tmp_path: Path) -> None:
    summary = summarize_onnx(tiny_onnx)
    plan = tmp_path / "model.engine"
    profile = derive_profile(summary.input_shape, min_shape=(1, 3, 128, 128), opt_shape=(1, 3, 256, 320), max_shape=(1, 3, 640, 640))
    written = write_sidecar(plan, summary.metadata, profile, {"version": "10.9.0", "flags": []})
    assert written == sidecar_path(plan) == tmp_path / "model.engine.json"
    assert not plan.exists()  # the sidecar never touches the plan itself

    metadata, read_profile = read_sidecar(plan)
    assert read_profile == profile
    assert metadata.input_shape == [1, 3, "height", "width"]  # the profile pins the batch
    raw = json.loads(written.read_text())
    for key, value in summary.metadata.items():
        if key != "input_shape":
            assert raw[key] == value, key
    assert (metadata.preset, metadata.num_keypoints, metadata.extra["kp_flip"]) == ("coco", 17, summary.metadata["kp_flip"])
    block = metadata.extra["tensorrt"]
    assert block["version"] == "10.9.0" and block["onnx_input_shape"] == DYNAMIC
    assert block["profile"] == {"min": [1, 3, 128, 128], "opt": [1, 3, 256, 320], "max": [1, 3, 640, 640]}


def test_sidecar_keeps_the_models_recommended_postprocessing(tiny_onnx: Path, tmp_path: Path) -> None:
    summary = summarize_onnx(tiny_onnx)
    plan = tmp_path / "model.engine"
    profile = derive_profile(summary.input_shape, min_shape=(1, 3, 128, 128), opt_shape=(1, 3, 256, 256), max_shape=(1, 3, 256, 256))
    write_sidecar(plan, {**summary.metadata, "postprocess": {"overwrite_tol": 12.0}}, profile, {"version": "10.9.0"})
    assert read_sidecar(plan)[0].postprocess == {"overwrite_tol": 12.0}
    write_sidecar(plan, {**summary.metadata, "postprocess": {"overwrite_tol": "near"}}, profile, {"version": "10.9.0"})
    with pytest.raises(EngineError, match=r"model\.engine\.json: .*overwrite_tol must be a number"):
        read_sidecar(plan)


def test_missing_or_broken_sidecars_are_engine_errors(tiny_onnx: Path, tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    with pytest.raises(EngineError, match=r"has no metadata sidecar: expected .*model\.plan\.json"):
        read_sidecar(plan)
    sidecar_path(plan).write_text("{not json")
    with pytest.raises(EngineError, match="not valid JSON"):
        read_sidecar(plan)
    metadata = summarize_onnx(tiny_onnx).metadata
    sidecar_path(plan).write_text(json.dumps(metadata))  # an ONNX entry copied by hand, no tensorrt block
    with pytest.raises(EngineError, match="lacks its optimisation profile"):
        read_sidecar(plan)


# ------------------------------------------------------------------ without TensorRT


def test_bad_input_fails_before_tensorrt_is_needed(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="multiples of 64"):
        build_plan(tiny_onnx, tmp_path / "m.engine", opt_shape=(1, 3, 100, 128))
    with pytest.raises(InputError, match="must end in .engine or .plan"):
        build_plan(tiny_onnx, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_valid_input_without_tensorrt_says_what_is_needed(tiny_onnx: Path, tmp_path: Path) -> None:
    assert NEEDS_TENSORRT == "the tensorrt backend needs TensorRT 10 or newer (pip package tensorrt) and a CUDA GPU"
    with pytest.raises(EngineError, match=r"needs TensorRT 10 or newer"):
        build_plan(tiny_onnx, tmp_path / "m.engine")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ with TensorRT (skipped where it is absent)


@pytest.fixture(scope="module")
def trt():
    return pytest.importorskip("tensorrt")


@pytest.fixture(scope="module")
def built(trt, tiny_onnx: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    report = build_plan(
        tiny_onnx, out / "coco.engine", min_shape=(1, 3, 128, 128), opt_shape=(2, 3, 256, 320),
        max_shape=(3, 3, 320, 384), workspace_mb=1024, timing_cache=out / "timing.cache",
    )
    return report


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - expected).max() / np.abs(expected).max())


def test_plan_matches_onnx_runtime_at_two_shapes(built, tiny_onnx: Path) -> None:
    from kapao_edge.export.verify import sample_batch

    plan = Path(built.plan_path)
    assert plan.is_file() and Path(built.sidecar_path) == sidecar_path(plan)
    assert Path(built.timing_cache).stat().st_size > 0 and built.flags == []
    with load_engine(plan) as engine, load_engine(tiny_onnx) as reference:
        assert engine.backend == "tensorrt" and engine.metadata.preset == "coco"
        for shape in ([1, 3, 128, 128], [3, 3, 320, 384], [2, 3, 256, 320]):
            images = sample_batch(shape, seed=3)  # (B, 3, H, W)
            predictions = engine(images)  # (B, N, No)
            assert predictions.dtype == np.float32
            assert _relative_error(predictions, reference(images)) <= 1e-3
        staged = engine.run(images, timed=True)
        assert set(staged.stages) == {"h2d", "infer", "d2h"} and np.array_equal(staged.predictions, engine(images))
        with pytest.raises(InputError, match="optimisation profile takes"):
            engine(sample_batch([4, 3, 128, 128], seed=0))


def test_plan_is_a_plain_serialized_engine(built, trt) -> None:
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    assert runtime.deserialize_cuda_engine(Path(built.plan_path).read_bytes()) is not None


def test_plan_without_its_sidecar_names_the_expected_file(built, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely.engine"
    lonely.write_bytes(Path(built.plan_path).read_bytes())
    with pytest.raises(EngineError, match=r"no metadata sidecar: expected .*lonely\.engine\.json"):
        load_engine(lonely)


def test_parser_errors_are_reported(trt, qdq_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(qdq_onnx))
    model.graph.node[0].op_type = "NoSuchOp"
    model.graph.node[0].domain = "org.example"
    model.opset_import.append(onnx.helper.make_opsetid("org.example", 1))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(EngineError, match="TensorRT cannot parse .*broken.onnx: .*NoSuchOp"):
        build_plan(broken, tmp_path / "broken.engine", opt_shape=(1, 3, 64, 64))
    assert not (tmp_path / "broken.engine").exists()


def test_tiny_fp16_onnx_builds_strongly_typed(trt, tiny_fp16_onnx: Path, tmp_path: Path) -> None:
    from kapao_edge.export.verify import sample_batch

    report = build_plan(tiny_fp16_onnx, tmp_path / "fp16.engine", opt_shape=(1, 3, 256, 256))
    assert report.flags == ["STRONGLY_TYPED"]
    images = sample_batch([1, 3, 256, 256], seed=1)
    with load_engine(report.plan_path) as engine, load_engine(tiny_fp16_onnx) as reference:
        assert engine.metadata.input_shape == [1, 3, 256, 256]
        assert _relative_error(engine(images), reference(images)) <= 1e-2


def test_fp16_flag_depends_on_the_tensorrt_version(trt, tiny_onnx: Path, tmp_path: Path) -> None:
    plan = tmp_path / "flag.engine"
    if int(trt.__version__.split(".")[0]) >= 11:
        with pytest.raises(InputError, match="--fp16 is a TensorRT 10 option"):
            build_plan(tiny_onnx, plan, opt_shape=(1, 3, 128, 128), fp16=True)
        return
    report = build_plan(tiny_onnx, plan, opt_shape=(1, 3, 128, 128), fp16=True)
    assert report.flags == ["FP16"]
    assert json.loads(sidecar_path(plan).read_text())["tensorrt"]["flags"] == ["FP16"]
