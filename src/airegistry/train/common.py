"""Names every trainer shares: the technique (the seed imports it from here) and the training type."""

from __future__ import annotations

from enum import Enum

from airegistry.dataset_utils import CustomizationTechnique

__all__ = ["CustomizationTechnique", "TrainingType", "require_training_libraries"]

TRAIN_EXTRA_HINT = "pip install 'airegistry[train]'"


class TrainingType(str, Enum):
    """What is trained: a PEFT LoRA adapter on frozen weights, or every weight."""

    LORA = "LORA"
    FULL = "FULL"

    def __str__(self) -> str:
        return self.value


TRAINING_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def require_training_libraries() -> None:
    """Fail with the install hint when the training stack is missing.

    The trainer modules call it when imported; it only looks the packages up (importing
    torch and TRL takes seconds, and happens when a run starts).
    """
    from importlib.util import find_spec

    missing = [module for module in TRAINING_LIBRARIES if find_spec(module) is None]
    if missing:
        raise ImportError(
            f"Training needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: {TRAIN_EXTRA_HINT}"
        )
