"""Where and how tensors run: device choice, CPU threads, reduced precision."""

from __future__ import annotations

import contextlib
import functools
import logging
import os

import torch

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
    """Use every core for intra-op parallelism (torch defaults can be lower inside containers)."""
    count = threads or int(os.environ.get("MASKDET_THREADS", 0)) or os.cpu_count() or 1
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
