"""Reward-prompt templates: ``{placeholder}`` text filled from a dataset row.

Templates are user input that later meets row values which may be model output, so rendering
never goes through ``str.format``: the text is parsed once (with ``string.Formatter``'s parser,
so the brace rules are exactly Python's), only plain names are accepted as placeholders, and
rendering concatenates literal pieces with the row's values. Attribute or index access
(``{x.__class__}``, ``{x[0]}``), conversions and format specs are refused at parse time: they
are how format-string injection reaches object internals, and a judge prompt never needs them.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

__all__ = ["PromptTemplate", "TemplateError"]

# A placeholder name: what a dataset column is usually called. Hyphens are allowed because
# column names like "ground-truth" are common; dots and brackets are not (see module docstring).
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")

_LITERAL_BRACES_HINT = "write {{ and }} for literal braces"


class TemplateError(ValueError):
    """A reward-prompt template is malformed, or a row cannot fill it."""


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _where(text: str, offset: int) -> str:
    line, col = _line_col(text, offset)
    return f"line {line}, column {col}"


def _find_brace_error(text: str) -> tuple[int, str | None]:
    """Where ``text`` stops being parseable, and why (``string.Formatter`` does not say where).

    Returns the offset and a description; the description is None when the braces balance
    and a field itself is malformed (for example ``{a!}``), in which case Python's own
    message is the better explanation.
    """
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            if i + 1 < n and text[i + 1] == "{":
                i += 2
                continue
            depth = 1
            j = i + 1
            while j < n and depth:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                return i, "'{' is never closed"
            try:
                list(string.Formatter().parse(text[i:j]))
            except ValueError:
                return i, None
            i = j
            continue
        if ch == "}":
            if i + 1 < n and text[i + 1] == "}":
                i += 2
                continue
            return i, "'}' has no matching '{'"
        i += 1
    return max(n - 1, 0), None


def _snippet(text: str, offset: int, width: int = 30) -> str:
    start = max(offset - width, 0)
    piece = text[start : offset + width].replace("\n", "\\n")
    return ("..." if start else "") + piece + ("..." if offset + width < len(text) else "")


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class PromptTemplate:
    """A parsed reward prompt. Parse errors surface at construction, not at the first row."""

    __slots__ = ("_pieces", "placeholders", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TemplateError(f"a prompt template must be a str, got {type(text).__name__}")
        self.text = text
        # Each piece is either ("lit", text) or ("field", name).
        pieces: list[tuple[str, str]] = []
        names: list[str] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            offset, problem = _find_brace_error(text)
            problem = problem or str(exc)
            raise TemplateError(
                f"malformed prompt template at {_where(text, offset)} "
                f"(near {_snippet(text, offset)!r}): {problem}; {_LITERAL_BRACES_HINT}"
            ) from None

        offset = 0
        for literal, field_name, format_spec, conversion in parsed:
            if literal:
                pieces.append(("lit", literal))
                # Formatter un-doubles escaped braces; count them back to track the offset.
                offset += len(literal) + literal.count("{") + literal.count("}")
            if field_name is None:
                continue
            raw = "{" + field_name
            if conversion:
                raw += "!" + conversion
            if format_spec:
                raw += ":" + format_spec
            raw += "}"
            self._check_field(text, offset, raw, field_name, format_spec, conversion)
            pieces.append(("field", field_name))
            if field_name not in names:
                names.append(field_name)
            offset += len(raw)

        self._pieces: tuple[tuple[str, str], ...] = tuple(pieces)
        self.placeholders: tuple[str, ...] = tuple(names)

    @staticmethod
    def _check_field(
        text: str,
        offset: int,
        raw: str,
        name: str,
        format_spec: str | None,
        conversion: str | None,
    ) -> None:
        where = _where(text, offset)
        if name == "":
            raise TemplateError(
                f"empty placeholder {raw!r} at {where}: name the field to insert, "
                f"e.g. {{response}}; {_LITERAL_BRACES_HINT}"
            )
        if not _NAME_RE.match(name):
            if any(c in name for c in ".[]"):
                why = "attribute and index access are not allowed"
            elif name[0].isdigit():
                why = "positional fields are not allowed"
            else:
                why = "not a plain field name"
            raise TemplateError(
                f"invalid placeholder {raw!r} at {where}: {why}; placeholders must be plain "
                f"names like {{question}} or {{response}}; {_LITERAL_BRACES_HINT}"
            )
        if conversion or format_spec:
            raise TemplateError(
                f"unsupported placeholder {raw!r} at {where}: conversions (!r) and format "
                f"specs (:...) are not allowed; use {{{name}}}; {_LITERAL_BRACES_HINT}"
            )

    def missing(self, keys: Mapping[str, Any] | set[str] | frozenset[str]) -> list[str]:
        """Placeholders a row with these keys could not fill (to check a dataset up front)."""
        return [p for p in self.placeholders if p not in keys]

    def render(self, row: Mapping[str, Any]) -> str:
        """Fill the template from ``row``; strings go in verbatim, other values as JSON."""
        if not isinstance(row, Mapping):
            raise TemplateError(
                f"a prompt template is filled from a dict-like row, got {type(row).__name__}"
            )
        out: list[str] = []
        for kind, value in self._pieces:
            if kind == "lit":
                out.append(value)
                continue
            if value not in row:
                keys = sorted(str(k) for k in row)
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} keys)" if len(keys) > 20 else "")
                raise TemplateError(
                    f"prompt placeholder {{{value}}} has no value: the row has no {value!r} "
                    f"field (row keys: {shown or 'none'})"
                )
            out.append(_render_value(row[value]))
        return "".join(out)

    def __repr__(self) -> str:
        return f"PromptTemplate(placeholders={self.placeholders!r})"
