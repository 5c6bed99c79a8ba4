"""Triton Python-backend model: engine predictions -> poses, with kapao-edge's C++ post-processor.

Copied as ``model.py`` into the ``kapao_postprocess`` model of a repository written by
``kapao-edge export --triton-repo``; it runs inside Triton (``triton_python_backend_utils``), with
kapao-edge installed in the Python the backend uses. Each request is answered on its own, so a bad
request fails alone.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend

from kapao_edge.postprocess import PostprocessConfig, postprocess


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.config = PostprocessConfig(**json.loads(parameters["postprocess"]))
        self.max_poses = int(parameters["max_poses"])
        self.backend = parameters.get("backend", "cpp")

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._answer(request)))
            except Exception as exc:  # noqa: BLE001 - this request's error; the others are served
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses

    def _answer(self, request):
        predictions = pb_utils.get_input_tensor_by_name(request, "predictions").as_numpy()  # (B, N, No)
        images = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()  # (B, H, W, 3) letterboxed
        original_hw = pb_utils.get_input_tensor_by_name(request, "original_hw").as_numpy()  # (B, 2)
        poses_list = postprocess(predictions, tuple(images.shape[1:3]), [tuple(int(v) for v in hw) for hw in original_hw],
                                 self.config, backend=self.backend)
        batch, rows = len(poses_list), self.max_poses
        num_keypoints = (predictions.shape[2] - 6) // 3  # No = 5 + (1 + K) + 2K
        keypoints = np.zeros((batch, rows, num_keypoints, 3), np.float32)  # (B, M, K, 3)
        boxes = np.zeros((batch, rows, 4), np.float32)  # (B, M, 4)
        scores = np.zeros((batch, rows), np.float32)  # (B, M)
        count = np.zeros((batch, 1), np.int32)  # (B, 1)
        for index, poses in enumerate(poses_list):
            used = min(len(poses), rows)
            keypoints[index, :used] = poses.keypoints[:used]
            boxes[index, :used] = poses.boxes[:used]
            scores[index, :used] = poses.scores[:used]
            count[index, 0] = used
        return [pb_utils.Tensor("keypoints", keypoints), pb_utils.Tensor("boxes", boxes),
                pb_utils.Tensor("scores", scores), pb_utils.Tensor("count", count)]
