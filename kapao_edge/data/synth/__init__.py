"""Procedural multi-person pose scenes with COCO-format annotations.

No trained weights or COCO images ship with the project, yet training, INT8 calibration and AP checks
need images whose poses are known. These scenes are real multi-person pose problems (occlusion, scale,
figures cut by the frame, front/back/profile views) kept simple enough for a small network to learn.
Videos of the same people walking, with per-frame ids, let tracking be measured too.
"""

from kapao_edge.data.synth.body import Build, LimbAngles, Pose
from kapao_edge.data.synth.dataset import ANNOTATIONS_NAME, IMAGES_DIR, generate_dataset
from kapao_edge.data.synth.figure import Appearance, Figure, FigureStyle, sample_figure
from kapao_edge.data.synth.background import BackgroundStyle
from kapao_edge.data.synth.render import Occluder, Scene, render_scene
from kapao_edge.data.synth.scene import SceneStyle, generate_scene
from kapao_edge.data.synth.video import VideoFrame, VideoStyle, generate_video, load_tracks, write_video

__all__ = [
    "ANNOTATIONS_NAME", "IMAGES_DIR", "Appearance", "BackgroundStyle", "Build", "Figure", "FigureStyle",
    "LimbAngles", "Occluder", "Pose", "Scene", "SceneStyle", "generate_dataset", "generate_scene",
    "render_scene", "sample_figure", "VideoFrame", "VideoStyle", "generate_video", "load_tracks", "write_video",
]
