"""The OpenAI-compatible HTTP server behind `tunewright serve`, one module per noun.

`tunewright.serve` is the stage's entry (what to serve, then run it); the parts live here:
`pool` (the model with its adapters and tokenizers), `worker` (the one generation thread and its
batching), `schemas` (request validation and OpenAI response shapes), `errors` (OpenAI error
JSON), `observe` (request log, Prometheus metrics and the middleware that feeds them) and `app`
(the FastAPI routes).
"""
