"""Where a reward prompt's judge lives and how hard to push it (``JudgeConfig``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def check_scale(scale: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in scale)
    except (TypeError, ValueError):
        raise ValueError(f"judge scale must be a pair (low, high), got {scale!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"judge scale must be two finite numbers low < high, got {scale!r}")
    return lo, hi


def display_url(url: str) -> str:
    """The URL without credentials or query string, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge lives and how hard to push it.

    ``scale`` is the score range the prompt asks for; scores are mapped linearly to [0, 1].
    ``backoff_base_s``/``backoff_max_s`` shape the retry delays (``Retry-After`` from the
    server wins, capped at ``backoff_max_s``). ``trust_env`` lets httpx use proxy settings
    from the environment.
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    scale: tuple[float, float] = (1, 10)
    concurrency: int = 8
    max_retries: int = 4
    timeout_s: float = 60
    temperature: float = 0.0
    system_prompt: str | None = None
    max_tokens: int | None = None
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    trust_env: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"judge base_url must be an http(s) URL such as https://api.openai.com/v1, "
                f"got {self.base_url!r}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("judge model must be a non-empty model name, e.g. 'gpt-4o-mini'")
        if self.api_key is not None:
            if not isinstance(self.api_key, str):
                raise ValueError("judge api_key must be a string")
            # Keys read from files often carry a trailing newline; anything else outside
            # printable ASCII would be refused by the HTTP layer with an error that quotes the
            # header, so it is refused here without ever showing the key.
            key = self.api_key.strip()
            if not key or any(not ("!" <= c <= "~") for c in key):
                raise ValueError(
                    "judge api_key is empty or contains spaces or non-printable characters "
                    "(the key itself is not shown)"
                )
            object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "scale", check_scale(self.scale))
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"judge concurrency must be an integer >= 1, got {self.concurrency!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"judge max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"judge timeout_s must be > 0, got {self.timeout_s!r}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("judge backoff_base_s and backoff_max_s must be >= 0")

    @property
    def endpoint(self) -> str:
        base = self.base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return base + "/chat/completions"

    @classmethod
    def from_env(cls, **overrides: Any) -> JudgeConfig:
        """Build a config from ``AIREGISTRY_JUDGE_*`` (falling back to ``OPENAI_*``) variables.

        Explicit keyword arguments win; a keyword passed as ``None`` counts as not given.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        env = os.environ
        base_url = given.pop("base_url", None) or env.get("AIREGISTRY_JUDGE_BASE_URL") or env.get(
            "OPENAI_BASE_URL"
        )
        model = given.pop("model", None) or env.get("AIREGISTRY_JUDGE_MODEL")
        api_key = given.pop("api_key", None) or env.get("AIREGISTRY_JUDGE_API_KEY") or env.get(
            "OPENAI_API_KEY"
        )
        missing = []
        if not base_url:
            missing.append(
                "the endpoint: pass base_url=... or set AIREGISTRY_JUDGE_BASE_URL "
                "(or OPENAI_BASE_URL), e.g. https://api.openai.com/v1 or http://localhost:8000/v1"
            )
        if not model:
            missing.append("the model: pass model=... or set AIREGISTRY_JUDGE_MODEL")
        if missing:
            raise ValueError(
                "reward prompts need a judge model behind an OpenAI-compatible "
                "chat-completions endpoint; missing " + "; and ".join(missing)
            )
        return cls(base_url=base_url, model=model, api_key=api_key or None, **given)
