"""The optional hooks: members a vendor, a case, a case's model or a toolkit MAY have, each declared once here as a
small Protocol. The registry checks a vendor's and a case's when it registers them (`check_hooks`: a member that
is there must be callable with the declared parameters, or be of the declared kind); the harness asks for them
through the functions below, never with getattr where they are used.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from .case import Case
from .toolkit import Toolkit
from .vendor import Vendor

if TYPE_CHECKING:
    from .telemetry import Telemetry
    from .vendor import RaggedAttention

# ----------------------------------------------------------------------------------------------- vendor


@runtime_checkable
class OffersRaggedAttention(Protocol):
    """The vendor's attention kernel for packed prompts at `precision` on its device (None: it has none, and the
    case falls back to its own, e.g. a masked dense attention). May raise BenchmarkError naming the vendor key
    that selects an unusable kernel for this precision."""

    def ragged_attention(self, precision: str) -> "RaggedAttention | None": ...


@runtime_checkable
class OffersTelemetry(Protocol):
    """A new, unentered `Telemetry` (energy counter, power, clocks, temperature, clock-limit reasons) per call;
    None: the device reports none, and the result's energy figures are null with that reason."""

    def telemetry(self) -> "Telemetry | None": ...


# ------------------------------------------------------------------------------------------------- case


@runtime_checkable
class NamesDeviations(Protocol):
    """How this run measures something other than the case (another model, other data or prompts), one verdict
    reason each; called after the run with the workload it loaded and the model's architecture()."""

    def deviations(self, params: Any, workload: Any, model_architecture: Mapping[str, Any]) -> list[str]: ...


@runtime_checkable
class CountsModelParameters(Protocol):
    """The parameters of the model the run will build, for the host-memory check before a CPU run."""

    def model_parameters(self, params: Any, data_dir: Any, synthetic: bool) -> int | None: ...


@runtime_checkable
class StatesItsArchitecture(Protocol):
    """The shape of the case's own model (the keys its model's architecture() reports, e.g. layers, hidden, vocab):
    when the run's model differs in any of them (a smoke or shrunk model), the configured `flops` per token do not
    describe it and the nominal MFU is null, with the reason (mfu_executed still counts)."""

    architecture: Mapping[str, int]


# --------------------------------------------------------------------------------------- a case's model


@runtime_checkable
class DescribesItself(Protocol):
    """Its shape, for result.json's `model` and the case's deviations."""

    def architecture(self) -> dict[str, Any]: ...


@runtime_checkable
class CountsFlops(Protocol):
    """The matmul FLOPs one forward over these prompts executes in the model's current state (mfu_executed)."""

    def forward_flops(self, prompt_lengths: Sequence[int]) -> float: ...


# ---------------------------------------------------------------------------------------------- toolkit


@runtime_checkable
class PadsInputs(Protocol):
    """Prompts (and packs) reach the compiled model right-padded to a multiple of this (1: unpadded)."""

    pad_multiple: int


@runtime_checkable
class CountsGraphRecordings(Protocol):
    """From the call on, CUDA graph recordings count (after the warm-up; the reference scenario: its whole pass)."""

    def mark_graph_baseline(self) -> None: ...


@runtime_checkable
class HasUntimedWork(Protocol):
    """An adapted callable that runs untimed work inside a call (the reference's warm-up forwards): the seconds
    since the last call of this method, subtracted from that call's core time by the timed pass."""

    def take_untimed_s(self) -> float: ...


@runtime_checkable
class ReferenceCompiler(Protocol):
    """A toolkit class that is the vendor's compiling toolkit for the reference scenario, whatever its name."""

    reference_compiler: bool


VENDOR_HOOKS = (OffersRaggedAttention, OffersTelemetry)
CASE_HOOKS = (NamesDeviations, CountsModelParameters, StatesItsArchitecture)


def ragged_attention_of(vendor: Any, precision: str) -> "RaggedAttention | None":
    """The vendor's ragged attention kernel at `precision`, or None when it offers none."""
    return vendor.ragged_attention(precision) if isinstance(vendor, OffersRaggedAttention) else None


def telemetry_of(vendor: Any) -> "Telemetry | None":
    """The vendor's new, unentered telemetry, or None when it offers none."""
    return vendor.telemetry() if isinstance(vendor, OffersTelemetry) else None


def deviations_of(case: Any, params: Any, workload: Any, model_architecture: Mapping[str, Any]) -> list[str]:
    return list(case.deviations(params, workload, model_architecture)) if isinstance(case, NamesDeviations) else []


def model_parameters_of(case: Any, params: Any, data_dir: Any, synthetic: bool) -> int | None:
    return case.model_parameters(params, data_dir, synthetic) if isinstance(case, CountsModelParameters) else None


def case_architecture(case: Any) -> Mapping[str, int] | None:
    arch = case.architecture if isinstance(case, StatesItsArchitecture) else None
    return arch if isinstance(arch, Mapping) else None


def model_architecture(model: Any) -> dict[str, Any] | None:
    return model.architecture() if isinstance(model, DescribesItself) else None


def flops_counter(model: Any) -> Callable[[Sequence[int]], float] | None:
    return model.forward_flops if isinstance(model, CountsFlops) else None


def pad_multiple_of(toolkit: Any) -> int:
    return max(int(toolkit.pad_multiple), 1) if isinstance(toolkit, PadsInputs) else 1


def untimed_seconds(fn: Any) -> Callable[[], float] | None:
    return fn.take_untimed_s if isinstance(fn, HasUntimedWork) else None


def mark_graph_baseline(toolkit: Any) -> None:
    if isinstance(toolkit, CountsGraphRecordings):
        toolkit.mark_graph_baseline()


def is_reference_compiler(factory: Any) -> bool:
    return isinstance(factory, ReferenceCompiler) and factory.reference_compiler is True


# ------------------------------------------------------------------------------------------- the checks


def protocol_members(proto: type) -> tuple[str, ...]:
    """The names a Protocol declares (its annotated attributes, then its public methods), in order."""
    names = list(vars(proto).get("__annotations__", {}))
    names += [k for k, v in vars(proto).items() if callable(v) and not k.startswith("_")]
    return tuple(dict.fromkeys(names))


def check_hooks(obj: Any, hooks: Sequence[type]) -> list[str]:
    """What is wrong with the optional hooks `obj` has (none it lacks is wrong): a declared method that is not
    callable with the declared parameters, an attribute that is a method. One line each."""
    problems = []
    for hook in hooks:
        for name in protocol_members(hook):
            if not hasattr(obj, name):
                continue
            value, declared = getattr(obj, name), vars(hook).get(name)
            if declared is None:  # an attribute
                if callable(value):
                    problems.append(f"'{name}' is a method; expected a value ({hook.__doc__.split('.')[0].strip()})")
                continue
            if not callable(value):
                problems.append(f"'{name}' is {type(value).__name__}, not a method")
                continue
            wanted = [p for p in inspect.signature(declared).parameters if p != "self"]
            try:
                inspect.signature(value).bind(*wanted)
            except TypeError:
                problems.append(f"'{name}' cannot be called as {name}({', '.join(wanted)})")
            except ValueError:  # no signature to read (a builtin): taken as is
                pass
    return problems


# What the registry checks a VENDOR, a CASE and a toolkit for (the contract tests, in depth).
VENDOR_MEMBERS = protocol_members(Vendor)
CASE_MEMBERS = protocol_members(Case)
TOOLKIT_MEMBERS = protocol_members(Toolkit)
