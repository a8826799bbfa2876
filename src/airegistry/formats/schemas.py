"""The dataset formats of FORMATS.md as msgspec types.

The types *are* the validation: a row is valid for a format exactly when msgspec can
decode it into the format's Struct (plus the whitespace-only rule, which msgspec cannot
express cheaply, see :mod:`airegistry.formats.texts`). Rules spanning several fields live
in ``__post_init__`` so that msgspec reports them with the row's JSON path.

Unknown keys are ignored (Structs do not forbid them), which is what "extra keys allowed"
in FORMATS.md means. Structs are declared ``gc=False``: decoded rows can never form
reference cycles, and keeping millions of short-lived rows out of the cyclic garbage
collector's bookkeeping is a measurable part of the decode cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

TECHNIQUES: tuple[str, ...] = ("sft", "dpo", "rlaif", "rlvr")
FILE_TYPES: tuple[str, ...] = ("jsonl", "json", "csv", "parquet")

# A required text field: non-empty here, non-whitespace checked after decoding
# (a regex ``pattern`` constraint costs ~25% of the decode time).
NonEmpty = Annotated[str, Meta(min_length=1)]

ChatRole = Literal["system", "developer", "user", "assistant", "tool"]


# ---------------------------------------------------------------- OpenAI-style messages
class TextPart(Struct, tag_field="type", tag="text", gc=False):
    text: NonEmpty


class ImageUrlPart(Struct, tag_field="type", tag="image_url", gc=False):
    image_url: dict[str, Any]


class InputAudioPart(Struct, tag_field="type", tag="input_audio", gc=False):
    input_audio: dict[str, Any]


class FilePart(Struct, tag_field="type", tag="file", gc=False):
    file: dict[str, Any]


class RefusalPart(Struct, tag_field="type", tag="refusal", gc=False):
    refusal: str


ContentPart = TextPart | ImageUrlPart | InputAudioPart | FilePart | RefusalPart


class ChatMessage(Struct, gc=False):
    role: ChatRole
    content: NonEmpty | Annotated[list[ContentPart], Meta(min_length=1)]


Messages = Annotated[list[ChatMessage], Meta(min_length=1)]
# "str or messages" of FORMATS.md
Text = NonEmpty | Messages


# ---------------------------------------------------------------- formats
class PromptCompletion(Struct, gc=False):
    prompt: Text
    completion: Text


class InputOutput(Struct, gc=False):
    input: NonEmpty
    output: NonEmpty


class Chat(Struct, gc=False):
    messages: Messages


class ChatSFT(Struct, gc=False):
    """Chat rows used for SFT must contain something to learn from."""

    messages: Messages

    def __post_init__(self) -> None:
        for m in self.messages:
            if m.role == "assistant":
                return
        raise ValueError("SFT chat rows need at least one `assistant` message")


class ConverseBlock(Struct, gc=False):
    text: NonEmpty | UnsetType = UNSET
    image: dict[str, Any] | UnsetType = UNSET
    video: dict[str, Any] | UnsetType = UNSET

    def __post_init__(self) -> None:
        n = (self.text is not UNSET) + (self.image is not UNSET) + (self.video is not UNSET)
        if n != 1:
            raise ValueError("a content block needs exactly one of `text`, `image`, `video`")


ConverseContent = Annotated[list[ConverseBlock], Meta(min_length=1)]


class ConverseSystem(Struct, gc=False):
    text: NonEmpty


class ConverseMessage(Struct, gc=False):
    role: Literal["user", "assistant"]
    content: ConverseContent


class Converse(Struct, gc=False):
    messages: Annotated[list[ConverseMessage], Meta(min_length=2)]
    schemaVersion: str | UnsetType = UNSET
    system: list[ConverseSystem] | UnsetType = UNSET


class Candidate(Struct, gc=False):
    content: ConverseContent
    preferenceLabel: Literal["preferred", "non-preferred"]


class ConversePreferenceMessage(Struct, gc=False):
    role: Literal["user", "assistant"]
    content: ConverseContent | UnsetType = UNSET
    candidates: Annotated[list[Candidate], Meta(min_length=2)] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if (self.content is UNSET) == (self.candidates is UNSET):
            raise ValueError("a message needs exactly one of `content`, `candidates`")
        if self.candidates is not UNSET:
            if self.role != "assistant":
                raise ValueError("only `assistant` messages may have `candidates`")
            labels = {c.preferenceLabel for c in self.candidates}
            if labels != {"preferred", "non-preferred"}:
                raise ValueError(
                    "`candidates` need at least one `preferred` and one `non-preferred`"
                )


class ConversePreference(Struct, gc=False):
    messages: Annotated[list[ConversePreferenceMessage], Meta(min_length=2)]
    schemaVersion: str | UnsetType = UNSET
    system: list[ConverseSystem] | UnsetType = UNSET

    def __post_init__(self) -> None:
        for m in self.messages:
            if m.candidates is not UNSET:
                return
        raise ValueError("an `assistant` message with `candidates` is required")


class Preference(Struct, gc=False, kw_only=True):
    # Declared in the usual key order of the files: msgspec matches in-order keys fastest.
    prompt: Text | UnsetType = UNSET
    input: Text | UnsetType = UNSET
    chosen: Text
    rejected: Text

    def __post_init__(self) -> None:
        if self.prompt is UNSET and self.input is UNSET:
            raise ValueError("Object missing required field `prompt` (or `input`)")


class PromptOnly(Struct, gc=False):
    prompt: Text


class Verl(Struct, gc=False):
    prompt: Text
    data_source: str | UnsetType | None = UNSET
    ability: str | UnsetType | None = UNSET
    reward_model: dict[str, Any] | UnsetType | None = UNSET
    extra_info: dict[str, Any] | UnsetType | None = UNSET


class Sample(Struct, gc=False):
    completion: NonEmpty
    score: float


class PromptSamples(Struct, gc=False):
    prompt: NonEmpty
    samples: Annotated[list[Sample], Meta(min_length=1)]


class GenQA(Struct, gc=False):
    query: NonEmpty
    response: str | UnsetType | None = UNSET
    system: str | UnsetType | None = UNSET
    metadata: Any = UNSET
    images: list[Any] | UnsetType | None = UNSET


# ---------------------------------------------------------------- the format table
@dataclass(frozen=True)
class FormatSpec:
    """One row of the FORMATS.md table.

    ``csv_required``/``csv_optional`` are set only for the flat formats (the only ones a
    CSV file may hold); for ``preference`` one of ``prompt``/``input`` is required, which
    ``csv_alternatives`` expresses.
    """

    name: str
    type: type
    techniques: tuple[str, ...]
    sft_type: type | None = None
    csv_required: tuple[str, ...] = ()
    csv_optional: tuple[str, ...] = ()
    csv_alternatives: tuple[str, ...] = ()

    @property
    def flat(self) -> bool:
        return bool(self.csv_required)

    def type_for(self, technique: str | None) -> type:
        return self.sft_type if technique == "sft" and self.sft_type is not None else self.type


FORMATS: dict[str, FormatSpec] = {
    f.name: f
    for f in (
        FormatSpec(
            "prompt_completion",
            PromptCompletion,
            ("sft",),
            csv_required=("prompt", "completion"),
        ),
        FormatSpec("input_output", InputOutput, ("sft",), csv_required=("input", "output")),
        FormatSpec("chat", Chat, ("sft", "rlaif", "rlvr"), sft_type=ChatSFT),
        FormatSpec("converse", Converse, ("sft",)),
        FormatSpec(
            "preference",
            Preference,
            ("dpo",),
            csv_required=("chosen", "rejected"),
            csv_alternatives=("prompt", "input"),
        ),
        FormatSpec("converse_preference", ConversePreference, ("dpo",)),
        FormatSpec("prompt_only", PromptOnly, ("rlaif", "rlvr"), csv_required=("prompt",)),
        FormatSpec("verl", Verl, ("rlvr", "rlaif")),
        FormatSpec("prompt_samples", PromptSamples, ("rlvr",)),
        FormatSpec(
            "genqa",
            GenQA,
            (),
            csv_required=("query",),
            csv_optional=("response", "system"),
        ),
    )
}

TECHNIQUE_FORMATS: dict[str, tuple[str, ...]] = {
    t: tuple(name for name, f in FORMATS.items() if t in f.techniques) for t in TECHNIQUES
}


def allowed_formats(technique: str | None) -> tuple[str, ...]:
    """Formats a dataset registered for ``technique`` may use (all of them for ``None``)."""
    return tuple(FORMATS) if technique is None else TECHNIQUE_FORMATS[technique]


_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def decoder_for(tp: type) -> msgspec.json.Decoder[Any]:
    """A cached typed decoder (building one compiles the type, which is not free)."""
    dec = _DECODERS.get(tp)
    if dec is None:
        dec = _DECODERS[tp] = msgspec.json.Decoder(tp)
    return dec
