"""Test helpers that are not tests: small projects (projects.py), child processes that cannot
block or outlive their test (processes.py) and the OpenAI stand-in server (openai_stub.py)."""
