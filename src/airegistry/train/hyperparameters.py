"""The hyperparameters a trainer accepts: TRL's names, typed, with defaults for small runs.

One table says, for each name, its type, its default and which techniques use it; the
same table checks user input (an unknown name lists the valid ones), parses the strings
SageMaker's ``HyperParameters`` and the CLI's ``--set`` carry, and is what
``docs/training.md`` documents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALL = ("sft", "dpo", "rlvr", "rlaif")
RL = ("rlvr", "rlaif")


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: type
    default: Any
    techniques: tuple[str, ...] = ALL
    help: str = ""
    minimum: float | None = None


_TABLE = (
    Hyperparameter("max_steps", int, -1, help="optimizer steps; -1 trains num_train_epochs"),
    Hyperparameter("num_train_epochs", float, 1.0, minimum=0),
    Hyperparameter("learning_rate", float, None, minimum=0,
                   help="default 1e-4 for LORA, 1e-5 for FULL"),
    Hyperparameter("per_device_train_batch_size", int, 4, minimum=1),
    Hyperparameter("per_device_eval_batch_size", int, 4, minimum=1),
    Hyperparameter("gradient_accumulation_steps", int, 1, minimum=1),
    Hyperparameter("warmup_ratio", float, 0.0, minimum=0),
    Hyperparameter("weight_decay", float, 0.0, minimum=0),
    Hyperparameter("lr_scheduler_type", str, "linear"),
    Hyperparameter("max_grad_norm", float, 1.0, minimum=0),
    Hyperparameter("logging_steps", int, 1, minimum=1),
    Hyperparameter("eval_steps", int, 0, minimum=0,
                   help="evaluate every N steps (0: once, at the end)"),
    Hyperparameter("seed", int, 42),
    Hyperparameter("gradient_checkpointing", bool, False),
    Hyperparameter("bf16", str, "auto", help="auto (on a GPU that supports it), true or false"),
    Hyperparameter("lora_r", int, 8, minimum=1),
    Hyperparameter("lora_alpha", int, 16, minimum=1),
    Hyperparameter("lora_dropout", float, 0.05, minimum=0),
    Hyperparameter("lora_target_modules", str, "all-linear",
                   help="comma-separated module names, or all-linear"),
    Hyperparameter("max_length", int, 1024, ("sft", "dpo"), minimum=1,
                   help="token limit of a training sequence (also set by sequence_length)"),
    Hyperparameter("packing", bool, False, ("sft",)),
    Hyperparameter("completion_only_loss", bool, True, ("sft",),
                   help="loss on completions only for prompt-completion data"),
    Hyperparameter("beta", float, None, ("dpo", "rlvr", "rlaif"), minimum=0,
                   help="DPO: 0.1; GRPO KL coefficient: 0.0"),
    Hyperparameter("loss_type", str, None, ("dpo",), help="DPO loss, default sigmoid"),
    Hyperparameter("num_generations", int, 4, RL, minimum=2,
                   help="completions per prompt (a divisor of the batch size)"),
    Hyperparameter("max_completion_length", int, 64, RL, minimum=1),
    Hyperparameter("temperature", float, 1.0, RL, minimum=0),
    Hyperparameter("reward_batch_size", int, 0, RL, minimum=0,
                   help="completions per reward call (0: all of a generation batch in one call)"),
)
HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in _TABLE}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def names_for(technique: str) -> list[str]:
    return sorted(h.name for h in _TABLE if technique in h.techniques)


def _parse(spec: Hyperparameter, value: Any) -> Any:
    if value is None:
        return None
    kind = spec.type
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip())
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Hyperparameter {spec.name} must be {kind.__name__}, got {value!r}"
        ) from None


def resolve(
    technique: str,
    given: Mapping[str, Any] | None,
    *,
    training_type: str,
    sequence_length: int | None = None,
) -> dict[str, Any]:
    """Every hyperparameter of ``technique``: the given ones checked and typed, the rest defaulted."""
    given = dict(given or {})
    valid = names_for(technique)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{technique.upper()}; valid names: {', '.join(valid)}"
        )
    out: dict[str, Any] = {}
    for name in valid:
        spec = HYPERPARAMETERS[name]
        value = _parse(spec, given[name]) if name in given else spec.default
        if value is not None and spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"Hyperparameter {name} must be >= {spec.minimum:g}, got {value}")
        out[name] = value
    if sequence_length is not None and "max_length" in out and "max_length" not in given:
        out["max_length"] = int(sequence_length)
    if out["learning_rate"] is None:
        out["learning_rate"] = 1e-4 if training_type == "LORA" else 1e-5
    if "beta" in out and out["beta"] is None:
        out["beta"] = 0.1 if technique == "dpo" else 0.0
    if technique == "dpo" and out["loss_type"] is None:
        out["loss_type"] = "sigmoid"
    if str(out["bf16"]).lower() not in ("auto", *_TRUE, *_FALSE):
        raise ValueError(f"Hyperparameter bf16 must be auto, true or false, got {out['bf16']!r}")
    if technique in RL:
        batch = out["per_device_train_batch_size"] * out["gradient_accumulation_steps"]
        if batch % out["num_generations"]:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a "
                f"multiple of num_generations ({out['num_generations']}): each prompt's "
                "completions are scored as one group"
            )
    return out


def as_strings(values: Mapping[str, Any]) -> dict[str, str]:
    """SageMaker's HyperParameters map holds strings."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}
