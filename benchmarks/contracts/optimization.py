"""Named optimizations a case declares for its inference pass (the harness switches them on after the validation
pass), and what `apply` is told."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class OptimizationContext:
    """What `Optimization.apply` may use besides the model and its options.

    vendor: the run's vendor (e.g. for `ragged_attention_of(vendor, precision)`).
    precision: the run's precision (one of PRECISIONS).
    longest_prompt: the run's longest prompt in tokens; no prompt of a pack is longer (padding included).
    """

    vendor: Any
    precision: str
    longest_prompt: int


class Optimization:
    """A named optimization a case declares (`Case.optimizations`), for the inference pass only.

    A subclass sets `name` and `Options` and overrides `apply`; the rest has working defaults.
    - `Options`: a frozen dataclass of the optimization's config keys, each a `benchmarks.config.doc` field
      with a default that leaves it off. The keys are set in the vendor YAML or with --set, like the
      harness keys; the config validates their types and refuses unknown ones. No key may share a name with
      a harness, case or vendor key.
    - `needs`: names of other optimizations it acts through; without them it is inert (neither applied nor
      reported), e.g. a layer that only changes packed forwards.
    - `needs_compiler`: refused with compiler 'none' (it changes compiled graphs only).
    - `precisions`: an optimization that implements a precision (e.g. fp8 GEMMs): it is on exactly when the
      run's precision is one of these, whatever its keys (they only tune it), and off otherwise. Its
      predictions are judged by the verdict's rule for that precision (`is_lossy`), not the agreement rule.
    The harness applies the active optimizations in declaration order after the validation pass, which
    keeps the plain model.
    """

    name: str = ""
    Options: type = type(None)
    needs: tuple[str, ...] = ()
    needs_compiler: bool = False
    precisions: tuple[str, ...] = ()

    def is_on(self, options: Any) -> bool:
        """Whether the options switch it on (default: the first key is truthy)."""
        return bool(getattr(options, dataclasses.fields(options)[0].name))

    def switched_on(self, options: Any, precision: str) -> bool:
        """Whether it is on in a run at `precision` with these options (see `precisions`)."""
        return precision in self.precisions if self.precisions else self.is_on(options)

    def check(self, options: Any, run: Any, vendor: Any = None) -> None:
        """Checks across keys, when it is on: against the harness keys (`run`: benchmarks.config.RunConfig)
        when the config is loaded (vendor None), and again with the configured vendor before the run.
        Raise BenchmarkError naming the key, what was expected and the fix."""

    def pack_tokens(self, options: Any) -> int:
        """Opt into the harness's packed forwards: at most this many tokens of consecutive prompts per
        forward of the inference pass (the model must accept packs, see `ModelFn`). 0: one prompt each."""
        return 0

    def apply(self, model: Any, options: Any, ctx: OptimizationContext) -> None:
        """Switch it on in the built model (in place), after the validation pass, before compiling."""
        raise NotImplementedError(f"optimization {self.name!r} has no apply()")

    def labels(self, options: Any) -> list[str]:
        """How it is named in result.json's `optimizations` when active (its settings included)."""
        return [self.name]

    def memory_hints(self, options: Any) -> list[str]:
        """Settings that lower memory when it is active, e.g. '--set pack_tokens=4096 (...)'."""
        return []

    def off_setting(self) -> str:
        """The --set that switches it off (its first key back to its default), for one-line hints."""
        first = dataclasses.fields(self.Options)[0]
        return f"--set {first.name}={yaml_text(first.default)}"


def yaml_text(value: Any) -> str:
    """A value as YAML / --set spell it (false, null, 0)."""
    return "false" if value is False else "true" if value is True else "null" if value is None else str(value)
