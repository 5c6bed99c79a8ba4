"""Accuracy: COCO keypoint AP through pycocotools, PCK, and COCO result conversion."""

from kapao_edge.eval.coco_eval import (
    COCO_KEYPOINT_METRICS,
    CROWDPOSE_METRICS,
    evaluate_keypoints,
    pck,
    results_to_coco,
)

__all__ = ["COCO_KEYPOINT_METRICS", "CROWDPOSE_METRICS", "evaluate_keypoints", "pck", "results_to_coco"]
