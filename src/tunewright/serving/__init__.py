"""The OpenAI-compatible HTTP server behind `tunewright serve`, one module per noun.

`tunewright.serving.stage` is the stage's entry (what to serve, then run it); the parts live here:
`pool` (the model with its adapters and tokenizers), `worker` (the one generation thread, its
bounded queue and scheduling), `engine` (the continuous-batching decode loop), `rows` (each
generated choice's limits, stop strings, grammar and stream), `grammar` (constrained decoding),
`tools` (Hermes tool prompts and call parsing), `logprobs`, `schemas` (request validation and
OpenAI response shapes), `errors` (OpenAI error JSON), `observe` (request log, Prometheus
metrics and the middleware that feeds them), `app` (the FastAPI routes), `monitor`
(`tunewright monitor`: the request log read back) and `cli` (registers `serve` and `monitor`).
The log's record shape lives in `tunewright.request_log`.
"""
