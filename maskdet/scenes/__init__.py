"""Scene evaluation: the whole pipeline scored on photos whose faces are boxed (Pascal VOC or YOLO).

:func:`load_scene_set` reads a folder, :func:`evaluate_scenes` runs a
:class:`maskdet.pipeline.FacePipeline` over it and returns the metrics of ``evaluate-scenes --json``.
"""

from maskdet.scenes.annotations import SceneSet, SceneSetError, load_scene_set, scene_fingerprint
from maskdet.scenes.evaluate import DEFAULT_IOU, SceneEvaluation, evaluate_scenes

__all__ = ["DEFAULT_IOU", "SceneEvaluation", "SceneSet", "SceneSetError", "evaluate_scenes", "load_scene_set",
           "scene_fingerprint"]
