"""Builds `transformers.LlamaForCausalLM` from `data_dir/weight_dir` (or random weights of its shape).

The harness gets a `LastTokenLM`: (input_ids [B, L], last_pos [B]) -> logits [B, vocab] at last_pos. Only the
scored position goes through lm_head: the reference computes every position's logits and reads the last,
which is the same numbers for the scored row and 32000 x L wasted multiply-adds for the others.
"""
from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Sequence

import torch
import transformers
from torch import nn

from ..errors import BenchmarkError, one_line
from ..interfaces import RaggedAttention, torch_dtype
from . import fusion, last_layer, packing, weights_check

log = logging.getLogger("benchmarks")

# Llama-2-7B (meta-llama/Llama-2-7b-hf config.json), for synthetic runs without a config.json.
LLAMA2_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    hidden_act="silu",
    rope_theta=10000.0,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)

_DTYPE_KW = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


class LastTokenLM(nn.Module):
    """Causal LM returning only the logits of one position per row.

    Tokens to the right of last_pos cannot change the result (causal attention), so callers may right-pad.
    After `enable_packing()`, input_ids [1, T] with last_pos [P], P > 1, is a pack: P prompts back to back,
    prompt k ending at last_pos[k] (the last at T-1), each scored as if alone (see packing.py). Padding of a
    pack comes as prompts no longer than the longest (benchmarks.toolkits.PadRight): none exceeds
    max_prompt_tokens.
    """

    def __init__(self, lm: nn.Module, full_logits: bool = False):
        super().__init__()
        self.body = lm.model
        self.lm_head = lm.lm_head
        # full_logits: the reference's plain call, `lm(input_ids).logits` (lm_head over every position, the
        # model's default cache handling), then the scored row; for the reference scenario.
        self.full_logits = full_logits
        self.lm = lm if full_logits else None
        self.packing = False
        self.max_prompt_tokens: int | None = None
        self.packed_attention: RaggedAttention = packing.masked_attention
        self.prune_last = False

    def enable_packing(self, max_prompt_tokens: int | None = None, attention: RaggedAttention | None = None) -> None:
        """Switches attention to the packing-aware implementation (one-prompt calls stay on SDPA).
        max_prompt_tokens: no prompt of any pack is longer (padding comes as prompts no longer than that);
        a tiled kernel then launches tiles for that length instead of the whole pack's. None: the pack's
        length. attention: the vendor's ragged attention kernel; None: the masked fallback of packing.py."""
        packing.register()
        self.body.config._attn_implementation = packing.ATTN_NAME
        self.packing = True
        self.max_prompt_tokens = max_prompt_tokens
        self.packed_attention = attention or packing.masked_attention

    def quantize_fp8(self, fast_accum: bool = True) -> int:
        """Precision fp8: the decoder's projections in float8 e4m3, per-row scales (see fp8.py); the embedding,
        norms, rotary, attention and lm_head stay in the model's dtype. Returns the layers replaced."""
        from . import fp8

        return fp8.quantize_decoder(self.body, fast_accum)

    def fuse_projections(self) -> None:
        """One GEMM for q/k/v and one for gate/up in compiled graphs, weights shared (see fusion.py)."""
        fusion.fuse_projections(self.body)

    def prune_last_layer(self) -> None:
        """In packs, the last decoder layer computes only the scored rows (see last_layer.py)."""
        if not self.packing:
            raise BenchmarkError("config key 'prune_last_layer': needs pack_tokens > 0 (it acts on packs)")
        self.prune_last = True

    def architecture(self) -> dict[str, int]:
        """The model's shape as result.json records it (and the verdict checks against Llama-2-7B)."""
        c = self.body.config
        return {"layers": len(self.body.layers), "hidden": c.hidden_size, "heads": c.num_attention_heads,
                "kv_heads": c.num_key_value_heads or c.num_attention_heads, "intermediate": c.intermediate_size,
                "vocab": c.vocab_size,
                "parameters": sum(p.numel() for p in self.parameters())}

    def forward_flops(self, prompt_lengths: Sequence[int]) -> float:
        """Matmul FLOPs (2 per multiply-add) this model executes for one forward over prompts of these lengths
        (one prompt, or a pack), in its current state: every projection and MLP row, causal attention scores and
        values (n(n+1)/2 query-key pairs per prompt and head), lm_head for the scored row of each prompt only,
        and with prune_last_layer in a pack the last layer's queries, attention, o_proj and MLP for the scored
        rows only. Norms, rotary, SiLU and softmax are not matmuls and not counted (<1% here)."""
        c = self.body.config
        h, inter, vocab = c.hidden_size, c.intermediate_size, c.vocab_size
        heads = c.num_attention_heads
        kv = (c.num_key_value_heads or heads) * (h // heads)
        layers = len(self.body.layers)
        pruned = self.packing and self.prune_last and len(prompt_lengths) > 1
        total = 0.0
        for n in prompt_lengths:
            full = 2 * n * (h * h + 2 * h * kv + h * h + 3 * h * inter) + 2 * 2 * h * n * (n + 1) / 2
            last = (2 * (h * h + h * h + 3 * h * inter) + 2 * n * 2 * h * kv + 2 * 2 * h * n) if pruned else full
            total += (layers - 1) * full + last + 2 * h * vocab
        return total

    def forward(self, input_ids: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
        if self.packing and input_ids.shape[0] == 1 and last_pos.shape[0] > 1:
            cu, position_ids = packing.pack_layout(input_ids, last_pos)
            bound = self.max_prompt_tokens or input_ids.shape[1]
            kwargs = dict(position_ids=position_ids, use_cache=False, cu_seq_lens_q=cu, max_length_q=bound,
                          packed_attention=self.packed_attention)
            if self.prune_last:
                return self.lm_head(last_layer.forward_scored_rows(self.body, input_ids, last_pos, **kwargs)[0])
            hidden = self.body(input_ids=input_ids, **kwargs).last_hidden_state
            return self.lm_head(hidden[0, last_pos])
        if self.full_logits:
            logits = self.lm(input_ids).logits
            return logits[torch.arange(logits.shape[0], device=logits.device), last_pos]
        hidden = self.body(input_ids=input_ids, use_cache=False).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.lm_head(hidden[rows, last_pos])


def read_model_config(weight_dir: Path) -> transformers.LlamaConfig | None:
    path = weight_dir / "config.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # ValueError: also a 5,000-digit integer
        raise BenchmarkError(f"{path}: not valid JSON ({one_line(exc, 200)}); re-export the weights in Hugging Face "
                             "format") from None
    if not isinstance(raw, dict) or raw.get("model_type") != "llama":
        found = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
        raise BenchmarkError(
            f"{path}: model_type is {found!r}, expected 'llama'; weight_dir must hold a Llama-2 model in "
            "Hugging Face format (convert Meta's weights with transformers' convert_llama_weights_to_hf.py)"
        )
    weights_check.check_config_values(raw, path)
    try:
        return transformers.LlamaConfig.from_pretrained(weight_dir)
    except Exception as exc:  # noqa: BLE001 - transformers' config validation raises its own error types
        raise BenchmarkError(f"{path}: not a valid Llama config ({one_line(exc, 300)})") from None


def _load_checked(weight_dir: Path, dtype: torch.dtype, **config_overrides: int) -> nn.Module:
    """from_pretrained, refusing weights that do not fill the Llama model: transformers would initialise
    missing tensors at random and run, which measures a different model and reports a wrong accuracy."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors ships with transformers
        SafetensorError = OSError  # noqa: N806
    pickles = sorted(weight_dir.glob("*.bin"))
    if pickles and not any(weight_dir.glob("*.safetensors")):
        log.info("loading pickle weights %s with weights-only loading (torch.load(weights_only=True)): tensors "
                 "only, no code", ", ".join(p.name for p in pickles[:3]))
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # its multi-line load report: we raise one line instead
    try:
        # Loaded in the run's dtype on the host, then moved: the device never holds an fp32 copy.
        # ignore_mismatched_sizes only turns transformers' exception into a report we check right after.
        lm, info = transformers.LlamaForCausalLM.from_pretrained(
            weight_dir, attn_implementation="sdpa", output_loading_info=True, weights_only=True,
            ignore_mismatched_sizes=True, **{_DTYPE_KW: dtype}, **config_overrides
        )
    except torch.OutOfMemoryError:
        raise
    except pickle.UnpicklingError as exc:
        name = pickles[0] if len(pickles) == 1 else weight_dir
        raise BenchmarkError(f"{name}: refused by weights-only loading (torch.load(weights_only=True)): the pickle "
                             f"holds more than tensors ({one_line(exc, 120)}); it may run code, so it is never "
                             "loaded: use safetensors weights (convert_llama_weights_to_hf.py)") from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise BenchmarkError(f"{weight_dir}: cannot load the weights ({one_line(exc, 300)}); "
                             "re-export Llama-2-7B in Hugging Face format into this folder") from None
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise BenchmarkError(
            f"{weight_dir}: the weight files lack {len(missing)} tensor(s) of the Llama model (e.g. "
            f"{', '.join(missing[:3])}); they are not this model's weights (convert Llama-2-7B with "
            "transformers' convert_llama_weights_to_hf.py, or set synthetic_weights: true for a speed-only run)"
        )
    weights_check.check_loading_info(weight_dir, info, config_overrides.get("num_hidden_layers"))
    return lm


def parameter_count(weight_dir: Path, layers: int | None = None, synthetic: bool = True) -> int | None:
    """Parameters of the Llama in weight_dir/config.json, first `layers` layers only; without config.json,
    Llama-2-7B's for a synthetic run (what build_model builds). None when config.json is absent from a run
    that needs it, or not a readable Llama config (loading the model then names the problem).

    Read from the JSON, not by building the model: this runs before the run to refuse one that cannot fit."""
    raw: dict = dict(LLAMA2_7B)
    path = weight_dir / "config.json"
    if path.is_file():
        try:
            given = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(given, dict) or given.get("model_type") != "llama":
            return None
        raw.update(given)
    elif not synthetic:
        return None
    h, inter, vocab = int(raw["hidden_size"]), int(raw["intermediate_size"]), int(raw["vocab_size"])
    heads = int(raw["num_attention_heads"])
    kv = int(raw.get("num_key_value_heads") or heads) * (h // heads)
    n = int(raw["num_hidden_layers"]) if layers is None else min(layers, int(raw["num_hidden_layers"]))
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h  # q,o + k,v + gate/up/down + two RMSNorms
    head = 0 if raw.get("tie_word_embeddings") else vocab * h
    return vocab * h + n * per_layer + h + head


LOAD_PATHS = ("direct", "reference")


def build_model(weight_dir: Path, precision: str, device: torch.device, synthetic: bool, seed: int,
                layers: int | None = None, load_path: str = "direct") -> LastTokenLM:
    """load_path "direct": loaded in the run's dtype on the host, then moved to the device; lm_head only for the
    scored position. "reference": the reference's load path, from_pretrained in fp32, moved to the device, then
    cast to the run's dtype (`.half()` / `.bfloat16()`: under transformers 5 that also casts the rotary
    embedding's inv_freq buffer, which the direct load keeps in fp32), and the reference's plain call
    (full_logits). Synthetic weights follow the same steps from a random fp32 init."""
    if load_path not in LOAD_PATHS:
        raise BenchmarkError(f"load_path {load_path!r}: expected one of {', '.join(LOAD_PATHS)}")
    reference = load_path == "reference"
    dtype = torch_dtype(precision)
    target = dtype
    if reference:
        dtype = torch.float32
    config = read_model_config(weight_dir)
    # model_layers: the first N decoder layers; from_pretrained then leaves the others' weights unread.
    shrink = {} if layers is None else {"num_hidden_layers": layers}
    if synthetic:
        config = config or transformers.LlamaConfig(**LLAMA2_7B)
        for key, value in shrink.items():
            setattr(config, key, value)
        torch.manual_seed(seed)
        # Built directly on the device in the run's dtype: random init of 7B params is fast there.
        with torch.device(device):
            lm = transformers.LlamaForCausalLM._from_config(config, attn_implementation="sdpa", **{_DTYPE_KW: dtype})
    else:
        if config is None:
            raise BenchmarkError(
                f"{weight_dir}/config.json not found; weight_dir must hold Llama-2-7B in Hugging Face format "
                "(or set synthetic_weights: true for a speed-only run)"
            )
        if not any(weight_dir.glob("*.safetensors")) and not any(weight_dir.glob("*.bin")):
            raise BenchmarkError(
                f"{weight_dir}: no *.safetensors or *.bin weight files; convert the Llama-2-7B weights to "
                "Hugging Face format into this folder (or set synthetic_weights: true)"
            )
        transformers.utils.logging.disable_progress_bar()  # one line per shard is noise in CI logs
        weights_check.check_shards(weight_dir)
        weights_check.check_dtypes(weight_dir, json.loads((weight_dir / "config.json").read_text(encoding="utf-8")),
                                   weight_dir / "config.json")
        lm = _load_checked(weight_dir, dtype, **shrink)
        lm = lm.to(device)
    if reference and target != torch.float32:
        # The reference's cast: .half() (or .bfloat16()), parameters and floating-point buffers alike.
        lm = lm.half() if target == torch.float16 else lm.bfloat16()
    lm.eval()
    if reference:
        inv_freq = getattr(getattr(lm.model, "rotary_emb", None), "inv_freq", None)
        log.info("model load path: reference (from_pretrained in float32, .to(%s), cast to %s); rotary inv_freq %s",
                 device, target, "absent" if inv_freq is None else inv_freq.dtype)
    return LastTokenLM(lm, full_logits=reference).eval()
