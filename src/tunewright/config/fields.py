"""Building blocks every config section uses: the strict base class and shared value types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def one_or_many(value: Any) -> Any:
    """Let `train: data.jsonl` (or one mapping) stand for a list of one."""
    return [value] if isinstance(value, (str, dict)) else value


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
