"""`kapao-edge serve`: the KAPAO model behind NVIDIA Triton Inference Server (many cameras, one server).

Loads the model once per instance as a ``PosePipeline``, binds it into Triton through PyTriton and
serves until SIGTERM or SIGINT; clients send original uint8 BGR frames (``kapao_edge.serving.Client``,
``kapao-edge predict SRC --server URL``) and get poses in original-frame pixels.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, console, err_console, long_side, model_imgsz, parse_imgsz, user_errors
from kapao_edge.serving import DEFAULT_MAX_BATCH, DEFAULT_MAX_FRAME_SIDE, DEFAULT_MAX_POSES, DEFAULT_QUEUE_DELAY_US, MODEL_NAME


@user_errors
def serve(
    weights: Annotated[Optional[Path], typer.Option("--weights", "-w", help="Checkpoint (.pt) or bundled model name, run with the PyTorch reference.")] = None,
    engine: Annotated[Optional[Path], typer.Option("--engine", "-e", help="Deployed model: .onnx (ONNX Runtime) or .engine/.plan (TensorRT).")] = None,
    host: Annotated[str, typer.Option(help="Address Triton listens on (all three endpoints); 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="HTTP/REST port (KServe v2 API, /v2/health/ready).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port (/metrics).")] = 8002,
    max_batch: Annotated[int, typer.Option(help="Largest batch Triton's dynamic batcher forms; 1 turns batching off.")] = DEFAULT_MAX_BATCH,
    queue_delay_us: Annotated[int, typer.Option(help="Longest a request waits for others to batch with, in microseconds.")] = DEFAULT_QUEUE_DELAY_US,
    instances: Annotated[int, typer.Option(help="Model instances (each loads the model once and runs batches in parallel).")] = 1,
    max_poses: Annotated[int, typer.Option(help=f"Pose rows per frame in a response (best first); the post-processor returns at most {DEFAULT_MAX_POSES}.")] = DEFAULT_MAX_POSES,
    max_frame_side: Annotated[int, typer.Option(help="Frames larger than this many pixels a side are refused, per request.")] = DEFAULT_MAX_FRAME_SIDE,
    model_name: Annotated[str, typer.Option(help="Model name clients ask for.")] = MODEL_NAME,
    exit_timeout: Annotated[int, typer.Option(help="Seconds Triton keeps answering in-flight requests after SIGTERM before it refuses them.")] = 5,
    triton_log: Annotated[Optional[Path], typer.Option(help="Triton's own log file [default: a fresh temporary file, printed at start].")] = None,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    thresholds: Annotated[str, typer.Option(help="Post-processing preset: 'demo' (official image demo) or 'val'.")] = "demo",
    conf_thres: Annotated[Optional[float], typer.Option(help="Person confidence threshold (overrides the preset).")] = None,
    conf_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object confidence threshold.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Dataset preset (coco, crowdpose) when the file does not say.")] = None,
    device: Annotated[str, typer.Option(help="Torch device for --weights: cpu or cuda.")] = "cpu",
    postprocess_backend: Annotated[str, typer.Option(help="Post-processor: auto, cpp or numpy.")] = "auto",
) -> None:
    """Serve the model through Triton Inference Server (dynamic batching, HTTP + gRPC, health, metrics) until SIGTERM."""
    from kapao_edge.commands.predict import make_pipeline, open_engine, postprocess_config
    from kapao_edge.serving.server import ServeConfig, Server, require_serving

    require_serving()  # before the model loads: a missing extra costs nothing
    if triton_log is not None:
        from kapao_edge.commands._common import check_writable

        check_writable(triton_log)
    config = ServeConfig(
        host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, model_name=model_name,
        max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances, max_poses=max_poses,
        max_frame_side=max_frame_side, exit_timeout_s=exit_timeout, log_file=triton_log,
    )
    config.check()
    size = long_side(parse_imgsz(imgsz) or model_imgsz(weights or engine), "serve")
    engines = []
    try:
        pipelines = []
        for _ in range(instances):
            model = open_engine(weights, engine, device=device, preset=preset, imgsz=size)
            engines.append(model)
            post = postprocess_config(thresholds, model, conf_thres=conf_thres, conf_thres_kp=conf_thres_kp)
            pipelines.append(make_pipeline(model, imgsz=size, config=post, postprocess_backend=postprocess_backend))
        server = Server(pipelines, config)
        stop = threading.Event()
        previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.start()
            url = config.http_url
            console.print(
                f"serving model '{model_name}' ({engines[0].backend} engine, {instances} instance(s), max batch "
                f"{max_batch}, queue delay {queue_delay_us} us): HTTP {url}, gRPC grpc://{config.host}:{grpc_port}, "
                f"metrics http://{config.host}:{metrics_port}/metrics; ready: {url}/v2/health/ready; Triton log: "
                f"{server.log_file}; SIGTERM or Ctrl-C stops",
                markup=False, soft_wrap=True,
            )

            def died() -> None:
                err_console.print(f"error: Triton stopped unexpectedly; its log: {server.log_file}", highlight=False)

            server.wait(stop, on_dead=died)
            alive = server.is_alive()
        finally:
            server.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    finally:
        for model in engines:
            model.close()
    if not alive:
        raise typer.Exit(code=1)
    console.print("stopped", markup=False)
