"""The case contract: what is measured (its parameters, workload, model, named optimizations, smoke data)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from .optimization import Optimization

if TYPE_CHECKING:
    import torch

@dataclass(frozen=True)
class Sample:
    """One scored question of a workload.

    subject: the group it belongs to, for accuracy per group (MMLU: the subject); any non-empty string.
    index: its 0-based row within the group (with `subject`, a stable key across runs and files).
    input_ids: the whole prompt as token ids, as the model reads it (BOS included where the model wants it).
    label: the token id whose logit must be the largest (argmax over the whole vocabulary) for a correct
    answer.
    """

    subject: str
    index: int
    input_ids: tuple[int, ...]
    label: int


@dataclass(frozen=True)
class Workload:
    """What `Case.load_workload` returns.

    samples: every question of the run, in the case's order (the order of both passes and of the files).
    fingerprint: name -> hex digest of the inputs that define the measurement (data files, weights' config);
    two results with equal fingerprints (and config hashes) measured the same thing.
    notes: case figures for result.json's `counts` (e.g. truncated prompts); JSON-serializable.
    choice_ids: the token ids of the answer choices, for the choice-restricted accuracy (argmax over only
    these); () when the case has none.
    """

    samples: Sequence[Sample]
    fingerprint: Mapping[str, str]
    notes: Mapping[str, Any] = field(default_factory=dict)
    choice_ids: tuple[int, ...] = ()



@runtime_checkable
class Case(Protocol):
    """What is measured: `CASE`, an instance, in `benchmarks/<case>/__init__.py` (or registered elsewhere).

    Methods must not change state the run depends on; all may be called more than once. The smallest
    complete example is tests/cases/parity/ (a hand-written model on a made-up 2-choice task).
    """

    # The case's name: its registry name, its configs/<name>/ folder, written into result.json.
    name: str
    # A frozen dataclass: the keys of configs/<name>/parameters.yaml (what is measured; vendors may not
    # set them). Every field documented with `benchmarks.config.doc`; no name shared with other keys.
    Params: type
    # The named optimizations it offers (may be empty); see `Optimization`.
    optimizations: Sequence[Optimization]
    # The accuracy a run with the real weights over the whole workload must reach, +- the tolerance;
    # None when the case has no reference (then no accuracy rule applies).
    reference_accuracy: float | None
    accuracy_tolerance: float
    # subject -> category, for accuracy per category; {} when the case has none.
    categories: Mapping[str, str]

    def check_data(self, params: Any, data_dir: Path, smoke_hint: str) -> None:
        """Before the run: raise BenchmarkError, naming the missing path and how to get it (or
        `smoke_hint`, the command of a smoke run), when `data_dir` lacks what the case reads."""
        ...

    def smoke_data(self) -> Path:
        """Make (or reuse) a tiny data_dir in the same layout as the real one; return it. Nothing is
        downloaded. The run then goes through the normal path on it."""
        ...

    def load_workload(self, params: Any, data_dir: Path, limit: int | None) -> Workload:
        """Read and tokenize the workload; `limit`: only the first N samples of every subject. Bad data is a
        BenchmarkError naming the file and row."""
        ...

    def build_model(self, params: Any, data_dir: Path, *, precision: str, device: "torch.device",
                    synthetic: bool, seed: int, load_path: str = "direct") -> Any:
        """The plain model on `device` in `precision`, eval mode: a torch.nn.Module implementing `ModelFn`.
        synthetic: random weights of the same architecture (speed-only runs), seeded with `seed`.
        load_path (recorded as result.json `load_path`): "direct", the case's own way (e.g. loaded straight in
        `precision`); "reference", what the reference implementation does, for the reference scenario
        (benchmarks.config.scenarios), e.g. loaded in fp32, moved to the device, then cast, and its plain call (logits of
        every position, the scored row returned). The ModelFn contract holds either way.

        Optional methods of the model the harness uses when present: `architecture() -> dict` (its shape, for
        result.json's `model` and the case's deviations), `forward_flops(prompt_lengths) -> float` (the matmul
        FLOPs one forward over these prompts executes in the model's current state, for `mfu_executed`)."""
        ...
