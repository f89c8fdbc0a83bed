"""The one schema of a model folder's ``metadata.json``, checked before anything uses it.

A model folder may come from anyone (a download, a colleague, a shared drive), so its
metadata is hostile until it passes :func:`parse_model_card`:

1. the raw bytes are bounded (``MAX_METADATA_BYTES``) and their bracket nesting is measured
   (``MAX_NESTING``) *before* any JSON parser sees them;
2. the parsed object is validated by the pydantic model :class:`ModelCard`: strict types,
   required keys, ranges (an input side the architecture supports, 1 or 3 channels, one
   mean and one positive std per channel, our class names, a SHA-256 and size for the weights).

Only the keys the code relies on are strict. Every other key (metrics, history, data-set and
serving records that other parts of maskdet add) passes through untouched, so new fields never
make older readers refuse a model; displays of those fields cope with odd values themselves.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from maskdet.settings import KNOWN_CLASSES, class_list
from maskdet.zoo.architectures import get_spec, list_architectures

FORMAT = "maskdet-checkpoint"
FORMAT_VERSION = 1
MAX_METADATA_BYTES = 8 * 1024**2
"""Real metadata is tens of kB (most of it the test split's scores); 8 MB leaves room for huge test splits."""
MAX_NESTING = 32
"""Deepest bracket nesting accepted; real metadata reaches 5 (metrics -> val -> per_class -> class -> value)."""
MAX_WEIGHTS_BYTES = 2 * 1024**3
"""Largest weights file accepted: the biggest zoo network at its largest input (mlp at 512 px) is about 1.1 GB."""

_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENING, _CLOSING = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)

Finite = Annotated[float, Field(allow_inf_nan=False)]


class CardError(ValueError):
    """Metadata that is not a maskdet model card; the message is one line saying what is wrong."""


class InputCard(BaseModel):
    """How images are fed to the network (:class:`maskdet.zoo.architectures.InputConfig`)."""

    model_config = ConfigDict(strict=True, extra="allow")

    size: StrictInt
    channels: Literal[1, 3]
    mean: list[Finite]
    std: list[Annotated[Finite, Field(gt=0)]]

    @model_validator(mode="after")
    def _one_value_per_channel(self) -> InputCard:
        for key in ("mean", "std"):
            if len(getattr(self, key)) != self.channels:
                raise ValueError(f"{key} has {len(getattr(self, key))} values for {self.channels} channel(s)")
        return self


class WeightsCard(BaseModel):
    """What the weights file must be: its SHA-256 and, when recorded, its size."""

    model_config = ConfigDict(strict=True, extra="allow")

    sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[StrictInt, Field(ge=9, le=MAX_WEIGHTS_BYTES)] | None = None


class BuildCard(BaseModel):
    """Choices that change the network (:class:`maskdet.zoo.architectures.BuildOptions`)."""

    model_config = ConfigDict(strict=True, extra="allow")

    finetune_blocks: Annotated[StrictInt, Field(ge=0, le=1000)] = 0


class ModelCard(BaseModel):
    """The keys maskdet relies on; any other key is kept as it is (``extra="allow"``)."""

    model_config = ConfigDict(strict=True, extra="allow")

    format: Literal["maskdet-checkpoint"]
    format_version: Literal[1]
    arch: StrictStr
    classes: list[StrictStr]
    input: InputCard
    weights: WeightsCard
    build: BuildCard = BuildCard()
    operating_threshold: Annotated[Finite, Field(gt=0.0, lt=1.0)] | None = None  # see decision.validate_threshold

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        known = list_architectures(include_composed=True)
        if arch not in known:
            raise ValueError(f"unknown architecture {arch[:40]!r} (known: {', '.join(known)})")
        return arch

    @field_validator("classes")
    @classmethod
    def _our_classes(cls, classes: list[str]) -> list[str]:
        if not 2 <= len(classes) <= len(KNOWN_CLASSES) or classes != list(class_list(len(classes))):
            raise ValueError(f"{[c[:40] for c in classes[:4]]} are not maskdet's classes: the first 2 or 3 of "
                             f"{list(KNOWN_CLASSES)}")
        return classes

    @model_validator(mode="after")
    def _input_fits_arch(self) -> ModelCard:
        spec = get_spec(self.arch)
        try:
            spec.check_size(self.input.size)
        except ValueError as exc:
            raise ValueError(f"input.size: {exc}") from None
        if self.input.channels != spec.input.channels:
            raise ValueError(f"input.channels: {self.arch} takes {spec.input.channels} channel(s), not "
                             f"{self.input.channels}")
        return self


def nesting_depth(data: bytes) -> int:
    """Deepest ``[`` / ``{`` nesting in JSON text, brackets inside strings ignored; no parsing, no recursion."""
    brackets = np.frombuffer(_STRING_LITERAL.sub(b'""', data), dtype=np.uint8)
    steps = np.isin(brackets, _OPENING).astype(np.int64) - np.isin(brackets, _CLOSING).astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def _first_problem(exc: ValidationError) -> str:
    """One line for the first validation error: ``where: what`` (+ how many more)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = "".join(f"{part}: " for part in [".".join(str(part) for part in first["loc"])] if part)
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}{message}{more}"


def parse_model_card(data: bytes) -> dict:
    """Validate raw ``metadata.json`` bytes; return the parsed object (every key kept) or raise :class:`CardError`."""
    if len(data) > MAX_METADATA_BYTES:
        raise CardError(f"{len(data) / 1e6:.1f} MB is above the {MAX_METADATA_BYTES / 1e6:.0f} MB limit for metadata")
    depth = nesting_depth(data)
    if depth > MAX_NESTING:
        raise CardError(f"nested {depth} levels deep (at most {MAX_NESTING})")
    try:
        payload = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CardError(f"not readable JSON ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CardError(f"not maskdet metadata (its format is not {FORMAT!r})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CardError(f"unsupported checkpoint version {str(payload.get('format_version'))[:20]!r}")
    try:
        ModelCard.model_validate(payload)
    except ValidationError as exc:
        raise CardError(_first_problem(exc)) from None
    return payload


def _refuse_constant(name: str) -> float:
    """``NaN`` / ``Infinity`` are not JSON; Python's parser accepts them unless told otherwise."""
    raise ValueError(f"{name} is not a JSON number")

