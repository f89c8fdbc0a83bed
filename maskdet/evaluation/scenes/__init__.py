"""Scene evaluation: the whole pipeline scored on photos whose faces are boxed (Pascal VOC or YOLO).

:func:`maskdet.data.annotations.load_scene_set` reads a folder, :func:`evaluate_scenes` runs a
:class:`maskdet.inference.pipeline.FacePipeline` over it and returns the metrics of ``evaluate-scenes --json``.
"""

from maskdet.evaluation.scenes.evaluate import DEFAULT_IOU, SceneEvaluation, evaluate_scenes

__all__ = ["DEFAULT_IOU", "SceneEvaluation", "evaluate_scenes"]
