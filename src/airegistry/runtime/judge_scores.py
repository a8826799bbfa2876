"""Finding the score in a judge's free-text reply and mapping it to [0, 1]."""

from __future__ import annotations

import contextlib
import json
import math
import re

from .judge_config import check_scale
from .judge_errors import ScoreParseError

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


def excerpt(reply: str, limit: int = 200) -> str:
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
    lo, hi = check_scale(scale)
    if not isinstance(reply, str):
        raise ScoreParseError(f"judge reply must be text, got {type(reply).__name__}")
    value = _find_score(reply, hi)
    if value is None:
        raise ScoreParseError(
            f"no score found in the judge's reply (expected e.g. 'Score: 7' on the "
            f"{lo:g}-{hi:g} scale); reply: {excerpt(reply)}"
        )
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ScoreParseError(
            f"judge score {value:g} is outside the declared scale {lo:g}-{hi:g}; "
            f"reply: {excerpt(reply)}"
        )
    return (value - lo) / (hi - lo)
