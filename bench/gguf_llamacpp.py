"""llama.cpp itself against transformers on our GGUF exports: tokens, logits and greedy replies.

    pip install 'tunewright[llamacpp]'   # llama-cpp-python: compiles llama.cpp (minutes)
    python bench/gguf_llamacpp.py [--model NAME_OR_FOLDER] [--quant f16 q8_0 ...] [--new-tokens 16]

The export's own parity check loads the GGUF back with transformers; this script asks the runtime
users actually run. For each type it writes the model (default: the embedded SmolLM2-135M-Instruct,
or a merged run folder such as runs/<name>/export/merged) as GGUF with tunewright's writer, then on
the probe prompts (`exporting/parity.py`'s built-in ones, rendered with the model's chat template):
- tokens: llama.cpp's tokenisation of the rendered prompt (special tokens parsed) against the
  transformers tokenizer's;
- logits: llama.cpp's logits at the last prompt position against the float32 transformers model's
  (max absolute difference) and whether both pick the same next token;
- greedy: --new-tokens greedy tokens from llama.cpp and from the float32 model, compared token by
  token (identical replies, and the mean length of the common prefix).
One line per type, then the figures as a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tunewright.exporting.gguf_file import LLAMA_CPP_INSTALL, write_gguf
from tunewright.exporting.parity import BUILTIN_PROMPTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name or folder")
    parser.add_argument("--quant", nargs="+", default=["f16", "q8_0", "q4_0"], help="GGUF types")
    parser.add_argument("--new-tokens", type=int, default=16, help="greedy tokens per prompt")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    args = parser.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print(f"llama-cpp-python is not installed. {LLAMA_CPP_INSTALL}", file=sys.stderr)
        return 2

    from tunewright.generate import stop_token_ids
    from tunewright.models import load_causal_lm, load_tokenizer, resolve_model

    source = resolve_model(args.model)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, "float32").eval()
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in BUILTIN_PROMPTS
    ]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    stops = set(stop_token_ids(tokenizer))
    reference = [reference_run(model, i, stops, args.new_tokens) for i in ids]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quant in args.quant:
            path = Path(tmp) / f"model-{quant}.gguf"
            eot = [t for t in ("<|im_end|>", "<|eot_id|>", "<|end|>") if t in tokenizer.get_vocab()]
            write_gguf(source, path, quant, name="bench", end_of_turn=eot)
            started = time.perf_counter()
            row = compare(path, prompts, ids, reference, stops, args)
            row.update(
                quant=quant, mb=path.stat().st_size / 1e6, seconds=time.perf_counter() - started
            )
            rows.append(row)
            print(
                f"{quant}: tokens identical {row['tokens_same']}/{len(ids)}, max logit diff "
                f"{row['logit_diff']:.3g}, same next token {row['next_same']}/{len(ids)}, greedy "
                f"replies identical {row['greedy_same']}/{len(ids)} (common prefix "
                f"{row['prefix']:.1f} of {args.new_tokens} tokens), {row['mb']:.0f} MB, "
                f"{row['seconds']:.1f} s"
            )
    print(f"\nllama.cpp vs transformers (float32), {args.model}, {len(ids)} probe prompts:\n")
    print(
        "| type | size MB | prompt tokens identical | max logit diff (last prompt token) "
        "| greedy replies identical | mean common prefix |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['quant']} | {r['mb']:.0f} | {r['tokens_same']}/{len(ids)} | "
            f"{r['logit_diff']:.3g} | {r['greedy_same']}/{len(ids)} | "
            f"{r['prefix']:.1f}/{args.new_tokens} |"
        )
    return 0


def reference_run(model: Any, ids: list[int], stops: set[int], new_tokens: int) -> dict[str, Any]:
    """The float32 transformers model: logits at the last prompt token and greedy token ids."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()
        out = model.generate(
            input_ids=torch.tensor([ids]),
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=sorted(stops),
            pad_token_id=sorted(stops)[0],
        )[0, len(ids) :].tolist()
    return {"logits": logits, "greedy": [t for t in out if t not in stops]}


def compare(
    path: Path,
    prompts: list[str],
    ids: list[list[int]],
    reference: list[dict[str, Any]],
    stops: set[int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(path), n_ctx=1024, logits_all=True, n_threads=args.threads, verbose=False
    )
    tokens_same = next_same = greedy_same = 0
    diffs, prefixes = [], []
    for text, prompt_ids, ref in zip(prompts, ids, reference, strict=True):
        tokens_same += llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) == prompt_ids
        llm.reset()
        llm.eval(prompt_ids)
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        diffs.append(float(np.abs(logits - ref["logits"]).max()))
        next_same += int(logits.argmax() == ref["logits"].argmax())
        greedy = []
        for token in llm.generate(prompt_ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            if token in stops or len(greedy) >= args.new_tokens:
                break
            greedy.append(token)
        greedy_same += greedy == ref["greedy"]
        prefix = 0
        while (
            prefix < min(len(greedy), len(ref["greedy"]))
            and greedy[prefix] == ref["greedy"][prefix]
        ):
            prefix += 1
        prefixes.append(prefix)
    return {
        "tokens_same": tokens_same,
        "logit_diff": max(diffs),
        "next_same": next_same,
        "greedy_same": greedy_same,
        "prefix": sum(prefixes) / len(prefixes),
    }


if __name__ == "__main__":
    sys.exit(main())
