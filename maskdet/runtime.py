"""Where and how tensors run: device choice, CPU threads, reduced precision."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from maskdet.settings import current_settings

logger = logging.getLogger(__name__)


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA, then Apple MPS, then the CPU."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def configure_threads(threads: int | None = None) -> int:
    """Use ``threads`` torch threads, else the ``threads`` setting, else every core (torch defaults can be lower
    inside containers)."""
    count = threads or current_settings().threads or os.cpu_count() or 1
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU runs bfloat16 natively (AVX-512 BF16 / AMX); elsewhere bf16 is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPUs that support it, fp16 on CUDA, nothing elsewhere."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def inference_network(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A private copy of ``model`` for prediction only: BatchNorm folded into the convolutions,
    channels-last layout and weights stored in ``dtype``, so nothing is converted per call."""
    network = fold_batchnorm(copy.deepcopy(model).eval())
    for param in network.parameters():
        param.requires_grad_(False)
    return network.to(dtype=dtype, memory_format=torch.channels_last)


@functools.cache
def inference_worker() -> ThreadPoolExecutor:
    """The process's one long-lived inference thread for streams (the webcam): submitted work runs there,
    one call at a time, at the process's torch thread count, set once when the thread starts.

    Why one thread: ``torch.set_num_threads`` is process-wide in effect (it also sets the count that
    threads created later start with), so changing it around each frame gave pages, explanations and the
    compile thread a random count for life (issue 18, defect 2). Why serial: on 2 shared cores two streams
    computing at once only slow each other down (``benchmarks/bench_live.py``).
    """
    count = configure_threads()
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskdet-inference",
                              initializer=configure_threads, initargs=(count,))


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold each eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in a ``Sequential`` into it, in place.

    Only a plain ``BatchNorm2d``: a subclass may do more than normalise (timm's ``BatchNormAct2d`` also applies
    the activation), and folding it would drop that."""
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, nn.Conv2d) and type(norm) is nn.BatchNorm2d and not norm.training:
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()
    return module


def compile_enabled() -> bool:
    """The ``compile`` setting: ``MASKDET_COMPILE=0`` turns compiled inference off (on where it is asked for)."""
    return current_settings().compile


def compile_network(network: nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``network`` compiled by TorchInductor for inputs shaped exactly like ``example``, with its weights
    frozen into the graph (convolutions pre-packed, no Python per layer); None where compilation is
    unavailable here (no C++ compiler, unsupported platform), so callers keep the eager network.

    Compiling takes ~11 s on 2 cores with a cold Inductor cache, ~5 s warm (``benchmarks/bench_stalls.py``).
    """
    try:
        import torch._inductor.config as inductor_config

        compiled = torch.compile(network, dynamic=False)
        # Freezing is read while the first call compiles (passing it in torch.compile's options does not
        # pre-pack the convolutions); nothing else in maskdet compiles, so patching it here is contained.
        with inductor_config.patch(freezing=True), torch.inference_mode():
            compiled(example)
        return compiled
    except Exception as exc:  # noqa: BLE001 - any backend failure leaves the eager network in charge
        logger.warning("compiled inference unavailable, staying with eager PyTorch: %s", exc)
        return None
