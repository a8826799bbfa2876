"""Finding the base model (a local directory or the local Hugging Face cache) and naming it exactly.

Nothing is downloaded: a model that is neither a directory nor already cached is an error
that says both places looked. The lineage identifies the weights by a fingerprint of
``config.json`` and the weights index (each safetensors file's name, size and header,
which lists every tensor with its dtype, shape and byte range), which is cheap to compute
for any model size and changes whenever the architecture or the stored tensors do.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class BaseModel:
    source: str  # what the user gave
    path: Path  # the directory loaded
    config_sha256: str
    weights_index_sha256: str
    model_type: str | None

    def to_lineage(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": str(self.path),
            "model_type": self.model_type,
            "config_sha256": self.config_sha256,
            "weights_index_sha256": self.weights_index_sha256,
        }


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return os.path.expanduser("~/.cache/huggingface/hub")


def _from_cache(model_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover
        return None
    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:
        return None


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > _MAX_HEADER:
            raise ValueError(f"{path} has an implausible safetensors header of {length} bytes")
        return fh.read(length)


def weights_index_sha256(directory: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    if not files:
        raise ValueError(f"Model directory {directory} holds no weights (*.safetensors or *.bin)")
    for file in files:
        digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        if file.suffix == ".safetensors":
            digest.update(hashlib.sha256(_safetensors_header(file)).digest())
    return digest.hexdigest()


def resolve_model(model: Any) -> BaseModel:
    """The local directory of ``model`` with its fingerprint; ``ValueError`` when not found."""
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise ValueError("model must be a local model directory or a Hugging Face model id")
    source = os.fspath(model)
    local = Path(source).expanduser()
    if local.is_dir():
        path = local.resolve()
    else:
        cached = _from_cache(source) if "/" in source or not local.exists() else None
        if cached is None:
            raise ValueError(
                f"Model {source!r} not found: it is not a directory ({local.resolve()}) and not "
                f"in the local Hugging Face cache ({_hf_cache_dir()}); nothing is downloaded. "
                "Pass a directory holding config.json, the weights and the tokenizer."
            )
        path = cached
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"Model directory {path} has no config.json")
    config_bytes = config_file.read_bytes()
    try:
        config = json.loads(config_bytes)
    except ValueError as exc:
        raise ValueError(f"{config_file} is not valid JSON: {exc}") from None
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise ValueError(f"Model directory {path} has no tokenizer (tokenizer.json)")
    return BaseModel(
        source=source,
        path=path,
        config_sha256=hashlib.sha256(config_bytes).hexdigest(),
        weights_index_sha256=weights_index_sha256(path),
        model_type=config.get("model_type") if isinstance(config, dict) else None,
    )


def check_causal_lm(base: BaseModel) -> None:
    """Refuse a model transformers cannot load as a causal LM, before any compute."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(base.path)
    except Exception as exc:
        raise ValueError(f"Model {base.source}: transformers cannot read its config: {exc}") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(
            f"Model {base.source} is a {config.model_type!r} model, not a causal language model"
        )
