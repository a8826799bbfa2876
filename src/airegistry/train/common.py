"""Names every trainer shares: the technique (the seed imports it from here) and the training type."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
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


# Deprecated transformers properties read by the libraries themselves on every run, not by
# us: PEFT's ``PeftModel.__init__`` (``getattr(model, "is_gradient_checkpointing", True)``,
# when an adapter is created or loaded) and TRL's ``trl.models.utils``
# (``disable_gradient_checkpointing`` in DPO's reference pass, ``_unwrap_model_for_generation``
# in GRPO's generation) read ``is_gradient_checkpointing``, which transformers 5.x deprecated
# for ``is_activation_checkpointing``. Nothing we pass avoids them.
LIBRARY_DEPRECATIONS = (r"`is_gradient_checkpointing` is deprecated",)


@contextlib.contextmanager
def library_deprecations_silenced() -> Iterator[None]:
    """Silence exactly ``LIBRARY_DEPRECATIONS`` (FutureWarnings) while a run or merge is on."""
    with warnings.catch_warnings():
        for message in LIBRARY_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        yield
