"""What a run's numbers depend on besides the data and the model's shape: the tokenizer and the model config
fields that change the arithmetic. Each gets a fingerprint (result.json `fingerprint`, compared by
`benchmarks.measure.provenance.same_measurement`) and is checked against Llama-2-7B's (a verdict reason each).

* tokenizer: sha256 of its vocabulary (every id and its token) and of the ids it gives a fixed probe text.
  Another tokenizer with twice the tokens, or the same one with the ids of "A" and "B" swapped (which moves
  the labels of the questions), changes it; the same tokenizer saved by another transformers version does not.
* model config: rope (theta, type, scaling), rms_norm_eps, hidden_act, max_position_embeddings,
  tie_word_embeddings, attention/MLP biases, head_dim, pretraining_tp, as transformers reads them
  (config.json's defaults applied): a config.json that lies about them moves every logit.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

# A text with the pieces MMLU prompts are made of: the header, a question, choices, answers, digits, quotes,
# and some non-ASCII (byte fallback).
PROBE = ("The following are multiple choice questions (with answers) about  abstract algebra.\n\n"
         "Find the degree for the given field extension Q(sqrt(2), sqrt(3)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\n"
         "Answer: B\n\nIf \"a, b\" stands for a + b, what is 1,234.5 - 67/8?\nAnswer: Ä ö ß é 漢字 — ½")

# identity.tokenizer_fingerprint of the Llama-2 tokenizer (shared/data/llama2_tokenizer: Meta's
# tokenizer.model, sha256 9e556afd..., in Hugging Face format).
LLAMA2_TOKENIZER_SHA256 = "b8ab34cd306da66f6f4fd342bd2b0d6c7f1cd142b600943af24826e6a9e06f8c"

# Llama-2-7B's config.json (meta-llama/Llama-2-7b-hf) for the fields that change the arithmetic; head_dim is
# hidden_size / num_attention_heads.
LLAMA2_ARITHMETIC = {"rope_theta": 10000.0, "rope_type": "default", "rope_scaling": None, "rms_norm_eps": 1e-05,
                     "hidden_act": "silu", "max_position_embeddings": 4096, "tie_word_embeddings": False,
                     "attention_bias": False, "mlp_bias": False, "head_dim": "hidden_size / heads",
                     "pretraining_tp": 1}


def tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256()
    vocab = tokenizer.get_vocab()
    for token, index in sorted(vocab.items(), key=lambda item: (item[1], item[0])):
        h.update(f"{index}\t{token}\n".encode("utf-8", "surrogatepass"))
    h.update(json.dumps(list(tokenizer(PROBE)["input_ids"])).encode())
    return h.hexdigest()


def model_arithmetic(config: Any) -> dict[str, Any]:
    """The fields of a transformers LlamaConfig that change the arithmetic, as the model will use them."""
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if not rope:  # transformers 4.x: rope_theta and rope_scaling apart
        rope = {"rope_theta": getattr(config, "rope_theta", None), **(getattr(config, "rope_scaling", None) or {})}
    theta = rope.pop("rope_theta", None)
    rope_type = rope.pop("rope_type", None) or rope.pop("type", None) or "default"
    heads = getattr(config, "num_attention_heads", None) or 1
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return {"rope_theta": None if theta is None else float(theta), "rope_type": rope_type,
            "rope_scaling": rope or None, "rms_norm_eps": float(config.rms_norm_eps),
            "hidden_act": config.hidden_act, "max_position_embeddings": config.max_position_embeddings,
            "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
            "attention_bias": bool(getattr(config, "attention_bias", False)),
            "mlp_bias": bool(getattr(config, "mlp_bias", False)),
            "head_dim": head_dim, "pretraining_tp": getattr(config, "pretraining_tp", 1),
            "hidden_size": config.hidden_size, "heads": heads}


def arithmetic_deviations(found: Mapping[str, Any]) -> list[str]:
    """`name=value (expected value)` for every field that is not Llama-2-7B's."""
    out = []
    for key, expected in LLAMA2_ARITHMETIC.items():
        value = found.get(key)
        if key == "head_dim":
            expected = found.get("hidden_size", 0) // max(1, found.get("heads") or 1)
        same = (value == expected if not isinstance(expected, float)
                else isinstance(value, (int, float)) and abs(value - expected) <= 1e-9 * abs(expected))
        if not same:
            out.append(f"{key}={value!r} (expected {expected!r})")
    return out
