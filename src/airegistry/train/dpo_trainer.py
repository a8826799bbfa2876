"""DPOTrainer: direct preference optimisation on preference or converse-preference data."""

from __future__ import annotations

from airegistry.train.base import BaseTrainer
from airegistry.train.common import CustomizationTechnique, require_training_libraries

require_training_libraries()


class DPOTrainer(BaseTrainer):
    """Direct preference optimisation (TRL ``DPOTrainer``), LoRA or full weights."""

    technique = CustomizationTechnique.DPO
