"""The OpenAI fine-tuning backend (`train.backend: openai`).

OpenAI stops accepting new fine-tuning jobs on 2027-01-06; until then this package checks data
the way OpenAI's data-preparation guide does, submits and follows jobs, and stores everything in
`<run>/openai/`, so the same data moves to an open model with `train.backend: local`.

Modules: `settings` (the `openai` config section), `check` (file checks), `rows` (the shape of
one row), `tokens` (token counts, context limits, epochs and billing), `convert` (prepared
records -> OpenAI JSONL), `client` (API key, client, error mapping), `submit` (the stage) and
`jobs` (following a job and keeping the run folder in step with it).
"""
