"""One entry of `data.train` / `data.eval`: a path, or a path with its own format, column map and
message keys, so files described for other trainers (LLaMA-Factory's dataset_info.json,
Axolotl's `datasets`) load unchanged side by side."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag

from tunewright.config.fields import Section, one_or_many

DataFormat = Literal[
    "auto",
    "alpaca",
    "sharegpt",
    "openai",
    "classification",
    "code",
    "summarization",
    "preference",
    "feedback",
    "text",
]
Speaker = Literal["user", "assistant", "system", "tool", "function_call"]


class MessageKeys(Section):
    """How the file's messages name their speaker and text (sharegpt's `from`/`value` with
    `human`/`gpt` by default; OpenAI-style files use `role`/`content`)."""

    role: str = Field("from", description="Key holding each message's speaker.")
    content: str = Field("value", description="Key holding each message's text.")
    speakers: dict[str, Speaker] = Field(
        default_factory=dict,
        description="The file's speaker names -> ours (user, assistant, system, tool, "
        "function_call), e.g. {human: user, bot: assistant}; names already ours, and "
        "sharegpt's human/gpt/observation/function_call, need no entry.",
    )


class DataSource(Section):
    path: str = Field(description="A data file, folder or hub dataset id.")
    format: DataFormat = Field("auto", description="This file's format; auto: data.format.")
    columns: dict[str, str] | None = Field(
        None, description="This file's column map (ours -> yours); unset: data.columns."
    )
    messages: MessageKeys | None = Field(
        None,
        description="This file's message keys and speaker names, for sharegpt-style "
        "conversations (and the chosen/rejected messages of preference pairs).",
    )
    weight: float | None = Field(
        None,
        gt=0,
        description="data.train only: this entry's share of the training rows, applied after "
        "the checks and the split (up-sampled rows repeat; down-sampled ones are left out and "
        "counted). With every entry weighted, weights are relative; else they are fractions "
        "(summing below 1) and unweighted entries fill the rest, each row once.",
    )
    max_rows: int | None = Field(
        None,
        gt=0,
        description="data.train only: use at most this many of the entry's checked training "
        "rows (a seeded random choice; the rest are left out and counted).",
    )


def _entry_kind(value: Any) -> str:
    # Tells the union which member to try, so an entry's error is that member's alone; it also
    # picks the serializer, so a validated entry (a DataSource) must say "entry" too.
    return "entry" if isinstance(value, (dict, DataSource)) else "path"


SourceEntry = Annotated[
    Annotated[str, Tag("path")] | Annotated[DataSource, Tag("entry")],
    Discriminator(_entry_kind),
]
SourceList = Annotated[list[SourceEntry], BeforeValidator(one_or_many)]


def source_path(item: str | DataSource) -> str:
    return item if isinstance(item, str) else item.path
