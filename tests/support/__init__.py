"""Test helpers that are not tests: the OpenAI stand-in server."""
