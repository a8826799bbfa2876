"""RLVRTrainer: GRPO with a registered reward function (verifiable rewards)."""

from __future__ import annotations

from typing import Any

from airegistry.air_constants import REWARD_FUNCTION
from airegistry.session import Session
from airegistry.train.base import BaseTrainer
from airegistry.train.common import CustomizationTechnique, require_training_libraries
from airegistry.train.inputs import DatasetInput, resolve_evaluator
from airegistry.train.rewards import CONTRACTS, validate_reward_function

require_training_libraries()


class RLVRTrainer(BaseTrainer):
    """GRPO (TRL ``GRPOTrainer``) rewarded by an evaluator of type RewardFunction.

    ``custom_reward_function`` is an ``Evaluator``, its ARN or name, or a Lambda ARN (then
    registered as an evaluator first). Unless ``skip_reward_validation``, the function is run
    on three training rows through the runtime before anything else; ``reward_contract``
    (``auto``, ``event`` or ``batch``) says which reward contract it speaks.
    """

    technique = CustomizationTechnique.RLVR

    def __init__(
        self,
        model: str,
        *args: Any,
        custom_reward_function: Any = None,
        skip_reward_validation: bool = False,
        reward_contract: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, *args, **kwargs)
        if reward_contract not in CONTRACTS:
            raise ValueError(f"reward_contract must be one of {', '.join(CONTRACTS)}")
        self.custom_reward_function = custom_reward_function
        self.skip_reward_validation = skip_reward_validation
        self.reward_contract = reward_contract

    def _evaluator(self, session: Session, register: bool) -> Any:
        return resolve_evaluator(self.custom_reward_function, REWARD_FUNCTION, session,
                                 trainer="RLVRTrainer", register=register)

    def _reward_checks(self, session: Session, evaluator: Any, train: DatasetInput) -> str | None:
        if self.skip_reward_validation:
            return "event" if self.reward_contract == "auto" else self.reward_contract
        from airegistry.evaluator import iter_dataset_rows

        rows = []
        for row in iter_dataset_rows(train.entity(session)):
            rows.append(row)
            if len(rows) >= 3:
                break
        label = f"dataset {train.name or train.uri}"
        return validate_reward_function(evaluator, rows, train.format, self.reward_contract, label)
