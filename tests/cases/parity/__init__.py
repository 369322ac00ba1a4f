"""A second case that shares nothing with Llama or MMLU, to prove the case seam: "parity".

Each question is a string of bits; the answer is whether it holds an even or odd number of ones. The model is
hand-written (no transformers): it counts the ones up to the scored position with a cumulative sum and maps
even/odd through a small linear head to logits over an 8-token vocabulary. Its "real weights" are that head,
saved in data_dir/weights/head.pt, with which it answers every question right (reference accuracy 1.0); random
weights answer at chance. It declares one named optimization, `parity_pack`, which opts into the harness's
packed forwards (several questions in one forward, each counted on its own).

data_dir layout (`smoke_data()` writes one; tests make others):
  questions.csv     group,index,bits,answer    answer: even or odd
  weights/head.pt   {"weight": [8, 2], "bias": [8]} (torch.save of tensors, loaded with weights_only=True)
"""
from __future__ import annotations

import csv
import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.config import doc
from benchmarks.errors import BenchmarkError
from benchmarks.interfaces import Optimization, OptimizationContext, Sample, Workload, torch_dtype

PAD, BOS, EVEN, ODD, ZERO, ONE, ASK = range(7)
VOCAB = 8
ANSWER = {"even": EVEN, "odd": ODD}


@dataclass(frozen=True)
class Params:
    questions_file: str = doc("CSV under data_dir with the questions (group,index,bits,answer)")
    weights_dir: str = doc("folder under data_dir with head.pt")


def true_head() -> dict[str, torch.Tensor]:
    """The weights that answer right: feature [even, odd] -> a logit of 4 on EVEN or ODD, 0 elsewhere."""
    weight = torch.zeros(VOCAB, 2)
    weight[EVEN, 0] = weight[ODD, 1] = 4.0
    return {"weight": weight, "bias": torch.zeros(VOCAB)}


class ParityModel(nn.Module):
    """ModelFn: logits of position last_pos[b] from the parity of the ones up to it. After `enable_packing`,
    a pack [1, T] with last_pos [P] counts each prompt's ones from its own start."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, VOCAB)
        self.packing = False

    def enable_packing(self) -> None:
        self.packing = True

    def forward(self, input_ids: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
        ones = (input_ids == ONE).to(torch.int64).cumsum(1)
        if self.packing and input_ids.shape[0] == 1 and last_pos.shape[0] > 1:
            upto = ones[0, last_pos]
            count = upto - torch.cat([upto.new_zeros(1), upto[:-1]])
        else:
            count = ones[torch.arange(ones.shape[0], device=ones.device), last_pos]
        odd = (count % 2).to(self.head.weight.dtype)
        return self.head(torch.stack([1 - odd, odd], dim=-1))


@dataclass(frozen=True)
class PackOptions:
    parity_pack: int = doc("score up to this many tokens of consecutive questions in one forward (0: off)", default=0)


class ParityPack(Optimization):
    name = "parity_pack"
    Options = PackOptions

    def check(self, options: PackOptions, run: Any, vendor: Any = None) -> None:
        if options.parity_pack < 0:
            raise BenchmarkError(f"config key 'parity_pack': got {options.parity_pack}; expected 0 or a token budget")

    def pack_tokens(self, options: PackOptions) -> int:
        return options.parity_pack

    def apply(self, model: Any, options: PackOptions, ctx: OptimizationContext) -> None:
        model.enable_packing()

    def memory_hints(self, options: PackOptions) -> list[str]:
        return [f"--set parity_pack={options.parity_pack // 2}"]


def write_data(root: Path, n_per_group: int = 6, seed: int = 0, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """A data_dir: three groups of made-up bit strings (lengths 3..40) and the head's weights."""
    rng = random.Random(seed)
    (root / "weights").mkdir(parents=True, exist_ok=True)
    with open(root / "questions.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["group", "index", "bits", "answer"])
        for group in ("short", "medium", "long"):
            for i in range(n_per_group):
                n = {"short": rng.randint(3, 8), "medium": rng.randint(9, 20), "long": rng.randint(21, 40)}[group]
                bits = "".join(rng.choice("01") for _ in range(n))
                out.writerow([group, i, bits, "odd" if bits.count("1") % 2 else "even"])
    torch.save(weights or true_head(), root / "weights" / "head.pt")
    return root


class ParityCase:
    name = "parity"
    Params = Params
    optimizations = (ParityPack(),)
    reference_accuracy = 1.0  # the true head answers every question
    accuracy_tolerance = 0.0
    categories = {"short": "easy", "medium": "easy", "long": "hard"}

    def check_data(self, params: Params, data_dir: Path, smoke_hint: str) -> None:
        for path in (data_dir / params.questions_file, data_dir / params.weights_dir / "head.pt"):
            if not path.is_file():
                raise BenchmarkError(f"{path} not found: make a data_dir with tests/cases/parity write_data(), "
                                     f"or try {smoke_hint}")

    def smoke_data(self) -> Path:
        base = os.environ.get("LLAMA_BENCH_CACHE") or str(Path.home() / ".cache" / "llama_bench")
        root = Path(base) / "parity-smoke"
        return root if (root / "weights" / "head.pt").is_file() else write_data(root)

    def load_workload(self, params: Params, data_dir: Path, limit: int | None) -> Workload:
        path = data_dir / params.questions_file
        samples, seen = [], {}
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["answer"] not in ANSWER or set(row["bits"]) - {"0", "1"}:
                    raise BenchmarkError(f"{path}: row {row} is not bits,even|odd; fix the file")
                seen[row["group"]] = seen.get(row["group"], 0) + 1
                if limit is None or seen[row["group"]] <= limit:
                    ids = (BOS, *(ONE if b == "1" else ZERO for b in row["bits"]), ASK)
                    samples.append(Sample(row["group"], int(row["index"]), ids, ANSWER[row["answer"]]))
        return Workload(samples=samples, choice_ids=(EVEN, ODD),
                        fingerprint={"questions_sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                        notes={"longest_bits": max(len(s.input_ids) - 2 for s in samples)})

    def build_model(self, params: Params, data_dir: Path, *, precision: str, device: torch.device,
                    synthetic: bool, seed: int, load_path: str = "direct") -> nn.Module:
        if load_path not in ("direct", "reference"):
            raise BenchmarkError(f"load_path {load_path!r}: expected direct or reference")
        torch.manual_seed(seed)  # the head's random init: synthetic weights are the seed's
        model = ParityModel()
        if not synthetic:
            model.head.load_state_dict(torch.load(data_dir / params.weights_dir / "head.pt", weights_only=True))
        if load_path == "reference":  # the reference's way: to the device in fp32, then cast
            return model.to(device=device, dtype=torch.float32).to(dtype=torch_dtype(precision)).eval()
        return model.to(device=device, dtype=torch_dtype(precision)).eval()


CASE = ParityCase()
