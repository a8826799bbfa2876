"""Reward prompts, scored by an LLM judge behind any OpenAI-compatible chat-completions API.

The judge is an unreliable remote dependency: it rate-limits (429), has bad minutes (5xx),
stalls, and answers in free text. This module turns that into the same per-item
``RewardOutcome`` contract reward functions have: requests are retried with exponential
backoff and jitter (honouring ``Retry-After``), concurrency is bounded so a 100k-row
evaluation does not open 100k sockets, and the score is pulled out of the reply and
normalised from the declared scale to [0, 1]. The API key goes in the ``Authorization``
header only; every message this module produces is scrubbed of it.

Plain threads and ``httpx.Client`` are used (not asyncio) so the judge is callable from sync
code, from worker threads, and from inside frameworks that already run an event loop.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from airegistry.runtime.rewards import (
    RewardOutcome,
    outcome_from_error,
    outcome_from_payload,
)
from airegistry.runtime.templates import PromptTemplate

__all__ = [
    "JudgeConfig",
    "JudgeConnectionError",
    "JudgeError",
    "JudgeHTTPError",
    "JudgeReplyError",
    "JudgeTimeoutError",
    "RewardPromptJudge",
    "ScoreParseError",
    "parse_score",
]

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class JudgeError(RuntimeError):
    """The judge endpoint could not produce a reply."""


class JudgeHTTPError(JudgeError):
    """The endpoint answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class JudgeTimeoutError(JudgeError, TimeoutError):
    """The endpoint did not answer within ``JudgeConfig.timeout_s``."""


class JudgeConnectionError(JudgeError):
    """The endpoint could not be reached at all."""


class JudgeReplyError(JudgeError):
    """The endpoint answered 200 but not with a chat completion."""


class ScoreParseError(ValueError):
    """The judge's reply holds no score, or a score outside the declared scale."""


# --------------------------------------------------------------------------------------
# configuration


def _check_scale(scale: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in scale)
    except (TypeError, ValueError):
        raise ValueError(f"judge scale must be a pair (low, high), got {scale!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"judge scale must be two finite numbers low < high, got {scale!r}")
    return lo, hi


def _display_url(url: str) -> str:
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
        object.__setattr__(self, "scale", _check_scale(self.scale))
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


# --------------------------------------------------------------------------------------
# score parsing

# Every pattern below is written to scan in linear time: judge replies can echo model output
# verbatim, so a reply is hostile input, and nested or adjacent quantifiers over the same
# characters would let a crafted reply stall the evaluation (catastrophic backtracking).
_NUM = r"([-+]?\d+(?:\.\d+)?)"
_NUM_START = r"(?<![\w.])"  # a number starts here, not in the middle of a token
_LABELLED = re.compile(
    r"\b(?:score|rating|grade)\b[ \t]*"
    r"(?:\([^)\n]{0,30}\)[ \t]*)?"  # "Score (1-10):"
    r"(?:(?:[:=]|is\b|of\b)[ \t]*)?"
    r"(?:\n\s*?)?" + _NUM + r"(?:[ \t]*(?:/|out of\b)[ \t]*" + _NUM + r")?",
    re.IGNORECASE,
)
_FRACTION = re.compile(
    _NUM_START + _NUM + r"[ \t]*(?:/|out of\b)[ \t]*" + _NUM, re.IGNORECASE
)
_BOLD = re.compile(r"\*\*[ \t]*" + _NUM + r"[ \t]*\*\*")
_ANY_NUMBER = re.compile(_NUM_START + _NUM + r"(?!\w|\.\d)")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_SCORE_KEYS = ("score", "rating", "grade")


def _excerpt(reply: str, limit: int = 200) -> str:
    flat = " ".join(reply[: limit * 4].split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def _unfenced(reply: str) -> str:
    text = reply.strip()
    if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
        text = text[3:-3].strip()
        if text[:4].lower() == "json":
            text = text[4:].strip()
    return text


def _score_from_json(reply: str) -> float | None:
    candidates = [_unfenced(reply)]
    candidates += [m.group(0) for m in reversed(list(_JSON_OBJECT.finditer(reply)))]
    for text in candidates:
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested input
            continue
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in _SCORE_KEYS:
            if key not in lowered:
                continue
            value = lowered[key]
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    return float(value.strip())
    return None


def _find_score(reply: str, hi: float) -> float | None:
    value = _score_from_json(reply)
    if value is not None:
        return value
    # Markdown bold around labels ("**Score:** 7", "**Score**: 7") is noise for the label
    # pattern; "**8**" on its own is handled below on the original text.
    plain = reply.replace("*", "")
    # Judges often reason first and conclude with the score, so the last match wins.
    for match in reversed(list(_LABELLED.finditer(plain))):
        denominator = match.group(2)
        if denominator is not None and float(denominator) != hi:
            continue
        return float(match.group(1))
    for match in reversed(list(_FRACTION.finditer(plain))):
        if float(match.group(2)) == hi:
            return float(match.group(1))
    bold = list(_BOLD.finditer(reply))
    if bold:
        return float(bold[-1].group(1))
    bare = plain.strip().removesuffix(".").strip()
    if re.fullmatch(_NUM, bare):
        return float(bare)
    numbers = _ANY_NUMBER.findall(plain)
    if len(numbers) == 1:
        return float(numbers[0])
    return None


def parse_score(reply: str, scale: tuple[float, float]) -> float:
    """Find the score in a judge's reply and map it from ``scale`` to [0, 1].

    Understands ``{"score": 8}`` (also inside a code fence or surrounded by text),
    ``Score: 7`` / ``Rating (1-10): 7`` / ``**Score:** 7``, ``7/10`` and ``7 out of 10`` (when the
    denominator is the scale's maximum), ``**8**``, a reply that is just a number, and a
    reply that contains exactly one number. Anything else is ambiguous and raises rather
    than guessing.
    """
    lo, hi = _check_scale(scale)
    if not isinstance(reply, str):
        raise ScoreParseError(f"judge reply must be text, got {type(reply).__name__}")
    value = _find_score(reply, hi)
    if value is None:
        raise ScoreParseError(
            f"no score found in the judge's reply (expected e.g. 'Score: 7' on the "
            f"{lo:g}-{hi:g} scale); reply: {_excerpt(reply)}"
        )
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ScoreParseError(
            f"judge score {value:g} is outside the declared scale {lo:g}-{hi:g}; "
            f"reply: {_excerpt(reply)}"
        )
    return (value - lo) / (hi - lo)


# --------------------------------------------------------------------------------------
# the judge


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:300]
        if isinstance(err, str):
            return err[:300]
    text = response.text.strip()
    return text[:300] if text else "(empty body)"


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = [
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "".join(texts) if texts else None
    return None


class RewardPromptJudge:
    """Scores events with a reward prompt: render, ask the judge, parse, normalise.

    Thread-safe; one instance keeps one pooled HTTP client, so reuse it across batches (for
    example across training steps) and ``close()`` it, or use it as a context manager.
    ``sleep`` exists so tests can observe retry delays without waiting for them.
    """

    def __init__(
        self,
        template: PromptTemplate | str,
        config: JudgeConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.template = template if isinstance(template, PromptTemplate) else PromptTemplate(
            template
        )
        self.config = config
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                cfg = self.config
                # The pool holds ``concurrency`` connections, which bounds in-flight requests
                # per judge even when several threads run batches at once; waiting for a free
                # connection is queueing, not a judge timeout, so the pool wait is unbounded.
                self._client = httpx.Client(
                    timeout=httpx.Timeout(cfg.timeout_s, pool=None),
                    limits=httpx.Limits(
                        max_connections=cfg.concurrency,
                        max_keepalive_connections=cfg.concurrency,
                    ),
                    trust_env=cfg.trust_env,
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> RewardPromptJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RewardPromptJudge(model={self.config.model!r}, "
            f"endpoint={_display_url(self.config.endpoint)!r})"
        )

    # -- helpers -----------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.config
        if retry_after is not None:
            return min(retry_after, cfg.backoff_max_s)
        ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * (2**attempt))
        return ceiling * random.uniform(0.5, 1.0)

    def _request_body(self, prompt: str) -> dict[str, Any]:
        cfg = self.config
        messages: list[dict[str, str]] = []
        if cfg.system_prompt:
            messages.append({"role": "system", "content": cfg.system_prompt})
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": messages,
            "temperature": cfg.temperature,
        }
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        return body

    # -- one request, with retries -----------------------------------------------------

    def complete(self, prompt: str) -> str:
        """Send one prompt to the judge and return its reply text (retrying as configured)."""
        cfg = self.config
        url = cfg.endpoint
        where = _display_url(url)
        headers = {"Content-Type": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        body = self._request_body(prompt)
        client = self._http()
        attempts = cfg.max_retries + 1
        last: JudgeError | None = None
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                response = client.post(url, json=body, headers=headers)
            except httpx.TimeoutException:
                last = JudgeTimeoutError(
                    f"judge request to {where} timed out after {cfg.timeout_s:g} s "
                    "(JudgeConfig.timeout_s)"
                )
            except httpx.TransportError as exc:
                last = JudgeConnectionError(
                    self._redact(f"could not reach the judge at {where}: {type(exc).__name__}: {exc}")
                )
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._reply_text(response, where)
                detail = self._redact(_error_detail(response))
                message = f"judge returned HTTP {status} from {where}: {detail}"
                if status in _RETRYABLE_STATUS or status >= 500:
                    last = JudgeHTTPError(message, status)
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                else:
                    if status in (401, 403):
                        message += (
                            " (check the API key: AIREGISTRY_JUDGE_API_KEY or OPENAI_API_KEY)"
                        )
                    elif status == 404:
                        message += (
                            " (check base_url, which usually ends in /v1, and the model name)"
                        )
                    raise JudgeHTTPError(message, status)
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, retry_after)
                logger.info(
                    "%s; retry %d of %d in %.2f s", last, attempt + 1, cfg.max_retries, delay
                )
                self._sleep(delay)
        assert last is not None
        suffix = f" (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
        if isinstance(last, JudgeHTTPError):
            raise JudgeHTTPError(str(last) + suffix, last.status)
        raise type(last)(str(last) + suffix)

    def _reply_text(self, response: httpx.Response, where: str) -> str:
        try:
            data = response.json()
            content = data["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise JudgeReplyError(
                f"judge at {where} answered 200 but not with a chat completion: "
                + self._redact(_excerpt(response.text))
            ) from None
        text = _message_text(content)
        if text is None:
            raise JudgeReplyError(
                f"judge at {where} returned a message without text content "
                f"(finish_reason={data['choices'][0].get('finish_reason')!r})"
            )
        return text

    # -- scoring -----------------------------------------------------------------------

    def evaluate(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Score one event; raises TemplateError, JudgeError or ScoreParseError on failure."""
        prompt = self.template.render(event)
        reply = self.complete(prompt)
        lo, hi = self.config.scale
        reward = parse_score(reply, (lo, hi))
        raw_score = lo + reward * (hi - lo)
        return {"reward": reward, "details": {"raw_score": raw_score, "reply": reply}}

    def _score_one(self, index: int, event: Mapping[str, Any]) -> RewardOutcome:
        try:
            payload = self.evaluate(event)
        except Exception as exc:
            return outcome_from_error(index, type(exc).__name__, self._redact(str(exc)))
        return outcome_from_payload(index, payload)

    def evaluate_batch(
        self,
        events: Sequence[Mapping[str, Any]],
        progress: Callable[[int], None] | None = None,
    ) -> list[RewardOutcome]:
        """Score many events concurrently (at most ``config.concurrency`` requests at once).

        Results come back in input order, one per event; a failing event becomes an error
        outcome and never fails the batch. ``progress(n)`` is called from the calling thread
        with the number of items that just finished.
        """
        events = list(events)
        results: list[RewardOutcome | None] = [None] * len(events)
        if not events:
            return []
        workers = min(self.config.concurrency, len(events))
        pending: dict[Future[RewardOutcome], int] = {}
        next_index = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            try:
                # Keep a bounded window of submitted work so a huge batch does not create
                # one future per row up front.
                while next_index < len(events) and len(pending) < workers * 2:
                    fut = pool.submit(self._score_one, next_index, events[next_index])
                    pending[fut] = next_index
                    next_index += 1
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        index = pending.pop(fut)
                        results[index] = fut.result()
                        if next_index < len(events):
                            nfut = pool.submit(self._score_one, next_index, events[next_index])
                            pending[nfut] = next_index
                            next_index += 1
                    if progress is not None:
                        progress(len(done))
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
        return [r for r in results if r is not None]

    def with_config(self, **changes: Any) -> RewardPromptJudge:
        """A judge with the same template and some settings changed (a new HTTP client)."""
        return RewardPromptJudge(self.template, replace(self.config, **changes), sleep=self._sleep)
