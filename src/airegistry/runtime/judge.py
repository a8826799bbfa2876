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

import email.utils
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import httpx

from airegistry.runtime.judge_config import JudgeConfig, display_url
from airegistry.runtime.judge_errors import (
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeReplyError,
    JudgeTimeoutError,
    ScoreParseError,
)
from airegistry.runtime.judge_scores import excerpt, parse_score
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
            f"endpoint={display_url(self.config.endpoint)!r})"
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
        where = display_url(url)
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
                + self._redact(excerpt(response.text))
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
