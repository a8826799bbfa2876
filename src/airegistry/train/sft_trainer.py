"""SFTTrainer: supervised fine-tuning on prompt-completion, input-output, chat or converse data."""

from __future__ import annotations

from airegistry.train.base import BaseTrainer
from airegistry.train.common import CustomizationTechnique, require_training_libraries

require_training_libraries()


class SFTTrainer(BaseTrainer):
    """Supervised fine-tuning (TRL ``SFTTrainer``), LoRA or full weights."""

    technique = CustomizationTechnique.SFT
