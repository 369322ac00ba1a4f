"""Faults of the run itself (exit code 3), described so that the one-line message says what to change.

Out of device memory is the fault users can act on: the message names the phase, the question and its
prompt length, the memory figures at the time, and the knobs that lower memory. `run_pass` raises
`PromptOutOfMemory` (still a `torch.OutOfMemoryError`) with the question it was on; the runner turns any
out-of-memory error into `DeviceOutOfMemory` with the figures and the knobs of the run's config.
"""
from __future__ import annotations

import os
import resource
from typing import Any, Sequence

import torch

from ..errors import one_line

GIB = 1024**3


class PromptOutOfMemory(torch.OutOfMemoryError):
    """torch.OutOfMemoryError (or the CPU allocator's error) raised by the model on one prompt of a timed pass."""

    def __init__(self, pass_name: str, index: int, n_questions: int, tokens: int, cause: BaseException,
                 prompts: int = 1):
        super().__init__(str(cause))
        self.host = not isinstance(cause, torch.OutOfMemoryError)
        pack = f" (a pack of {prompts} prompts)" if prompts > 1 else ""
        self.where = f"the {pass_name} pass at question {index + 1}/{n_questions}{pack}"
        self.tokens = tokens


class DeviceOutOfMemory(RuntimeError):
    """Out of device memory, with where, how long the prompt was, the memory figures and what to change."""


class HostOutOfMemory(DeviceOutOfMemory):
    """Out of host memory on the CPU (torch raises a plain RuntimeError there), described the same way."""


CPU_ALLOCATOR_TEXT = "DefaultCPUAllocator: can't allocate memory"  # torch's CPU allocator failing (errno 12)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (a device), or the CPU allocator's plain RuntimeError (the host)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and CPU_ALLOCATOR_TEXT in str(exc))


def memory_figures(device: torch.device) -> str:
    """What is in use now, device-generic (torch.accelerator for accelerators, the process RSS for CPU)."""
    try:
        if device.type == "cpu":
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
            return f"process peak RSS {peak:.1f} GiB of {total:.1f} GiB host memory"
        acc = torch.accelerator
        index = device.index if device.index is not None else acc.current_device_index()
        free, total = acc.get_memory_info(index)
        return (f"{acc.memory_allocated(index) / GIB:.1f} GiB allocated by torch "
                f"(peak {acc.max_memory_allocated(index) / GIB:.1f}, reserved {acc.memory_reserved(index) / GIB:.1f}), "
                f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB on {device}")
    except Exception as exc:  # figures are a courtesy: never let them hide the out-of-memory error
        return f"memory figures unavailable ({type(exc).__name__})"


def knobs(precision: str, compiler: str, pad_multiple: int, limit: int | None, longest_prompt: int | None,
          optimization_hints: Sequence[str] = (), compiler_offs: Sequence[str] = ()) -> list[str]:
    """The settings that lower memory, for this run's config. optimization_hints: those of the active
    optimizations; compiler_offs: the --set switches that must go with compiler none."""
    out = list(optimization_hints)
    if precision == "fp32":
        out.append("--set precision=bf16 (or fp16) halves weights and activations")
    if pad_multiple > 1:
        out.append(f"--set pad_multiple=0 (prompts are padded to multiples of {pad_multiple} tokens)")
    if compiler != "none":
        offs = "".join(f" {s}" for s in compiler_offs)  # the config refuses these without a compiler
        out.append(f"--set compiler=none{offs} (compiled graphs and CUDA graphs hold extra memory)")
    if limit is None:
        out.append("--limit N to measure fewer questions")
    longest = f"the longest prompt has {longest_prompt} tokens; " if longest_prompt else ""
    out.append(f"a device with more free memory ({longest}stop other processes on the device)")
    return out


def phase_of(phases_done: Sequence[str], validation: bool, compiler: str) -> tuple[str, bool]:
    """Where an out-of-memory error outside the pass loop happened (the loop names its own question): the
    phase after the last one done, and whether it ran the longest prompt."""
    last = phases_done[-1] if phases_done else None
    if last is None:
        return "init (loading the model onto the device)", False
    if last == "init" and validation:
        return "the warm-up on the longest prompt before the validation pass", True
    if last in ("init", "validation"):
        return f"the compile and warm-up of toolkit '{compiler}' (longest prompt first)", True
    return f"the phase after '{last}'", False


def _torch_summary(exc: BaseException) -> str:
    """The first sentences of torch's message (the 'Tried to allocate ...' figures), one line."""
    text = one_line(exc)
    for cut in (" If reserved but unallocated", " See documentation", " Process "):
        if cut in text:
            text = text[: text.index(cut)]
    return text[:240].rstrip(". ")


def describe(exc: BaseException, phase: str, tokens: int | None, device: torch.device,
             hints: Sequence[str]) -> DeviceOutOfMemory:
    """A DeviceOutOfMemory for `exc`; a PromptOutOfMemory's own question and prompt length win over `phase`."""
    where = getattr(exc, "where", None) or phase
    tokens = getattr(exc, "tokens", None) or tokens
    prompt = f" ({tokens} tokens)" if tokens else ""
    torch_text = _torch_summary(exc)
    host = getattr(exc, "host", not isinstance(exc, torch.OutOfMemoryError))
    kind, memory = (HostOutOfMemory, "host") if host else (DeviceOutOfMemory, "device")
    if host:
        hints = [h for h in hints if not h.startswith("a device with")] + [
            "a machine with more free host memory (stop other processes; the host memory check before the run "
            "counts the weights only)"]
    return kind(
        f"out of {memory} memory in {where}{prompt}; {memory_figures(device)}"
        + (f"; torch: {torch_text}" if torch_text else "")
        + "; to fit, try: " + "; ".join(hints)
    )


def describe_run(exc: BaseException, phases_done: Sequence[str], config: Any, limit: int | None,
                 lengths: Sequence[int], active: Sequence[Any], device: torch.device) -> DeviceOutOfMemory:
    """The one-line out-of-memory error of a run: where (the phase after the last one done, or the pass's own
    question), the prompt length, the memory figures, and the settings that lower memory for this config."""
    from . import optimizations

    cfg = config.run
    longest = max(lengths, default=None)
    phase, longest_first = phase_of(phases_done, not cfg.no_validation, cfg.compiler)
    hints = knobs(cfg.effective_precision, cfg.compiler, getattr(config.vendor, "pad_multiple", 0) or 0, limit,
                  longest, optimizations.memory_hints(active), optimizations.off_without_compiler(active))
    return describe(exc, phase, longest if longest_first else None, device, hints)
