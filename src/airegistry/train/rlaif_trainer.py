"""RLAIFTrainer: GRPO rewarded by a registered reward prompt, scored by an LLM judge."""

from __future__ import annotations

from typing import Any

from airegistry.air_constants import REWARD_PROMPT
from airegistry.session import Session
from airegistry.train.base import BaseTrainer
from airegistry.train.common import CustomizationTechnique, require_training_libraries
from airegistry.train.inputs import DatasetInput, resolve_evaluator

require_training_libraries()


class RLAIFTrainer(BaseTrainer):
    """GRPO (TRL ``GRPOTrainer``) rewarded by an evaluator of type RewardPrompt.

    ``reward_model_id`` names the judge model on the OpenAI-compatible endpoint of the
    evaluator runtime (``AIREGISTRY_JUDGE_BASE_URL``, or ``judge_options={"base_url": ...}``
    with any other ``JudgeConfig`` setting such as ``scale`` or ``concurrency``).
    """

    technique = CustomizationTechnique.RLAIF

    def __init__(
        self,
        model: str,
        *args: Any,
        reward_prompt: Any = None,
        reward_model_id: str | None = None,
        judge_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, *args, **kwargs)
        self.reward_prompt = reward_prompt
        self.reward_model_id = reward_model_id
        self.judge_options = dict(judge_options or {})

    def _judge_options(self) -> dict[str, Any]:
        options = dict(self.judge_options)
        if self.reward_model_id:
            options["model"] = self.reward_model_id
        return options

    def _evaluator(self, session: Session, register: bool) -> Any:
        return resolve_evaluator(self.reward_prompt, REWARD_PROMPT, session,
                                 trainer="RLAIFTrainer", register=register)

    def _reward_checks(self, session: Session, evaluator: Any, train: DatasetInput) -> str | None:
        from airegistry.runtime.judge import JudgeConfig

        JudgeConfig.from_env(**self._judge_options())  # ValueError naming what is missing
        return "event"
