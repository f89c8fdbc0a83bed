"""The product's inference path (folded BatchNorm, channels-last, bf16 where faithful) agrees with the
trained network and never touches it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskdet.zoo.folders import load_model
from maskdet.inference.predictor import AUTO_BACKEND, BACKENDS, SERVING_BACKENDS, Predictor
from maskdet.data.images import load_rgb
from maskdet.runtime import configure_threads, cpu_has_fast_bf16, inference_network
from maskdet.zoo.architectures import BuildOptions, get_spec


@pytest.fixture(scope="module")
def face_batch(tiny_mobilenet, held_out_faces) -> tuple[Predictor, torch.Tensor]:
    classifier = Predictor(load_model(tiny_mobilenet), precision="auto")
    paths = held_out_faces["with_mask"][:12] + held_out_faces["without_mask"][:12]
    return classifier, classifier.input.to_tensor([load_rgb(p) for p in paths])


def test_fp32_inference_matches_the_trained_network(face_batch) -> None:
    classifier, inputs = face_batch
    with torch.inference_mode():
        expected = torch.softmax(classifier.model(inputs), 1).numpy()
    np.testing.assert_allclose(classifier.run(inputs, bf16=False), expected, atol=1e-4)


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16; the product runs fp32 here")
def test_bf16_is_chosen_only_when_it_keeps_every_label_on_real_faces(face_batch) -> None:
    classifier, inputs = face_batch
    reference, reduced = classifier.run(inputs, bf16=False), classifier.run(inputs, bf16=True)
    assert classifier.precision == "bf16"
    assert (reference.argmax(1) == reduced.argmax(1)).all()
    assert np.abs(reference - reduced).max() < 0.05


def test_the_loaded_model_keeps_its_batchnorm_and_weights(tiny_mobilenet, face_batch) -> None:
    classifier, _ = face_batch
    saved = load_model(tiny_mobilenet).model.state_dict()
    assert any(isinstance(m, nn.BatchNorm2d) for m in classifier.model.modules())
    for key, value in classifier.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_compiled_single_image_path_agrees_with_eager(tiny_mobilenet, face_batch, monkeypatch) -> None:
    """The dashboard's classifier compiles itself for single faces; answers stay those of the eager network."""
    monkeypatch.setenv("MASKDET_COMPILE", "1")
    _, inputs = face_batch
    classifier = Predictor(load_model(tiny_mobilenet), compile=True)
    eager_single = classifier.run(inputs[:1])  # answered by the eager network while compiling
    assert classifier.wait_for_compilation(timeout=600)
    assert classifier.compiled
    np.testing.assert_allclose(classifier.run(inputs[:1]), eager_single, atol=1e-3)
    tolerance = 0.05 if classifier.precision == "bf16" else 1e-3
    np.testing.assert_allclose(eager_single, trained_network_answers(classifier, inputs[:1]), atol=tolerance)
    batched = classifier.run(inputs)  # several faces: the eager network, batched
    singles = np.concatenate([classifier.run(x) for x in inputs.split(1)])
    np.testing.assert_allclose(singles, batched, atol=0.05)
    assert (singles.argmax(1) == batched.argmax(1)).all()


def test_a_compiled_classifier_never_recompiles_at_another_thread_count(tiny_mobilenet, face_batch,
                                                                          monkeypatch) -> None:
    """The compiled graph is guarded on torch's thread count: a caller at another count (a webcam worker, a page run)
    gets the eager network's answer at once, never a recompile (seconds, and without frozen weights)."""
    import torch._dynamo.utils

    monkeypatch.setenv("MASKDET_COMPILE", "1")
    _, inputs = face_batch
    classifier = Predictor(load_model(tiny_mobilenet), compile=True)
    assert classifier.wait_for_compilation(timeout=600) and classifier.compiled
    compiled_answer = classifier.run(inputs[:1])
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    previous = torch.get_num_threads()
    torch.set_num_threads(classifier.compiled_threads % 2 + 1)  # 1 -> 2, 2 -> 1: another count
    try:
        other_answer = classifier.run(inputs[:1])
    finally:
        torch.set_num_threads(previous)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs, "recompiled at another thread count"
    np.testing.assert_allclose(other_answer, compiled_answer, atol=1e-3)


def test_the_serving_backend_is_onnxruntime_for_fp32_and_answers_as_pytorch(tiny_mobilenet, face_batch,
                                                                              tmp_path, monkeypatch) -> None:
    """``backend="auto"`` (the dashboard's): onnxruntime for an fp32 model, exported once per weights."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path))
    _, inputs = face_batch
    served = Predictor(load_model(tiny_mobilenet), precision="fp32", backend=AUTO_BACKEND)
    assert served.backend.name == "onnxruntime" and served.precision == "fp32"
    assert len(list((tmp_path / "onnx").glob("*/metadata.json"))) == 1  # the export it runs, in the cache
    with torch.inference_mode():
        expected = torch.softmax(served.model(inputs), 1).numpy()
    np.testing.assert_allclose(served.run(inputs), expected, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([served.run(x) for x in inputs.split(1)]), expected, atol=1e-4)
    assert torch.get_num_threads() == configure_threads()  # loading it changed no thread count


def trained_network_answers(served: Predictor, inputs: torch.Tensor) -> np.ndarray:
    """The trained fp32 network's probabilities: a reference no backend computes (a backend compared with
    itself would pass whatever it returned)."""
    with torch.inference_mode():
        return torch.softmax(served.model(inputs), 1).numpy()


def test_the_serving_backend_falls_back_to_the_compiled_graph(tiny_mobilenet, face_batch, monkeypatch) -> None:
    """Without onnxruntime, an fp32 model is served by the compiled graph, and it answers as the trained network
    for single faces (the compiled graph, once compiled) and batches (the eager network)."""
    def unavailable(loaded, dtype):  # noqa: ANN001, ANN202 - as a missing onnxruntime or a refused export fails
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setenv("MASKDET_COMPILE", "1")
    monkeypatch.setitem(BACKENDS, "onnxruntime", unavailable)
    _, inputs = face_batch
    served = Predictor(load_model(tiny_mobilenet), precision="fp32", backend=AUTO_BACKEND)
    assert served.backend.name == "compiled"
    assert served.wait_for_compilation(timeout=600) and served.compiled
    expected = trained_network_answers(served, inputs)
    np.testing.assert_allclose(served.run(inputs), expected, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([served.run(x) for x in inputs.split(1)]), expected, atol=1e-3)
    assert len(np.unique(expected.argmax(1))) == 2  # real faces of both classes: constants cannot pass


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16; the product runs fp32 here")
def test_a_bf16_model_is_served_by_the_compiled_backend_and_keeps_the_trained_labels(tiny_mobilenet, face_batch,
                                                                                    monkeypatch) -> None:
    """The choice of backend (compilation itself: test_compiled_single_image_path_agrees_with_eager)."""
    monkeypatch.setenv("MASKDET_COMPILE", "0")
    _, inputs = face_batch
    served = Predictor(load_model(tiny_mobilenet), precision="bf16", backend=AUTO_BACKEND)
    assert served.precision == "bf16" and served.backend.name == SERVING_BACKENDS["bf16"][0] == "compiled"
    expected = trained_network_answers(served, inputs)
    answers = served.run(inputs)
    assert (answers.argmax(1) == expected.argmax(1)).all() and np.abs(answers - expected).max() < 0.05


@pytest.mark.parametrize("channels", [3, 1])
def test_preprocessing_is_the_training_normalisation_bit_for_bit(held_out_faces, channels) -> None:
    """Serving normalises crops in NumPy (no wait on torch's thread pool); the numbers are training's exactly."""
    from maskdet.zoo.architectures import InputConfig

    config = InputConfig(size=96, channels=channels, mean=(0.485, 0.456, 0.406)[:channels],
                         std=(0.229, 0.224, 0.225)[:channels])
    images = [load_rgb(path) for path in held_out_faces["without_mask"][:3]]
    served = config.to_tensor(images)
    trained = config.normalize(torch.from_numpy(np.stack([config.to_uint8(image) for image in images])).permute(0, 3, 1, 2))
    assert served.is_contiguous() and served.dtype == torch.float32 and torch.equal(served, trained)


def test_folding_keeps_a_normalisation_that_also_activates(held_out_faces) -> None:
    """timm's BatchNormAct2d (EfficientNet-Lite0's stem and head) normalises and then applies ReLU6: folded into
    the convolution before it, the activation would be lost. Only plain BatchNorm2d is folded (MobileNetV2's)."""
    faces = [load_rgb(p) for p in held_out_faces["with_mask"][:4]]
    for arch, plain_norms_left in (("efficientnet_lite0", None), ("mobilenet_v2", 0)):
        spec = get_spec(arch)
        network = spec.build(BuildOptions(pretrained=True)).eval()
        inputs = spec.input_config(96).to_tensor(faces)
        folded = inference_network(network, torch.float32)
        with torch.inference_mode():
            np.testing.assert_allclose(folded(inputs).numpy(), network(inputs).numpy(), atol=1e-4)
        if plain_norms_left is not None:
            assert sum(type(m) is nn.BatchNorm2d for m in folded.modules()) == plain_norms_left
