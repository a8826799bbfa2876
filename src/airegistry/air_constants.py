"""Constants of the AI Registry: content statuses, types and document schema versions."""

from __future__ import annotations

from enum import Enum


class HubContentStatus(str, Enum):
    """Status of a hub content version.

    A ``str`` enum, so ``status == "Available"`` and ``status == HubContentStatus.AVAILABLE``
    both hold; entities always hold members of this enum, never raw strings.
    """

    AVAILABLE = "Available"
    IMPORTING = "Importing"
    DELETING = "Deleting"
    IMPORT_FAILED = "ImportFailed"
    DELETE_FAILED = "DeleteFailed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {HubContentStatus.AVAILABLE, HubContentStatus.IMPORT_FAILED, HubContentStatus.DELETE_FAILED}
)

DATASET_HUB_CONTENT_TYPE = "DataSet"
EVALUATOR_HUB_CONTENT_TYPE = "JsonDoc"
DATASET_DOCUMENT_SCHEMA_VERSION = "2.0.0"
EVALUATOR_DOCUMENT_SCHEMA_VERSION = "2.0.0"
EVALUATOR_SUBTYPE = "AWS/Evaluator"

REWARD_FUNCTION = "RewardFunction"
REWARD_PROMPT = "RewardPrompt"
EVALUATOR_TYPES = (REWARD_FUNCTION, REWARD_PROMPT)

DEFAULT_MAX_RESULTS = 100
