"""tunewright: from raw examples to a fine-tuned, evaluated, served language model."""

__version__ = "0.1.0"
