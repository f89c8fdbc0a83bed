"""Compare's "CPU ms / face" times the classifier the product serves, not a fresh one (issue 18, defect 10)."""

from __future__ import annotations

from maskdet.zoo.folders import list_model_folders
from maskdet.inference.predictor import AUTO_BACKEND, SERVING_BACKENDS, load_classifier
from maskdet.evaluation.latency import cpu_latency_ms
from maskdet.evaluation.summary import summarize


def test_latency_is_measured_through_the_served_classifier(tiny_mobilenet, monkeypatch) -> None:
    monkeypatch.setenv("MASKDET_COMPILE", "1")
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_mobilenet.parent))
    summary = summarize(next(m for m in list_model_folders() if m["name"] == tiny_mobilenet.name))
    served = load_classifier(str(tiny_mobilenet), backend=AUTO_BACKEND)  # what ui.resources.get_classifier returns
    calls = []
    real_run = served.backend.run
    monkeypatch.setattr(served.backend, "run", lambda inputs: calls.append(inputs.shape) or real_run(inputs))
    latency = cpu_latency_ms(summary, runs=5, classifier=served)
    assert latency > 0 and len(calls) >= 5, "the served classifier was not the one timed"
    assert served.backend.name == SERVING_BACKENDS[served.precision][0]
    assert served.wait_for_compilation(timeout=0), "timed before the compiled graph was ready"
    assert all(shape[0] == 1 for shape in calls)  # one face at a time, as the webcam sends them
