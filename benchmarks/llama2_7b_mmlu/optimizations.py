"""The case's named optimizations of the inference pass, as the harness sees them (see
benchmarks.interfaces.Optimization). Each switches on a method of the model (model.py); the arithmetic
lives in packing.py, last_layer.py and fusion.py. docs/results/README.md has what each one measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import doc
from ..errors import BenchmarkError
from ..interfaces import Optimization, OptimizationContext, ragged_attention_of


@dataclass(frozen=True)
class PackOptions:
    pack_tokens: int = doc(
        "named optimization for the inference pass (a vendor YAML switches it on): score consecutive prompts "
        "packed back to back in one forward of at most this many tokens, each attending only to itself with "
        "its own positions (batch-1 semantics, other GEMM shapes); 0: one prompt per forward (the reference)",
        default=0, bounds=(0, 2**24, "0 (off) or up to 2**24 tokens"),
    )

    def __post_init__(self) -> None:
        if self.pack_tokens < 0:
            raise BenchmarkError(f"config key 'pack_tokens': got {self.pack_tokens}; expected 0 (one prompt per "
                                 "forward) or a positive token budget, e.g. 4096")


class PackTokens(Optimization):
    name = "pack_tokens"
    Options = PackOptions

    def check(self, options: PackOptions, run: Any, vendor: Any = None) -> None:
        if vendor is not None and options.pack_tokens:
            ragged_attention_of(vendor, run.effective_precision)  # a kernel the precision lacks fails here

    def pack_tokens(self, options: PackOptions) -> int:
        return options.pack_tokens

    def apply(self, model: Any, options: PackOptions, ctx: OptimizationContext) -> None:
        # Packs hold whole prompts, and padding comes as prompts no longer: none exceeds the longest.
        model.enable_packing(ctx.longest_prompt, ragged_attention_of(ctx.vendor, ctx.precision))

    def labels(self, options: PackOptions) -> list[str]:
        return [f"pack_tokens={options.pack_tokens}"]

    def memory_hints(self, options: PackOptions) -> list[str]:
        n = options.pack_tokens
        return [f"--set pack_tokens={n // 2} (or 0: one prompt per forward; packs hold up to {n} tokens)"]


@dataclass(frozen=True)
class PruneOptions:
    prune_last_layer: bool = doc(
        "named optimization of packs (no effect with pack_tokens 0): in a pack, the last decoder layer computes "
        "queries, attention output and MLP only for the scored rows (keys/values for all rows), the same "
        "arithmetic for every scored logit with 1/32 less GEMM work",
        default=False,
    )


class PruneLastLayer(Optimization):
    name = "prune_last_layer"
    Options = PruneOptions
    needs = ("pack_tokens",)

    def apply(self, model: Any, options: PruneOptions, ctx: OptimizationContext) -> None:
        model.prune_last_layer()


@dataclass(frozen=True)
class Fp8Options:
    fp8_fast_accum: bool = doc(
        "precision fp8 only: the fp8 GEMMs use the device's fast accumulation (Hopper: no periodic promotion to "
        "fp32 inside the tensor-core loop; torchao's inference default), faster and slightly less exact",
        default=True,
    )


class Fp8Linears(Optimization):
    """Precision fp8: after the validation pass (the plain model at fp16), the decoder's seven projections are
    quantized to float8 e4m3 with per-row scales (fp8.py); on whenever the run's precision is fp8."""

    name = "fp8_linears"
    Options = Fp8Options
    precisions = ("fp8",)

    def apply(self, model: Any, options: Fp8Options, ctx: OptimizationContext) -> None:
        model.quantize_fp8(options.fp8_fast_accum)

    def labels(self, options: Fp8Options) -> list[str]:
        return ["fp8_linears=e4m3 per-row" + (", fast accumulation" if options.fp8_fast_accum else "")]


@dataclass(frozen=True)
class FuseOptions:
    fuse_projections: bool = doc(
        "named optimization for the compiled inference pass: q/k/v and gate/up projections as one GEMM each "
        "(weights shared with the plain model, no extra memory; eager passes unchanged)",
        default=False,
    )


class FuseProjections(Optimization):
    name = "fuse_projections"
    Options = FuseOptions
    needs_compiler = True

    def apply(self, model: Any, options: FuseOptions, ctx: OptimizationContext) -> None:
        model.fuse_projections()


# Applied in this order: packing first (pruning acts on packs), fp8 before fusion (which fuses the fp8 weights
# and their scales), fusion last.
OPTIMIZATIONS = (PackTokens(), PruneLastLayer(), Fp8Linears(), FuseProjections())
