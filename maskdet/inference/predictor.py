"""The Predictor: one trained model served on this machine, through one backend, at one precision.

A :class:`Predictor` owns everything between a face crop and its class probabilities:

- **preprocessing**: the model's :class:`~maskdet.zoo.architectures.InputConfig` (resize, normalise), for PIL crops
  and for stored uint8 crops alike;
- **precision**: fp32, or bf16 where the CPU runs it natively *and* a probe on the model's stored real
  validation crops (``probe.safetensors``, written at save time) shows it changes no label and no
  probability by more than :data:`maskdet.zoo.probe.BF16_MAX_PROB_DIFF`. A model without stored crops is
  served in fp32 (noise would say nothing about real faces). :func:`maskdet.zoo.probe.check_precision` is
  the one probe; training writes its result into the model card (``metadata["serving"]``);
- **compilation** and **threads**: the backend. Backends live in a small registry (:data:`BACKENDS`):
  ``eager`` (folded BatchNorm, channels-last PyTorch), ``compiled`` (TorchInductor for single images,
  eager for batches) and ``onnxruntime``, registered by :mod:`maskdet.export` when it is imported. A
  backend implements :class:`Backend`: ``run(inputs) -> probabilities``. No backend ever calls
  ``torch.set_num_threads``: the thread count is the process's, set once at start-up
  (:func:`maskdet.runtime.configure_threads`), and long-lived callers that need their own (the webcam)
  use one worker thread (:func:`maskdet.runtime.inference_worker`).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from maskdet.zoo.folders import LoadedModel, load_model, operating_threshold, resolve_model
from maskdet.zoo.probe import PrecisionCheck, check_precision, load_probe, normalize_crops
from maskdet.runtime import compile_enabled, compile_network, configure_threads, inference_network

logger = logging.getLogger(__name__)

COMPILED_MAX_PROB_DIFF = {torch.float32: 1e-3, torch.bfloat16: 1e-2}
"""The compiled graph runs the same arithmetic (fused, so bf16 rounds at other places); more is a backend bug."""


# --- backends ------------------------------------------------------------------------------------------


class Backend(Protocol):
    """How a Predictor runs its network.

    ``run`` takes normalised model inputs, a float32 ``torch.Tensor`` shaped (N, C, size, size) (a backend
    outside PyTorch calls ``inputs.numpy()``), and returns class probabilities as a float32 ``np.ndarray``
    (N, C), in the order of the model's classes (:attr:`Predictor.classes`, its card's list). It must be safe to call from several threads
    and must not change torch's thread count.
    """

    name: str

    def run(self, inputs: torch.Tensor) -> np.ndarray: ...


BackendFactory = Callable[[LoadedModel, torch.dtype], Backend]
"""``factory(loaded, dtype)``: a backend for ``loaded`` computing in ``dtype`` (fp32 or bf16). A backend
that cannot compute in bf16 raises ``ValueError`` for it; the Predictor then serves fp32."""


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), dim=1).numpy()


class EagerBackend:
    """Plain PyTorch on a folded, channels-last copy of the network in ``dtype``."""

    name = "eager"

    def __init__(self, loaded: LoadedModel, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.network = inference_network(loaded.model, dtype)

    @torch.inference_mode()
    def run(self, inputs: torch.Tensor) -> np.ndarray:
        return _probabilities(self.network(inputs.to(dtype=self.dtype, memory_format=torch.channels_last)))


class CompiledBackend(EagerBackend):
    """:class:`EagerBackend` plus a TorchInductor graph for single images, compiled in a background thread.

    Until compilation is done, and for batches of several faces, the eager network answers. The graph is
    used only if it agrees with the eager one, and only in threads running the torch thread count it was
    compiled for: Inductor's kernels are guarded on that count, and running it at another would recompile
    (seconds, inside a webcam frame or a page run, and without the frozen weights;
    ``benchmarks/bench_stalls.py``). ``MASKDET_COMPILE=0`` leaves it eager.
    """

    name = "compiled"

    def __init__(self, loaded: LoadedModel, dtype: torch.dtype) -> None:
        super().__init__(loaded, dtype)
        self.input = loaded.input
        self.model_name = loaded.name
        self.path = loaded.path
        # NOTE: written once by the compile thread (thread count first), then only read.
        self.single_image: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.compiled_threads: int | None = None  # torch's thread count the compiled graph is guarded on
        self.done = threading.Event()
        if compile_enabled():
            threading.Thread(target=self._compile, name=f"compile-{loaded.name}", daemon=True).start()
        else:
            self.done.set()

    def _compile(self) -> None:
        try:
            with torch.inference_mode():  # the example must be the kind of tensor run() passes (guards)
                example = self._examples().to(dtype=self.dtype, memory_format=torch.channels_last)
            self.compiled_threads = torch.get_num_threads()
            compiled = compile_network(self.network, example[:1])
            if compiled is None:
                return
            with torch.inference_mode():
                eager = [_probabilities(self.network(x)) for x in example.split(1)]
                fast = [_probabilities(compiled(x)) for x in example.split(1)]
            diff = max(float(np.abs(a - b).max()) for a, b in zip(eager, fast, strict=True))
            if diff > COMPILED_MAX_PROB_DIFF[self.dtype]:
                logger.warning("compiled %s disagrees with eager (%.4f); staying eager", self.model_name, diff)
                return
            self.single_image = compiled
            logger.info("classifier %s compiled for single images", self.model_name)
        finally:
            self.done.set()

    def _examples(self) -> torch.Tensor:
        """Real faces to check the graph on: the model's stored probe crops, else smooth random images."""
        crops = load_probe(self.path, self.input)
        if crops is not None:
            return normalize_crops(self.input, crops[:8])
        generator = torch.Generator().manual_seed(0)
        coarse = torch.rand(8, self.input.channels, 8, 8, generator=generator) * 255
        images = torch.nn.functional.interpolate(coarse, size=(self.input.size,) * 2, mode="bilinear")
        return self.input.normalize(images.to(torch.uint8))

    @torch.inference_mode()
    def run(self, inputs: torch.Tensor) -> np.ndarray:
        inputs = inputs.to(dtype=self.dtype, memory_format=torch.channels_last)
        # The compiled graph is guarded on exactly this kind of input and thread count; others would recompile it.
        single = (self.single_image is not None and inputs.is_inference()
                  and inputs.shape == (1, self.input.channels, self.input.size, self.input.size)
                  and torch.get_num_threads() == self.compiled_threads)
        return _probabilities((self.single_image if single else self.network)(inputs))


BACKENDS: dict[str, BackendFactory] = {"eager": EagerBackend, "compiled": CompiledBackend}
"""Backend name -> factory. :func:`register_backend` adds more (``maskdet.export`` adds ``onnxruntime``)."""
_BACKEND_PROVIDERS = {"onnxruntime": "maskdet.export"}
"""Backends registered by a module on import: asking for the name imports the module once."""


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``Predictor(..., backend=name)`` build its backend with ``factory(loaded, dtype)``."""
    BACKENDS[name] = factory


def backend_factory(name: str) -> BackendFactory:
    """The factory registered as ``name`` (importing its provider module if needed); ValueError if unknown."""
    if name not in BACKENDS and name in _BACKEND_PROVIDERS:
        try:
            importlib.import_module(_BACKEND_PROVIDERS[name])
        except ImportError as exc:
            raise ValueError(f"backend {name!r} is not available here ({exc})") from exc
    try:
        return BACKENDS[name]
    except KeyError:
        known = sorted(set(BACKENDS) | set(_BACKEND_PROVIDERS))
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(known)}") from None


AUTO_BACKEND = "auto"
SERVING_BACKENDS = {"fp32": ("onnxruntime", "compiled"), "bf16": ("compiled",)}
"""``backend="auto"`` (what the long-lived dashboard and ``bench`` run), by serving precision: the first that
loads. For the default model on this machine (``benchmarks/bench_backends.py``, fp32) onnxruntime takes 3.3 ms
for one face against 7.4 compiled and 5.3 eager, and 1.6 against 3.1 ms per face in batches of 32, with the
same probabilities; it has no bf16 kernels here, so a model whose probe accepts bf16 runs the compiled graph."""


def _build_backend(factory: BackendFactory, loaded: LoadedModel, wanted: str) -> tuple[Backend, bool]:
    """(backend, computes in bf16) for precision ``wanted``; fp32 when the backend has no bf16."""
    try:
        return factory(loaded, torch.bfloat16 if wanted == "bf16" else torch.float32), wanted == "bf16"
    except ValueError as exc:  # a backend without bf16
        if wanted != "bf16":
            raise
        logger.info("%s: %s; serving fp32", loaded.name, exc)
        return factory(loaded, torch.float32), False


def _serving_backend(loaded: LoadedModel, wanted: str) -> tuple[Backend, bool]:
    """The first of :data:`SERVING_BACKENDS` that loads ``loaded``; the compiled graph when none of the others does."""
    *preferred, last = SERVING_BACKENDS[wanted]
    for name in preferred:
        try:
            return _build_backend(backend_factory(name), loaded, wanted)
        except (ValueError, ImportError, OSError, RuntimeError) as exc:  # not installed, export refused, no disk
            logger.warning("%s: the %s backend is not available (%s); trying %s", loaded.name, name, exc, last)
    return _build_backend(backend_factory(last), loaded, wanted)


# --- the predictor -------------------------------------------------------------------------------------


class Predictor:
    """A loaded model plus the fastest numerically faithful way to run it on this machine.

    Thread-safe: the model is never mutated after construction and backends run under
    ``torch.inference_mode``; several sessions may share one instance.

    ``precision``: ``auto`` (bf16 only where :func:`check_precision` accepts it), ``fp32`` or ``bf16``
    (forced). ``backend``: a name in :data:`BACKENDS`, or ``"auto"``: the fastest faithful one for the
    serving precision (:data:`SERVING_BACKENDS`; the dashboard, long-lived). ``compile=True`` is
    ``backend="compiled"``.
    """

    def __init__(self, loaded: LoadedModel, precision: str = "auto", compile: bool = False,
                 backend: str | None = None) -> None:
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")
        configure_threads()  # once per process: a no-op after the first call
        self.loaded = loaded
        self.input = loaded.input
        self.threshold = operating_threshold(loaded.metadata)  # p(with_mask) from which a face is with_mask
        self.classes = loaded.classes  # the order of predict_proba's columns
        self.model = loaded.model.eval()  # the trained fp32 network as saved; explanations copy it
        self.precision_check: PrecisionCheck | None = None  # what the probe measured (precision="auto" only)
        if precision == "auto":
            self.precision_check = check_precision(loaded.model, loaded.input, load_probe(loaded.path, loaded.input))
        wanted = precision if self.precision_check is None else self.precision_check.precision
        if backend == AUTO_BACKEND:
            self.backend, self.use_bf16 = _serving_backend(loaded, wanted)
        else:
            self.backend, self.use_bf16 = _build_backend(backend_factory(backend or ("compiled" if compile else "eager")),
                                                         loaded, wanted)
        self._reference: dict[bool, Backend] = {self.use_bf16: self.backend}  # eager twins for run(bf16=...)
        logger.info("classifier %s ready (%s, %s, %dpx)", loaded.name, self.backend.name, self.precision,
                    self.input.size)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def precision(self) -> str:
        return "bf16" if self.use_bf16 else "fp32"

    @property
    def compiled(self) -> bool:
        """True once single images run through a compiled graph."""
        return getattr(self.backend, "single_image", None) is not None

    @property
    def compiled_threads(self) -> int | None:
        """Torch's thread count the compiled graph is guarded on (None: not compiled)."""
        return getattr(self.backend, "compiled_threads", None)

    def wait_for_compilation(self, timeout: float | None = None) -> bool:
        """Block until background compilation has finished (or was never started); True if it finished."""
        done = getattr(self.backend, "done", None)
        return True if done is None else done.wait(timeout)

    def run(self, inputs: torch.Tensor, bf16: bool | None = None) -> np.ndarray:
        """Class probabilities (N, 2) for normalised inputs; ``bf16`` forces a precision (eager, for checks)."""
        if bf16 is None or bf16 == self.use_bf16:
            return self.backend.run(inputs)
        twin = self._reference.get(bf16)
        if twin is None:
            twin = self._reference.setdefault(bf16, EagerBackend(self.loaded, torch.bfloat16 if bf16 else torch.float32))
        return twin.run(inputs)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """RGB face crops -> the model's normalised input (N, C, size, size)."""
        return self.input.to_tensor(images)

    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        """Probabilities (N, 2) for RGB images (face crops)."""
        if not images:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self.run(self.preprocess(images))



def load_classifier(name_or_path: str | None = None, precision: str = "auto", compile: bool = False,
                    backend: str | None = None) -> Predictor:
    """The named model (a folder name in ``models/`` or a path), or the default model."""
    return Predictor(load_model(resolve_model(name_or_path)), precision=precision, compile=compile, backend=backend)
