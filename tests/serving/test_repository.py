"""``export --triton-repo``: configs parse with Triton's model-config protobuf and agree with each
other and the graph; the post-processing model runs in a real Triton (the tritonserver binary PyTriton
ships, Python backend) and answers what a local PosePipeline returns. The onnxruntime and TensorRT
backends are not in that binary: the engine model itself is checked on a GPU Triton only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kapao_edge.serving.process import free_ports


@pytest.fixture(scope="module")
def repository(serving_available, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("repo")
    subprocess.run([sys.executable, "-m", "kapao_edge.cli", "export", "--weights", "bundled", "--input", "uint8",
                    "--out", str(folder / "kapao.onnx"), "--triton-repo", str(folder / "repo"),
                    "--triton-max-batch", "4", "--triton-instances", "2"], check=True, capture_output=True, text=True)
    return folder / "repo"


def _configs(repo: Path) -> dict:
    from kapao_edge.serving.repository import parse_config

    return {path.parent.name: parse_config(path.read_text()) for path in sorted(repo.glob("*/config.pbtxt"))}


def test_configs_parse_and_agree(repository):
    import onnx

    configs = _configs(repository)
    assert set(configs) == {"kapao", "kapao_engine", "kapao_postprocess"}
    engine, post, ensemble = configs["kapao_engine"], configs["kapao_postprocess"], configs["kapao"]
    assert engine.platform == "onnxruntime_onnx" and (repository / "kapao_engine/1/model.onnx").is_file()
    assert post.backend == "python" and (repository / "kapao_postprocess/1/model.py").is_file()
    assert ensemble.platform == "ensemble" and (repository / "kapao/1").is_dir()
    for config in (engine, post, ensemble):
        assert config.max_batch_size == 4
    for config in (engine, post):
        assert config.HasField("dynamic_batching") and config.instance_group[0].count == 2
    assert engine.instance_group[0].kind == engine.instance_group[0].KIND_GPU
    graph = onnx.load(str(repository / "kapao_engine/1/model.onnx"), load_external_data=False).graph
    assert engine.input[0].name == graph.input[0].name and list(engine.input[0].dims) == [-1, -1, 3]
    assert engine.output[0].name == graph.output[0].name
    assert engine.output[0].dims[-1] == graph.output[0].type.tensor_type.shape.dim[2].dim_value
    assert post.input[0].dims[-1] == engine.output[0].dims[-1]
    # every ensemble tensor flows from an ensemble input or an earlier step's output into a real member input
    available = {tensor.name for tensor in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        member = configs[step.model_name]
        assert set(step.input_map) == {tensor.name for tensor in member.input}
        assert set(step.input_map.values()) <= available
        assert set(step.output_map) <= {tensor.name for tensor in member.output}
        available |= set(step.output_map.values())
    assert {tensor.name for tensor in ensemble.output} <= available
    assert [list(t.dims) for t in ensemble.output] == [list(t.dims) for t in post.output]


def test_tensorrt_backend_config(serving_available, repository, tmp_path):
    from kapao_edge.serving.repository import RepositoryOptions, parse_config, write_repository

    target = write_repository(repository / "kapao_engine/1/model.onnx", tmp_path / "trt", preset_keypoints=17,
                              postprocess={}, options=RepositoryOptions(backend="tensorrt"))
    config = parse_config((target / "kapao_engine/config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"


@pytest.mark.parametrize("options, message", [
    ([], "--input uint8"),
    (["--input", "uint8", "--max-candidates", "100"], "--max-candidates"),
])
def test_refusals(tmp_path, options, message):
    result = subprocess.run([sys.executable, "-m", "kapao_edge.cli", "export", "--weights", "bundled", *options,
                             "--out", str(tmp_path / "k.onnx"), "--triton-repo", str(tmp_path / "repo")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "repo").exists() and not (tmp_path / "k.onnx").exists()


@pytest.fixture(scope="module")
def triton_postprocess(repository, tmp_path_factory):
    """The tritonserver binary shipped in the PyTriton wheel, serving kapao_postprocess from the repository."""
    import pytriton

    dist = Path(pytriton.__file__).parent / "tritonserver"
    home = tmp_path_factory.mktemp("tritonserver")
    shutil.copytree(dist / "bin", home / "bin")
    shutil.copytree(dist / "backends", home / "backends")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shutil.copy(dist / "python_backend_stubs" / version / "triton_python_backend_stub", home / "backends/python")
    libs = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(filter(None, [os.environ.get("LD_LIBRARY_PATH"), str(libs)])),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    http_port, grpc_port, metrics_port = free_ports(3)
    log = open(home / "log", "w")
    process = subprocess.Popen(
        [str(home / "bin/tritonserver"), "--model-repository", str(repository), "--model-control-mode", "explicit",
         "--load-model", "kapao_postprocess", "--backend-directory", str(home / "backends"),
         "--http-address", "127.0.0.1", "--http-port", str(http_port), "--grpc-address", "127.0.0.1",
         "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port), "--allow-metrics", "false",
         "--exit-timeout-secs", "5"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{http_port}/v2/models/kapao_postprocess/ready"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail((home / "log").read_text()[-3000:])
        time.sleep(0.5)
    yield f"127.0.0.1:{http_port}"
    process.terminate()
    process.wait(timeout=60)
    log.close()


def test_postprocess_model_in_triton_equals_local(repository, triton_postprocess, sample_frames):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    from kapao_edge import load_engine
    from kapao_edge.runtime.pipeline import PosePipeline

    client = http.InferenceServerClient(triton_postprocess)
    with load_engine(repository / "kapao_engine/1/model.onnx") as engine:
        pipeline = PosePipeline(engine)
        total = 0
        for name, frame in sample_frames.items():
            prepared = pipeline.preprocess(frame)  # (1, H, W, 3) uint8 letterboxed, as a client of `kapao` sends
            predictions = engine.run(prepared.inputs).predictions.astype(np.float32)  # (1, N, No)
            inputs = []
            for tensor_name, array, datatype in (("predictions", predictions, "FP32"), ("images", prepared.inputs, "UINT8"),
                                                 ("original_hw", np.array([frame.shape[:2]], np.int32), "INT32")):
                tensor = http.InferInput(tensor_name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            result = client.infer("kapao_postprocess", inputs)
            count = int(result.as_numpy("count")[0, 0])
            local = pipeline.postprocess(pipeline.infer(prepared)).poses
            assert count == len(local), name
            np.testing.assert_allclose(result.as_numpy("keypoints")[0, :count], local.keypoints, atol=0.01)
            np.testing.assert_allclose(result.as_numpy("boxes")[0, :count], local.boxes, atol=0.01)
            total += count
        assert total > 0
        bad = http.InferInput("predictions", [1, 10, 7], "FP32")  # not KAPAO rows
        bad.set_data_from_numpy(np.zeros((1, 10, 7), np.float32))
        others = [http.InferInput("images", [1, 64, 64, 3], "UINT8"), http.InferInput("original_hw", [1, 2], "INT32")]
        others[0].set_data_from_numpy(np.zeros((1, 64, 64, 3), np.uint8))
        others[1].set_data_from_numpy(np.array([[64, 64]], np.int32))
        with pytest.raises(InferenceServerException):
            client.infer("kapao_postprocess", [bad, *others])
        assert client.is_model_ready("kapao_postprocess")
    client.close()


def test_serve_an_onnx_engine(repository, start_serve, sample_frames):
    """`serve --engine model.onnx`: ONNX Runtime behind Triton, equal to the same engine run locally."""
    from kapao_edge import load_engine
    from kapao_edge.runtime.pipeline import PosePipeline
    from kapao_edge.serving import Client

    onnx_path = repository / "kapao_engine/1/model.onnx"
    server = start_serve("--engine", str(onnx_path), weights=None)
    with load_engine(onnx_path) as engine, Client(server.grpc_url) as client:
        pipeline = PosePipeline(engine)
        for name, frame in sample_frames.items():
            served, local = client(frame), pipeline(frame).poses
            assert len(served) == len(local), name
            np.testing.assert_allclose(served.keypoints, local.keypoints, atol=0.01, err_msg=name)
    assert server.stop() == 0
