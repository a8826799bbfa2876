"""Dataset enumerations: how a dataset came to be, and what technique it trains."""

from __future__ import annotations

from enum import Enum


class DataSetMethod(str, Enum):
    """Provenance: a local file copied into the registry, or data registered by reference."""

    UPLOADED = "uploaded"
    GENERATED = "generated"

    def __str__(self) -> str:
        return self.value


class CustomizationTechnique(str, Enum):
    """The fine-tuning technique a dataset is validated for."""

    SFT = "sft"
    DPO = "dpo"
    RLAIF = "rlaif"
    RLVR = "rlvr"

    def __str__(self) -> str:
        return self.value
