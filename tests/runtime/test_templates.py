"""Reward-prompt templates: parsing errors, missing fields, and format-string injection."""

from __future__ import annotations

import pytest

from airegistry.runtime.templates import PromptTemplate, TemplateError

SEED_PROMPT = """
Evaluate the helpfulness of the following response on a scale of 1-10.
Question: {question}
Response: {response}
Consider:
- Relevance to the question
- Completeness of information
- Clarity of explanation
Score (1-10):
"""


def test_seed_prompt_parses_and_renders() -> None:
    template = PromptTemplate(SEED_PROMPT)
    assert template.placeholders == ("question", "response")
    text = template.render({"question": "What is 2+2?", "response": "4", "extra": 1})
    assert "Question: What is 2+2?\nResponse: 4\n" in text


def test_repeated_placeholders_are_listed_once_and_filled_everywhere() -> None:
    template = PromptTemplate("{a} and {b} and {a}")
    assert template.placeholders == ("a", "b")
    assert template.render({"a": "x", "b": "y"}) == "x and y and x"


def test_doubled_braces_are_literal() -> None:
    template = PromptTemplate('Reply as JSON: {{"score": <n>}} for {response}')
    assert template.placeholders == ("response",)
    assert template.render({"response": "hi"}) == 'Reply as JSON: {"score": <n>} for hi'


def test_values_are_inserted_verbatim_never_reformatted() -> None:
    # A response containing braces or format fields must not be interpreted.
    template = PromptTemplate("R: {response}")
    hostile = "{response.__class__} {0} {{x}} }"
    assert template.render({"response": hostile}) == "R: " + hostile


def test_non_string_values_are_json() -> None:
    template = PromptTemplate("{a}|{b}|{c}|{d}")
    rendered = template.render({"a": 3, "b": None, "c": {"k": ["v", 1.5]}, "d": "é"})
    assert rendered == '3|null|{"k": ["v", 1.5]}|é'


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("Question: {question", "line 1, column 11", "'{' is never closed"),
        ("Question: question}", "line 1, column 19", "'}' has no matching '{'"),
        ("line one\nScore: {score", "line 2, column 8", "'{' is never closed"),
        ("Q: {q}\nR: {response\nScore:", "line 2, column 4", "'{' is never closed"),
        ("ok {a}}", "line 1, column 7", "'}' has no matching '{'"),
        ("{{ {a} }}}", "line 1, column 10", "'}' has no matching '{'"),
        ("ok {x} {a!rr}", "line 1, column 8", "conversion"),
    ],
)
def test_unbalanced_braces_name_the_position(text: str, position: str, problem: str) -> None:
    with pytest.raises(TemplateError) as info:
        PromptTemplate(text)
    message = str(info.value)
    assert position in message
    assert problem in message
    assert "{{" in message  # tells the user how to write a literal brace


@pytest.mark.parametrize(
    "text",
    [
        "{x.__class__}",
        "{x[0]}",
        "{response.__init__.__globals__}",
        "{x[secret]}",
        "{0}",
        "{}",
        "{x!r}",
        "{x:>10}",
        "{x:{y.__class__}}",
        'Answer as {"score": 8}',
    ],
)
def test_format_injection_and_non_plain_placeholders_are_refused(text: str) -> None:
    with pytest.raises(TemplateError) as info:
        PromptTemplate(text)
    assert "line 1" in str(info.value)


def test_placeholder_error_position_counts_escaped_braces() -> None:
    with pytest.raises(TemplateError) as info:
        PromptTemplate("{{lit}} {ok} {bad.attr}")
    assert "column 14" in str(info.value)
    assert "{bad.attr}" in str(info.value)


def test_hyphenated_column_names_are_plain_names() -> None:
    assert PromptTemplate("{ground-truth}").render({"ground-truth": "4"}) == "4"


def test_missing_field_names_placeholder_and_row_keys() -> None:
    template = PromptTemplate("Q: {question}\nA: {response}")
    with pytest.raises(TemplateError) as info:
        template.render({"prompt": "p", "response": "r"})
    message = str(info.value)
    assert "{question}" in message
    assert "prompt" in message and "response" in message
    assert template.missing({"prompt": 1, "response": 2}) == ["question"]


def test_render_requires_a_mapping() -> None:
    with pytest.raises(TemplateError):
        PromptTemplate("{a}").render(["a"])  # type: ignore[arg-type]


def test_template_must_be_text() -> None:
    with pytest.raises(TemplateError):
        PromptTemplate(b"{a}")  # type: ignore[arg-type]


def test_template_errors_are_value_errors() -> None:
    assert issubclass(TemplateError, ValueError)
