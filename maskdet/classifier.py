"""A trained classifier ready for fast inference: folded, reduced-precision and compiled where faithful."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from maskdet.checkpoint import LoadedModel, load_model, operating_threshold, resolve_model
from maskdet.runtime import compile_enabled, compile_network, configure_threads, cpu_has_fast_bf16, fold_batchnorm
from maskdet.settings import CLASSES

logger = logging.getLogger(__name__)

BF16_MAX_PROB_DIFF = 0.05  # bf16 is used only when it changes no probability by more than this (and no label)
COMPILED_MAX_PROB_DIFF = 1e-3  # the compiled graph runs the same arithmetic; more than this means a backend bug


def inference_network(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A private copy of ``model`` for prediction only: BatchNorm folded into the convolutions,
    channels-last layout and weights stored in ``dtype``, so nothing is converted per call."""
    network = fold_batchnorm(copy.deepcopy(model).eval())
    for param in network.parameters():
        param.requires_grad_(False)
    return network.to(dtype=dtype, memory_format=torch.channels_last)


class Classifier:
    """A loaded model plus the fastest numerically faithful way to run it on this machine.

    Thread-safe: the model is never mutated after construction and inference runs under
    ``torch.inference_mode``; several sessions may share one instance.

    ``compile=True`` (the dashboard: long-lived, one face per webcam frame) also compiles the
    network for single images in a background thread; until that is done, and for batches of
    several faces, the eager network answers. The compiled graph is used only if it agrees with
    the eager one, and only in threads running torch's thread count it was compiled for: Inductor's
    kernels are guarded on that count, and running it at another would recompile (seconds, inside a
    webcam callback or a page run, and without the frozen weights; ``benchmarks/bench_stalls.py``).
    """

    def __init__(self, loaded: LoadedModel, precision: str = "auto", compile: bool = False) -> None:
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")
        configure_threads()
        self.loaded = loaded
        self.input = loaded.input
        self.threshold = operating_threshold(loaded.metadata)  # p(with_mask) from which a face is with_mask
        self.model = loaded.model.eval()  # the trained fp32 network as saved; explanations copy it
        self._networks = {torch.float32: inference_network(self.model, torch.float32)}
        self.use_bf16 = False
        if precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16()):
            self._networks[torch.bfloat16] = inference_network(self.model, torch.bfloat16)
            self.use_bf16 = self._bf16_matches_fp32() or precision == "bf16"
        # NOTE: written once by the compile thread (thread count first), then only read; a dict lookup is atomic.
        self._single_image: dict[torch.dtype, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.compiled_threads: int | None = None  # torch's thread count the compiled graph is guarded on
        self._compile_done = threading.Event()
        if compile and compile_enabled():
            threading.Thread(target=self._compile_single_image, name=f"compile-{loaded.name}", daemon=True).start()
        else:
            self._compile_done.set()
        logger.info("classifier %s ready (%s, %dpx)", loaded.name, self.precision, self.input.size)

    @property
    def compiled(self) -> bool:
        """True once single images run through the compiled graph."""
        return bool(self._single_image)

    def wait_for_compilation(self, timeout: float | None = None) -> bool:
        """Block until background compilation has finished (or was never started); True if it finished."""
        return self._compile_done.wait(timeout)

    def _compile_single_image(self) -> None:
        try:
            dtype = torch.bfloat16 if self.use_bf16 else torch.float32
            with torch.inference_mode():  # the example must be the kind of tensor run() passes (guards)
                probe = self._probe_batch()[:2].to(dtype=dtype, memory_format=torch.channels_last)
            self.compiled_threads = torch.get_num_threads()
            compiled = compile_network(self._networks[dtype], probe[:1])
            if compiled is None:
                return
            with torch.inference_mode():
                eager = [torch.softmax(self._networks[dtype](x).float(), 1) for x in probe.split(1)]
                fast = [torch.softmax(compiled(x).float(), 1) for x in probe.split(1)]
            diff = max(float((a - b).abs().max()) for a, b in zip(eager, fast, strict=True))
            if diff > COMPILED_MAX_PROB_DIFF:
                logger.warning("compiled %s disagrees with eager (%.4f); staying eager", self.name, diff)
                return
            self._single_image[dtype] = compiled
            logger.info("classifier %s compiled for single images", self.name)
        finally:
            self._compile_done.set()

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def precision(self) -> str:
        return "bf16" if self.use_bf16 else "fp32"

    def _probe_batch(self) -> torch.Tensor:
        """Smooth, image-like random inputs (a fixed seed) used to compare precisions."""
        generator = torch.Generator().manual_seed(0)
        coarse = torch.rand(16, self.input.channels, 8, 8, generator=generator) * 255
        images = torch.nn.functional.interpolate(coarse, size=(self.input.size,) * 2, mode="bilinear")
        return self.input.normalize(images.to(torch.uint8))

    def _bf16_matches_fp32(self) -> bool:
        batch = self._probe_batch()
        reference = self.run(batch, bf16=False)
        reduced = self.run(batch, bf16=True)
        diff = float(np.abs(reference - reduced).max())
        agree = bool((reference.argmax(1) == reduced.argmax(1)).all())
        logger.debug("bf16 vs fp32: max prob diff %.4f, argmax agree %s", diff, agree)
        return agree and diff <= BF16_MAX_PROB_DIFF

    @torch.inference_mode()
    def run(self, inputs: torch.Tensor, bf16: bool | None = None) -> np.ndarray:
        """Class probabilities (N, 2) for normalised inputs."""
        dtype = torch.bfloat16 if (self.use_bf16 if bf16 is None else bf16) else torch.float32
        inputs = inputs.to(dtype=dtype, memory_format=torch.channels_last)
        # The compiled graph is guarded on exactly this kind of input and thread count; others would recompile it.
        single = (inputs.shape == (1, self.input.channels, self.input.size, self.input.size) and inputs.is_inference()
                  and torch.get_num_threads() == self.compiled_threads)
        network = self._single_image.get(dtype) if single else None
        if network is None:
            network = self._networks.get(dtype)
        if network is None:  # bf16 asked for explicitly on a CPU where it was not prepared
            network = self._networks.setdefault(dtype, inference_network(self.model, dtype))
        logits = network(inputs)
        return torch.softmax(logits.float(), dim=1).numpy()

    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        """Probabilities (N, 2) for RGB images (face crops)."""
        if not images:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        return self.run(self.input.to_tensor(images))


def load_classifier(name_or_path: str | None = None, precision: str = "auto", compile: bool = False) -> Classifier:
    """The named model (a folder name in ``models/`` or a path), or the default model."""
    return Classifier(load_model(resolve_model(name_or_path)), precision=precision, compile=compile)
