"""The toolkit contract: what adapts the case's plain model callable for fast inference (compile, graphs,
padding), and what it reports."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

# The model callable of a case: (input_ids [B, L] int64, last_pos [B] int64) -> logits [B, vocab].
# Row b's logits are those of position last_pos[b]. The model is causal, so token ids to the right of
# last_pos (padding) do not change the result: a toolkit may right-pad lengths to reuse compiled shapes.
# When an active optimization packs prompts (`Optimization.pack_tokens` > 0) the inference pass also calls
# it with a pack: input_ids [1, T] holding P > 1 prompts back to back, last_pos [P] the last position of
# each (the last is T - 1), logits [P, vocab] each as if its prompt ran alone. A toolkit that right-pads a
# pack appends the padding as more prompts, none longer than the run's longest prompt
# (benchmarks.toolkits.PadRight does): the model may assume no prompt of a pack is longer than that (the
# packing optimization's `apply` is told the longest prompt through `OptimizationContext`).
ModelFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class ToolkitReport:
    """What a toolkit did, for the result file.

    name: the toolkit name as configured. recompiles: compilations that happened after `prepare`
    returned (a count >= 0; anything but 0 makes the run INVALID). graph_recordings: CUDA graphs recorded
    after `prepare` returned (None: none can be, or unknown; > 0 makes an optimized run INVALID). optimizations: the named
    optimizations in effect. details: anything else worth recording (compile options, graph counts);
    JSON-serializable, it goes into result.json.
    """

    name: str
    recompiles: int = 0
    optimizations: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    # CUDA graphs recorded after `prepare` returned; None when the toolkit records none or cannot tell.
    graph_recordings: int | None = None
    # Whether the compile found inductor's on-disk FX graph cache cold or warm (benchmarks.toolkits.cache_state:
    # "state" cold|warm|partial|none, the hit/miss counts, the cache folder); None when the toolkit compiles nothing.
    # A warm cache is reported, never hidden: compile time counts in p_infer_whole.
    compile_cache: Mapping[str, Any] | None = None


@runtime_checkable
class Toolkit(Protocol):
    """Adapts the case's plain model callable for fast inference (compile, graphs, padding...).

    A toolkit is a class (a `ToolkitFactory`) constructed as `Toolkit(options, vendor)`: `options` is the
    vendor's configured `Options` instance (the same object `Vendor.configure` received) and `vendor` the
    Vendor, e.g. for `vendor.device()` and `vendor.synchronize()`. One instance serves one run.
    `benchmarks.toolkits` has `Eager` ('none') and `Inductor` ('inductor', torch.compile) for any PyTorch
    device; subclass them (see vendors/nvidia/inductor.py) rather than starting from scratch.
    """

    name: str  # the toolkit's name, as the config key `compiler` selects it

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        """Compile and warm up; return the adapted callable. Timed by the harness as `compile_time`.

        Called once, after the validation pass, with the plain model already on `vendor.device()`.
        `warmup_calls` lists every forward the timed pass will make, each as the prompt lengths it holds
        ((n,) for one prompt; several when packing). The returned callable keeps the `ModelFn` contract
        (logits of position last_pos, on the device, predictions equal to the plain model's up to
        precision) and must not compile anything new when called later with any of those calls
        (`benchmarks.toolkits.warmup_shapes` picks one call per distinct input shape). The timed pass calls
        it under torch.inference_mode with input tensors made there: warm up the same way (compiled graphs
        guard on it). Synchronize the device before returning, so queued warm-up work is not billed to
        the first timed prompt.
        """
        ...

    def report(self) -> ToolkitReport:
        """After the timed pass: recompiles since `prepare` returned, and the optimizations in effect."""
        ...
