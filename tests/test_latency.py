"""Compare's "CPU ms / face" times the classifier the product serves, once it is compiled, not a fresh one
(issue 18, defect 10)."""

from __future__ import annotations

from maskdet.evaluation.latency import cpu_latency_ms
from maskdet.evaluation.summary import summarize
from maskdet.inference import predictor
from maskdet.inference.predictor import AUTO_BACKEND, load_classifier
from maskdet.zoo.folders import list_model_folders


def test_latency_is_measured_through_the_served_classifier_after_its_compilation(tiny_mobilenet, monkeypatch) -> None:
    monkeypatch.setenv("MASKDET_COMPILE", "1")
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_mobilenet.parent))
    # the compiled graph serves both precisions here, so there is a compilation to wait for on every CPU
    monkeypatch.setattr(predictor, "SERVING_BACKENDS", {"fp32": ("compiled",), "bf16": ("compiled",)})
    summary = summarize(next(m for m in list_model_folders() if m["name"] == tiny_mobilenet.name))
    served = load_classifier(str(tiny_mobilenet), backend=AUTO_BACKEND)  # what ui.resources.get_classifier returns
    assert served.backend.name == "compiled" and not served.wait_for_compilation(timeout=0)  # still compiling
    calls = []  # (batch size, compiled graph ready) of each timed call
    real_run = served.backend.run
    monkeypatch.setattr(served.backend, "run", lambda inputs: calls.append((inputs.shape[0], served.compiled))
                        or real_run(inputs))
    latency = cpu_latency_ms(summary, runs=5, classifier=served)
    assert latency > 0 and len(calls) >= 5, "the served classifier was not the one timed"
    assert all(ready for _size, ready in calls), "timed before the compiled graph was ready"
    assert all(size == 1 for size, _ready in calls)  # one face at a time, as the webcam sends them
