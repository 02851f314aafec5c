"""The one config for the whole workflow.

`schema` declares every section (each field documented once, in its `description`); `load`
reads YAML and overrides and validates; `messages` turns pydantic errors into one line per YAML
key; `doc` writes the starter YAML and the README's reference from the schema. The names most
callers need are re-exported here.
"""

from tunewright.config.load import config_hash, config_to_dict, config_to_yaml, load_config
from tunewright.config.messages import describe_errors
from tunewright.config.openai_section import OpenAISection
from tunewright.config.schema import (
    Config,
    DataSection,
    DeepSpeedSection,
    EvalSection,
    ExportSection,
    FsdpSection,
    LoraSection,
    ModelSection,
    ServeSection,
    TrainSection,
)

__all__ = [
    "Config",
    "DataSection",
    "DeepSpeedSection",
    "EvalSection",
    "ExportSection",
    "FsdpSection",
    "LoraSection",
    "ModelSection",
    "OpenAISection",
    "ServeSection",
    "TrainSection",
    "config_hash",
    "config_to_dict",
    "config_to_yaml",
    "describe_errors",
    "load_config",
]
