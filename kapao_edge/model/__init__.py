"""The KAPAO network, its configs, checkpoint IO and test-time augmentation."""

from kapao_edge.model.checkpoint import build_model, load_model, read_checkpoint, save_checkpoint
from kapao_edge.model.configs import get_config, list_models
from kapao_edge.model.kapao import KapaoModel
from kapao_edge.model.tta import predict_tta

__all__ = [
    "KapaoModel",
    "build_model",
    "get_config",
    "list_models",
    "load_model",
    "predict_tta",
    "read_checkpoint",
    "save_checkpoint",
]
