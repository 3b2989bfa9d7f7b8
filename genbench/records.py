"""Typed provenance records, written to and read from JSON objects (never parsed out of strings):
`ModelProvenance` (which checkpoint made the images: file, SHA-256, official name), carried by `genbench
sample`'s sampling manifest (`sampling.generate.SampleSettings.model`, copied into a results file's
provenance "sampling" by `eval --model`) and by `GenerationRecord` (`geneval generate`'s generation.json,
copied into provenance "geneval" "generation" by `geneval score`).

Files written before these records held the model as text; the readers marked LEGACY below read them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbench.errors import GenbenchError


@dataclass(frozen=True)
class ModelProvenance:
    """The sampled checkpoint: `file` (its name or path), `sha256` (hex digest of the file), `official` (the
    registered model name it was loaded as, if any)."""

    file: str
    sha256: str
    official: str | None = None

    @property
    def label(self) -> str:
        """"<file name> (<first 8 hex digits>)", as boards name a measured model."""
        return f"{Path(self.file).name} ({self.sha256[:8]})"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any, where: str) -> ModelProvenance:
        """A model record; `where` names the file and field for errors. Reads the legacy text form too."""
        if isinstance(value, str):
            return _legacy_model_text(value, where)
        types = {"file": str, "sha256": str, "official": str | None}
        if not isinstance(value, dict) or set(value) - set(types) \
                or not all(isinstance(value.get(key), kind) for key, kind in types.items()):
            raise GenbenchError(f"{where}: {value!r} is not a model record (file, sha256, official); give a "
                                "file genbench wrote")
        return cls(value["file"], value["sha256"], value.get("official"))


def _legacy_model_text(text: str, where: str) -> ModelProvenance:
    """LEGACY READER: sampling manifests and results written before ModelProvenance held the model as
    "<file> sha256:<hex> official:<name or None>"."""
    file, found, rest = text.partition(" sha256:")
    sha256, _, official = rest.partition(" official:")
    if not found or not file or not sha256:
        raise GenbenchError(f"{where}: {text!r} is not a model record (legacy form \"<file> sha256:<hex> "
                            "official:<name>\"); give a file genbench wrote")
    return ModelProvenance(file, sha256, None if official in ("", "None") else official)


@dataclass(frozen=True)
class GenerationRecord:
    """How `genbench geneval generate` made an image folder: `model` (the checkpoint) or `world` (the
    ground-truth world's description) made the images; the sampler settings are None for the world."""

    seed: int
    images_per_prompt: int
    prompts: int
    skipped_prompts: int
    metadata: str  # the prompt suite: a metadata file, or "shapes suite seed N"
    model: ModelProvenance | None = None
    world: str | None = None
    sampler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any, where: str) -> GenerationRecord:
        """A generation record; `where` names the file for errors. Reads the legacy form too."""
        fix = "delete it or run `genbench geneval generate` again"
        if not isinstance(value, dict):
            raise GenbenchError(f"{where}: a generation record is a JSON object; {fix}")
        if "model_sha256" in value or isinstance(value.get("model"), str):
            value = _legacy_generation(value)
        unknown = sorted(set(value) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise GenbenchError(f"{where}: unknown generation record fields {unknown}; {fix}")
        model = value.get("model")
        if model is not None:
            value = {**value, "model": ModelProvenance.from_json(model, where)}
        try:
            return cls(**value)
        except TypeError as error:
            raise GenbenchError(f"{where}: not a generation record genbench wrote ({error}); {fix}") \
                from error


def _legacy_generation(value: dict[str, Any]) -> dict[str, Any]:
    """LEGACY READER: generation records written before GenerationRecord held the checkpoint path in "model"
    beside "model_sha256", or the world's description in "model" with no "model_sha256"."""
    legacy = dict(value)
    text, sha256 = legacy.pop("model", None), legacy.pop("model_sha256", None)
    if sha256 is None:
        return {**legacy, "world": text}
    return {**legacy, "model": {"file": text, "sha256": sha256, "official": None}}
