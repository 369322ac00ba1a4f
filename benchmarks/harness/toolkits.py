"""Toolkit adapters any PyTorch vendor can offer: `none` (the plain model) and `inductor` (torch.compile).

Vendors list them in `Vendor.toolkits()`; their keys live in the vendor's options dataclass, which should
inherit `InductorOptions` to offer `inductor`. The helpers any toolkit may use, whatever builds its
executables (docs/adding_a_vendor.md has a recipe): `warmup_shapes` (one call per distinct input shape),
`warm_up` (call a callable on them as the timed pass will), `BuildCounter` (executables built after the
warm-up: the report's `recompiles`), `graph_count` (torch.compile's graphs so far), `PadRight`.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..config import doc
from ..errors import BenchmarkError
from ..contracts import ModelFn, ToolkitReport, hooks

log = logging.getLogger("benchmarks")

DYNAMO_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class InductorOptions:
    """Vendor YAML keys of the inductor toolkit (reference names kept: dynamo_mode, dynamo_dynamic)."""

    dynamo_mode: str | None = doc("torch.compile mode: " + ", ".join(DYNAMO_MODES) + " (null: default)", default=None)
    dynamo_dynamic: bool | None = doc("torch.compile dynamic= (true: one graph for all lengths)", default=True)
    inductor_options: dict[str, Any] = doc(
        "torch.compile options= (inductor config); cannot be combined with dynamo_mode", default_factory=dict
    )
    pad_multiple: int = doc(
        "right-pad each prompt to a multiple of this many tokens (0: off) so compiled shapes and CUDA graphs "
        "are reused; the scored position is unchanged (causal model) and throughput counts real tokens only",
        default=0, bounds=(0, 2**16, "0 (off) or up to 65536 tokens"),
    )
    compile_cache_dir: str | None = doc(
        "folder of inductor's and Triton's compile caches (TORCHINDUCTOR_CACHE_DIR); null: torch's default "
        "(/tmp/torchinductor_<user>), which later runs on the machine reuse. Compile time counts in p_infer_whole: "
        "the result records whether the compile found the cache cold or warm (toolkit_report.compile_cache); an "
        "empty folder here measures a cold compile", default=None,
    )

    def __post_init__(self) -> None:
        if self.dynamo_mode is not None and self.dynamo_mode not in DYNAMO_MODES:
            raise BenchmarkError(f"config key 'dynamo_mode': got {self.dynamo_mode!r}; expected one of {', '.join(DYNAMO_MODES)} or null")
        if self.dynamo_mode not in (None, "default") and self.inductor_options:
            raise BenchmarkError("config keys 'dynamo_mode' and 'inductor_options' cannot both be set (torch.compile "
                                 "takes mode or options); put the mode's settings into inductor_options")
        if self.pad_multiple < 0:
            raise BenchmarkError(f"config key 'pad_multiple': got {self.pad_multiple}; expected 0 (off) or a positive integer")


class Eager:
    """The plain model, unchanged (the 'none' toolkit)."""

    name = "none"

    def __init__(self, options: Any, vendor: Any):
        pass

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        return model_fn

    def report(self) -> ToolkitReport:
        return ToolkitReport(name=self.name)


def padded_length(n: int, multiple: int) -> int:
    return n if multiple <= 1 else math.ceil(n / multiple) * multiple


class PadRight(torch.nn.Module):
    """Right-pads input_ids to a multiple of `multiple` so few distinct shapes reach the compiled model.

    One prompt: the padding follows it (causal, so its scored position is unchanged). A pack of several
    prompts: the padding becomes more prompts of the pack, whose logits are dropped, so that the packed
    model's contract holds: the last prompt ends at the last token, and no prompt is longer than
    `max_prompt` (the run's longest; padding longer than that is split into several prompts).
    """

    def __init__(self, fn: ModelFn, multiple: int, pad_id: int = 0, max_prompt: int | None = None):
        super().__init__()
        self.fn, self.multiple, self.pad_id = fn, multiple, pad_id
        self.max_prompt = max_prompt or multiple

    def forward(self, input_ids: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        extra = padded_length(n, self.multiple) - n
        if not extra:
            return self.fn(input_ids, last_pos)
        input_ids = F.pad(input_ids, (0, extra), value=self.pad_id)
        if input_ids.shape[0] > 1 or last_pos.shape[0] == 1:  # one prompt per row
            return self.fn(input_ids, last_pos)
        pieces = math.ceil(extra / self.max_prompt)
        # Made on the device (no host copy): the padding prompts end every max_prompt tokens and at the end.
        ends = torch.arange(1, pieces + 1, dtype=last_pos.dtype, device=last_pos.device) * self.max_prompt
        pad_last = ends.clamp(max=extra) + (n - 1)
        return self.fn(input_ids, torch.cat([last_pos, pad_last]))[:-pieces]


def longest_prompt(calls: Sequence[Sequence[int]]) -> int:
    """The longest prompt of the run's calls: PadRight splits a pack's padding into prompts no longer."""
    return max((n for call in calls for n in call), default=0)


def padded_call(call: Sequence[int], multiple: int, longest: int) -> tuple[int, ...]:
    """The prompt lengths the model sees for `call` after PadRight: one prompt grows to the padded length; a
    pack gets its padding as more prompts of at most `longest` tokens."""
    total = sum(call)
    extra = padded_length(total, multiple) - total
    if not extra:
        return tuple(call)
    if len(call) == 1:
        return (total + extra,)
    pieces = math.ceil(extra / longest)
    return (*call, *([longest] * (pieces - 1)), extra - longest * (pieces - 1))


def executed_flops(count: Any, pad_multiple: int, calls: Sequence[Sequence[int]]) -> tuple[float | None, float | None]:
    """FLOPs of a pass's forwards over the real prompts (`count`: the case model's forward_flops, in its optimized
    state; None: it cannot count), and the extra FLOPs of right-padding to `pad_multiple`: (None, None) when the
    model cannot count them."""
    if count is None or not calls:
        return None, None
    real = sum(count(call) for call in calls)
    longest = longest_prompt(calls)
    padded = sum(count(padded_call(call, pad_multiple, longest)) for call in calls)
    return real, padded - real


def warmup_shapes(calls: Sequence[Sequence[int]], pad_multiple: int, dynamic: bool | None) -> list[tuple[int, ...]]:
    """One representative call (its prompt lengths) per distinct input the compiled model will see, longest
    first. The input is [1, padded T] and last_pos [P] (more when a pack gets padding prompts); with
    dynamic shapes only P = 1 versus P > 1 matters (dynamo specializes sizes 0 and 1)."""
    seen: dict[tuple[int, int], tuple[int, ...]] = {}
    longest = longest_prompt(calls) or pad_multiple  # PadRight's max_prompt
    for call in calls:
        padded = padded_call(call, pad_multiple, longest)
        key = (sum(padded), min(len(padded), 2) if dynamic else len(padded))
        seen.setdefault(key, tuple(call))
    return [seen[k] for k in sorted(seen, reverse=True)]


def graph_count() -> int:
    """Graphs torch.compile has compiled in this process so far (dynamo's counter): a torch.compile-based
    toolkit reads it after its warm-up and again in `report()`; the difference is its `recompiles`."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# inductor's on-disk caches: the compiled graph (FX graph cache) and the AOT autograd artifacts around it
_CACHE_COUNTERS = (("inductor", "fxgraph_cache_hit"), ("inductor", "fxgraph_cache_miss"),
                   ("aot_autograd", "autograd_cache_hit"), ("aot_autograd", "autograd_cache_miss"))


def cache_counts() -> dict[str, int]:
    """torch's compile-cache hit and miss counters so far in this process, and the entries of inductor's on-disk
    FX graph cache now (a public helper for toolkits: take it before and after a compile)."""
    from torch._dynamo.utils import counters

    out = {name: int(counters[group][name]) for group, name in _CACHE_COUNTERS}
    out["entries"] = sum(1 for _ in (_cache_dir() / "fxgraph").rglob("*") if _.is_file()) \
        if (_cache_dir() / "fxgraph").is_dir() else 0
    return out


def _cache_dir() -> Path:
    import os

    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or cache_dir())


def cache_state(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, Any]:
    """Whether the compile between two `cache_counts()` found inductor's on-disk FX graph cache (its generated
    and compiled code: the costly part) cold or warm. "cold": the cache held no entry before (a hit then reused a
    graph this very compile had just made, e.g. two identical pieces of one model), or every lookup missed;
    "warm": every lookup hit an earlier run's entry, so compile_time is not a cold compile; "partial": some did;
    "none": no lookups (nothing compiled, or the cache is off). The AOT autograd cache's counts are reported
    beside it; it misses some graphs on every run (not cacheable), so it does not decide the state."""
    delta = {k: after[k] - before.get(k, 0) for k in after if k != "entries"}
    hits, misses = delta["fxgraph_cache_hit"], delta["fxgraph_cache_miss"]
    earlier = before.get("entries", 0)
    if not hits and not misses:
        state = "none"
    elif not earlier or not hits:
        state = "cold"
    else:
        state = "partial" if misses else "warm"
    return {"state": state, **delta, "entries_before": earlier, "dir": str(_cache_dir())}


def warm_up(fn: ModelFn, calls: Sequence[Sequence[int]], vendor: Any, repeats: int = 1) -> list[dict[str, Any]]:
    """Call `fn` once (or `repeats` times) per call in `calls` (each a tuple of prompt lengths: one prompt, or a
    pack), with inputs made under torch.inference_mode as the timed pass makes them (compiled graphs guard on
    it), on the vendor's device, synchronized. Give it `warmup_shapes(...)`: one call per distinct shape,
    longest first. Any toolkit's `prepare` can use it, whatever builds its executables. Returns each call's
    tokens, prompts, seconds and whether a graph was compiled during it (the compile is in the first calls)."""
    device = vendor.device()
    out = []
    with torch.inference_mode():
        for call in calls:
            graphs = graph_count()
            start = time.perf_counter()
            ids = torch.ones(1, sum(call), dtype=torch.int64, device=device)
            last = torch.tensor(list(itertools.accumulate(call)), device=device) - 1
            for _ in range(repeats):
                fn(ids, last)
            vendor.synchronize()
            out.append({"tokens": sum(call), "prompts": len(call), "s": time.perf_counter() - start,
                        "compiled": graph_count() > graphs})
    return out


class BuildCounter:
    """Counts the executables a toolkit builds (engines, traces, graphs) and how many came after its warm-up:
    `built()` on each build, `warmed_up()` at the end of `prepare`, `after_warmup` in `report()` as the
    `recompiles` (0 for a VALID run)."""

    def __init__(self) -> None:
        self.total = 0
        self._at_warmup: int | None = None

    def built(self) -> None:
        self.total += 1

    def warmed_up(self) -> None:
        self._at_warmup = self.total

    @property
    def after_warmup(self) -> int:
        return self.total - (self._at_warmup or 0) if self._at_warmup is not None else 0


class Inductor:
    """torch.compile with the inductor backend, warmed up on every shape the run will see."""

    name = "inductor"

    def __init__(self, options: InductorOptions, vendor: Any):
        self.options, self.vendor = options, vendor
        self._graphs_after_warmup = 0
        self._warm_shapes = 0
        self._warmup_calls: list[dict[str, Any]] = []
        self._cache: dict[str, Any] | None = None

    def use_cache_dir(self) -> None:
        """Point inductor's (and so Triton's) compile caches at `compile_cache_dir`, when it is set."""
        if self.options.compile_cache_dir:
            import os

            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(self.options.compile_cache_dir).expanduser().resolve())

    def _compile_kwargs(self) -> dict[str, Any]:
        o = self.options
        kwargs: dict[str, Any] = {"backend": "inductor", "dynamic": o.dynamo_dynamic}
        if o.inductor_options:
            kwargs["options"] = dict(o.inductor_options)
        elif o.dynamo_mode:
            kwargs["mode"] = o.dynamo_mode
        return kwargs

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        self.use_cache_dir()
        before = cache_counts()
        compiled = self.wrap_compiled(torch.compile(model_fn, **self._compile_kwargs()))
        fn: ModelFn = compiled
        if self.options.pad_multiple > 1:
            fn = PadRight(compiled, self.options.pad_multiple, max_prompt=longest_prompt(warmup_calls) or None)
        shapes = warmup_shapes(warmup_calls, self.options.pad_multiple, self.options.dynamo_dynamic)
        # Longest first: the allocator's first segments are then large enough for every later shape.
        # CUDA-graph modes record on a later call than the first, so they get two calls per shape.
        self._warmup_calls = warm_up(fn, shapes, self.vendor, repeats=2 if self.uses_cudagraphs() else 1)
        self._cache = cache_state(before, cache_counts())
        self._warm_shapes = len(shapes)
        self._graphs_after_warmup = graph_count()
        compiling = sum(c["s"] for c in self._warmup_calls if c["compiled"])
        log.info("inductor: warmed %d shapes, %d graphs; calls that compiled %.1f s, the rest %.1f s; compile cache "
                 "%s (%s)", len(shapes), self._graphs_after_warmup, compiling,
                 sum(c["s"] for c in self._warmup_calls) - compiling, self._cache["state"], self._cache["dir"])
        return fn

    @property
    def pad_multiple(self) -> int:
        """Prompts (and packs) reach the compiled model right-padded to a multiple of this (1: unpadded)."""
        return max(self.options.pad_multiple, 1)

    def uses_cudagraphs(self) -> bool:
        o = self.options
        return bool(o.inductor_options.get("triton.cudagraphs")) or o.dynamo_mode in ("reduce-overhead", "max-autotune")

    def wrap_compiled(self, compiled: ModelFn) -> ModelFn:
        """Hook for device-specific adapters: what to do around each call of the compiled model."""
        return compiled

    def report(self) -> ToolkitReport:
        o = self.options
        opts = []
        if o.pad_multiple > 1:
            opts.append(f"pad_multiple={o.pad_multiple}")
        compiling = sum(c["s"] for c in self._warmup_calls if c["compiled"])
        return ToolkitReport(
            name=self.name,
            recompiles=graph_count() - self._graphs_after_warmup,
            optimizations=tuple(opts),
            details={"compile_kwargs": {k: v for k, v in self._compile_kwargs().items()},
                     "warmed_shapes": self._warm_shapes, "graphs": self._graphs_after_warmup,
                     "compiling_calls_s": compiling,
                     "warmup_s": sum(c["s"] for c in self._warmup_calls) - compiling,
                     "warmup_calls": list(self._warmup_calls)},
            compile_cache=dict(self._cache) if self._cache else None,
        )


class ReferenceWarmup(torch.nn.Module):
    """The reference toolkit adapter's call (FlagPerf inference_engine/<vendor>/inductor.py): on each of its first
    `calls` calls, first `forwards` extra forwards on the same input, synchronized and timed; then the forward
    whose logits are returned. The timed pass subtracts the extra forwards' time from the call's core time only
    (`take_untimed_s`, read by benchmarks.harness.passes.run_pass after each call), so it stays in the pass's whole time.
    The first call compiles (torch.compile is lazy): compile time is inside the pass as well."""

    def __init__(self, fn: ModelFn, synchronize: Any, calls: int, forwards: int):
        super().__init__()
        self.fn, self.synchronize = fn, synchronize
        self.calls_left, self.forwards = calls, forwards
        self.calls = self.warmup_calls = self.warmup_forwards = 0
        self.untimed_total_s = 0.0
        self._untimed_s = 0.0
        self.graphs_after_warmup: int | None = None

    def forward(self, input_ids: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls_left > 0:
            start = time.perf_counter()
            for _ in range(self.forwards):
                self.fn(input_ids, last_pos)
            self.synchronize()
            spent = time.perf_counter() - start
            self.calls_left -= 1
            self.warmup_calls += 1
            self.warmup_forwards += self.forwards
            self._untimed_s += spent
            self.untimed_total_s += spent
        out = self.fn(input_ids, last_pos)
        if self.calls_left == 0 and self.graphs_after_warmup is None:
            self.graphs_after_warmup = graph_count()  # the reference's warm-up is over after this call
        return out

    def take_untimed_s(self) -> float:
        """Seconds of extra forwards since the last call of this method (0.0 once the warm-up calls are over)."""
        spent, self._untimed_s = self._untimed_s, 0.0
        return spent


class ReferenceInductor(Inductor):
    """torch.compile with the reference's semantics: nothing happens in `prepare` (compile is lazy, inside the
    timed pass), and the reference's warm-up rule (ReferenceWarmup) runs inside the pass. Combined with a
    vendor's inductor class by `reference_toolkit`, which keeps that class's `wrap_compiled` (e.g. the CUDA
    graph step marks)."""

    warmup_calls = 10  # benchmarks.config.scenarios.REFERENCE_WARMUP_CALLS
    warmup_forwards = 10  # benchmarks.config.scenarios.REFERENCE_WARMUP_FORWARDS

    def prepare(self, model_fn: ModelFn, warmup_calls: Sequence[Sequence[int]]) -> ModelFn:
        self.use_cache_dir()
        self._cache_before = cache_counts()  # compiled lazily: the cache state is read after the pass
        self._graphs_at_prepare = graph_count()
        hooks.mark_graph_baseline(self)  # a vendor class that counts CUDA graph recordings: every recording of the
        # pass counts, its lazy warm-up's included
        compiled = self.wrap_compiled(torch.compile(model_fn, **self._compile_kwargs()))
        fn: ModelFn = compiled
        if self.options.pad_multiple > 1:
            fn = PadRight(compiled, self.options.pad_multiple, max_prompt=longest_prompt(warmup_calls) or None)
        self._warmup = ReferenceWarmup(fn, self.vendor.synchronize, self.warmup_calls, self.warmup_forwards)
        return self._warmup

    def report(self) -> ToolkitReport:
        base = super().report()
        w = getattr(self, "_warmup", None)
        now = graph_count()
        after = w.graphs_after_warmup if w is not None and w.graphs_after_warmup is not None else now
        details = {**base.details, "lazy_compile": True, "warmed_shapes": 0,
                   "graphs": now - getattr(self, "_graphs_at_prepare", 0),
                   "reference_warmup": {"calls": w.warmup_calls if w else 0,
                                        "forwards": w.warmup_forwards if w else 0,
                                        "forwards_per_call": self.warmup_forwards,
                                        "untimed_s": w.untimed_total_s if w else 0.0}}
        # Compiling inside the pass is the reference's design; what counts are graphs compiled after its
        # warm-up calls (a new prompt length under reduce-overhead is a new CUDA graph recording, not a compile).
        cache = cache_state(self._cache_before, cache_counts()) if hasattr(self, "_cache_before") else None
        return ToolkitReport(name=self.name, recompiles=now - after, optimizations=base.optimizations, details=details,
                             graph_recordings=base.graph_recordings, compile_cache=cache)


def reference_compiler(factories: Mapping[str, Any], configured: str) -> str:
    """The vendor's toolkit that stands for the reference's `compiler` in the reference scenario: the one named
    as configured (configurations.yaml says `inductor`) when the vendor offers it; else the vendor's compiling
    toolkit whatever its name: the one class that subclasses `Inductor` (torch.compile), or among several the
    one that declares `reference_compiler = True`. 'none' stays 'none' (the reference skips its inference
    pass then)."""
    if configured in factories or configured == "none":
        return configured
    compiling = sorted(n for n, f in factories.items() if isinstance(f, type) and issubclass(f, Inductor))
    declared = [n for n in compiling if hooks.is_reference_compiler(factories[n])]
    chosen = declared or compiling
    if len(chosen) == 1:
        return chosen[0]
    what = (f"several compiling toolkits ({', '.join(chosen)}); set reference_compiler = True on the class of the "
            "one to use" if chosen else "no toolkit whose class subclasses benchmarks.toolkits.Inductor")
    raise BenchmarkError(f"--scenario reference: the reference compiles with {configured!r} (configurations.yaml "
                         f"key 'compiler'), and this vendor offers no toolkit of that name and {what}; or choose "
                         f"one with --set compiler=NAME (known: {', '.join(sorted(factories))})")


def reference_toolkit(factory: Any) -> Any:
    """The toolkit of the reference scenario for a vendor's configured toolkit: an inductor toolkit (a subclass
    of `Inductor`) gets the reference's lazy compile and warm-up rule, keeping the vendor class's hooks; the
    plain model ('none', `Eager`) stays as it is. Anything else cannot follow the reference's semantics."""
    if isinstance(factory, type) and issubclass(factory, Eager):
        return factory
    if isinstance(factory, type) and issubclass(factory, Inductor):
        if issubclass(factory, ReferenceInductor):
            return factory
        return type(f"Reference{factory.__name__}", (ReferenceInductor, factory), {"name": factory.name})
    raise BenchmarkError(f"toolkit {getattr(factory, 'name', factory)!r} has no reference semantics: the reference "
                         "scenario runs the plain model ('none') or torch.compile (an inductor toolkit); set "
                         "--set compiler=... to one of those, or use --scenario optimized")


TOOLKITS: Mapping[str, Any] = {"none": Eager, "inductor": Inductor}
