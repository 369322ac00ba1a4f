"""The llama2_7b_mmlu case (FlagPerf inference): Llama-2-7B on MMLU, 5-shot.

The case supplies the parameters it owns, the workload (tokenized prompts and labels: data.py), the model
(model.py), its named optimizations (optimizations.py) and its smoke data (smoke.py); the harness supplies
timing, vendors and reporting. See README.md beside this file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import doc
from ..errors import BenchmarkError, one_line
from ..guard.safe_io import check_path, check_path_text
from ..interfaces import Workload
from . import data as mmlu
from .categories import SUBJECT_CATEGORY
from . import identity, weights_check
from .optimizations import OPTIMIZATIONS

if TYPE_CHECKING:
    import torch

MAX_TOKENS = 2048  # the reference's truncation limit, BOS included

HOW_TO_GET = {
    "weight_dir": "request Llama-2-7B from Meta (https://ai.meta.com/llama), download the base model (not "
    "chat), convert it with transformers' convert_llama_weights_to_hf.py into data_dir/weight_dir",
    "mmlu_dir": "download data.tar of MMLU (https://people.eecs.berkeley.edu/~hendrycks/data.tar), extract "
    "it and place its data/ folder at data_dir/mmlu_dir",
}


@dataclass(frozen=True)
class Params:
    """Case keys (parameters.yaml). They define what is measured: vendors may not set them."""

    weight_dir: str = doc("folder under data_dir with the Llama-2-7B HF weights and tokenizer")
    mmlu_dir: str = doc("folder under data_dir with MMLU's dev/ and test/ CSV folders")
    few_shots: int = doc("dev examples per prompt (MMLU standard: 5)")
    model_layers: int | None = doc(
        "null: the whole model. N: only its first N decoder layers, a shrunk model on purpose for a machine too "
        "small for the case; such a run is INVALID (not the case)", default=None)

    def __post_init__(self) -> None:
        for key in ("weight_dir", "mmlu_dir"):
            value = getattr(self, key)
            if not value.strip():
                raise BenchmarkError(f"config key '{key}' is empty; expected a folder name under data_dir")
            if any(ord(ch) < 32 for ch in value):
                raise BenchmarkError(f"config key '{key}': {value!r} contains control characters; "
                                     "expected a folder name under data_dir")
            check_path_text(value, f"config key '{key}':")
            if not Path(value).is_absolute() and ".." in Path(value).parts:
                raise BenchmarkError(
                    f"config key '{key}': {value!r} leaves data_dir; use a path inside data_dir or an absolute path"
                )
        if self.model_layers is not None and self.model_layers < 1:
            raise BenchmarkError(f"config key 'model_layers': got {self.model_layers}; expected a positive number "
                                 "of decoder layers, or null for the whole model")
        if not 0 <= self.few_shots <= 5:
            raise BenchmarkError(f"config key 'few_shots': got {self.few_shots}; expected 0..5 (MMLU dev has 5 rows)")


class Llama2MMLU:
    name = "llama2_7b_mmlu"
    Params = Params
    # CASE.md: Llama-2-7B scored 45.8% (fp16 and fp32, both passes) on the A100 reference run. A run with the
    # real weights over all questions outside this band is INVALID: the prompts, weights or kernels differ.
    reference_accuracy = 0.458
    accuracy_tolerance = 0.01
    # subject -> MMLU category (STEM, humanities, social sciences, other), for the accuracy report
    categories = SUBJECT_CATEGORY
    optimizations = OPTIMIZATIONS
    # What the case is: all 14,042 test questions of the hendrycks release (its parsed rows' text_fingerprint,
    # measured on shared/data/mmlu, the release as extracted from data.tar), 5-shot, and Llama-2-7B exactly.
    questions = 14042
    few_shots = 5
    mmlu_text_sha256 = "6876ffa9733ef3f3b84c62b9b224653dc4568e73872d3d897d4e33e2c3483aa2"
    architecture = {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 32, "intermediate": 11008, "vocab": 32000}
    parameters = 6_738_415_616

    def paths(self, params: Params, data_dir: Path) -> dict[str, Path]:
        return {key: data_dir / getattr(params, key) for key in ("weight_dir", "mmlu_dir")}

    def check_data(self, params: Params, data_dir: Path, smoke_hint: str) -> None:
        """Fail early, with the way to get them, when data or weights are missing."""
        if not data_dir.is_dir():
            state = "is not a directory" if data_dir.exists() else "does not exist"
            raise BenchmarkError(
                f"data_dir {data_dir} {state}; create it with {params.weight_dir}/ and {params.mmlu_dir}/ "
                f"inside (see benchmarks/llama2_7b_mmlu/README.md), or try {smoke_hint}"
            )
        for key, path in self.paths(params, data_dir).items():
            if not path.is_dir() or not any(path.iterdir()):
                state = "is empty" if path.is_dir() else "not found"
                raise BenchmarkError(f"{key} {path} {state}: {HOW_TO_GET[key]}; or try {smoke_hint}")

    def load_tokenizer(self, weight_dir: Path) -> Any:
        import transformers

        from .model import read_model_config

        weights_check.check_regular_files(weight_dir)  # a FIFO or /dev/zero would block or never end a read
        config = read_model_config(weight_dir)  # a broken or non-Llama config.json is named as such, not as a tokenizer
        try:
            tok = transformers.AutoTokenizer.from_pretrained(weight_dir)
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises bare Exception for bad files
            raise BenchmarkError(
                f"{weight_dir}: cannot load the tokenizer ({one_line(exc, 200)}); the folder needs "
                "the Llama-2 tokenizer files (tokenizer.json / tokenizer.model, tokenizer_config.json)"
            ) from None
        if not getattr(tok, "is_fast", False):
            raise BenchmarkError(f"{weight_dir}: only a fast tokenizer was expected (tokenizer.json); add it")
        if config is not None:
            weights_check.check_tokenizer_fits(weight_dir, len(tok), config.vocab_size)
        return tok

    def load_workload(self, params: Params, data_dir: Path, limit: int | None) -> Workload:
        paths = self.paths(params, data_dir)
        tokenizer = self.load_tokenizer(paths["weight_dir"])
        model_config = _model_config(paths["weight_dir"])
        dev, test = mmlu.load_mmlu(paths["mmlu_dir"], params.few_shots)
        text_sha256 = mmlu.text_fingerprint(dev, test)  # of the whole release, --limit or not
        if limit is not None:
            test = {subject: rows[:limit] for subject, rows in test.items()}
        samples = mmlu.build_samples(tokenizer, dev, test, params.few_shots, MAX_TOKENS, paths["mmlu_dir"])
        if not samples:
            raise BenchmarkError(f"{paths['mmlu_dir']}: no test questions selected (check --limit)")
        letters = mmlu.letter_ids(tokenizer)
        return Workload(
            samples=samples,
            choice_ids=tuple(letters[k] for k in mmlu.LETTERS),
            fingerprint={"mmlu_csv_sha256": mmlu.fingerprint(paths["mmlu_dir"]), "mmlu_text_sha256": text_sha256,
                         "weights_sha256": weights_fingerprint(paths["weight_dir"]),
                         "weights_sample_sha256": weights_check.content_sample_sha256(paths["weight_dir"]),
                         "tokenizer_sha256": identity.tokenizer_fingerprint(tokenizer),
                         "model_config_sha256": hashlib.sha256(json.dumps(model_config, sort_keys=True)
                                                               .encode()).hexdigest()},
            notes={"truncated_prompts": sum(s.n_dropped > 0 for s in samples), "max_tokens": MAX_TOKENS,
                   "letter_ids": letters, "limit": limit, "model_config": model_config},
        )

    def build_model(self, params: Params, data_dir: Path, *, precision: str, device: "torch.device",
                    synthetic: bool, seed: int, load_path: str = "direct") -> "torch.nn.Module":
        from .model import build_model

        return build_model(self.paths(params, data_dir)["weight_dir"], precision, device, synthetic, seed,
                           layers=params.model_layers, load_path=load_path)

    def model_parameters(self, params: Params, data_dir: Path, synthetic: bool) -> int | None:
        """Parameters of the model the run will build (model_layers applied), for the host memory check;
        None when config.json cannot tell (the model build reports why)."""
        from .model import parameter_count

        return parameter_count(self.paths(params, data_dir)["weight_dir"], params.model_layers, synthetic)

    def deviations(self, params: Params, workload: Workload, model: dict[str, int]) -> list[str]:
        """How this run measures something other than the case, one verdict reason each: another model (shape,
        size), other data or prompts. (--limit is the harness's own rule.)"""
        out = []
        if params.model_layers is not None:
            out.append(f"shrunk model: model_layers={params.model_layers}, not the case's model")
        differ = [f"{k}={model.get(k)} (expected {v})" for k, v in self.architecture.items() if model.get(k) != v]
        if differ:
            out.append("the model is not Llama-2-7B: " + ", ".join(differ))
        elif model and abs(model.get("parameters", 0) - self.parameters) > 0.001 * self.parameters:
            out.append(f"the model has {model.get('parameters')} parameters, Llama-2-7B {self.parameters}")
        out += _identity_deviations(workload)
        if params.few_shots != self.few_shots:
            out.append(f"few_shots={params.few_shots}: the case is {self.few_shots}-shot")
        if workload.fingerprint.get("mmlu_text_sha256") != self.mmlu_text_sha256:
            out.append("the MMLU rows are not the hendrycks release's (text sha256 "
                       f"{str(workload.fingerprint.get('mmlu_text_sha256'))[:12]}..., expected {self.mmlu_text_sha256[:12]}...)")
        elif workload.notes.get("limit") is None and len(workload.samples) != self.questions:
            out.append(f"{len(workload.samples)} questions, the case has {self.questions}")
        return out

    def smoke_data(self) -> Path:
        from .smoke import default_cache_dir, make_smoke_data

        root = default_cache_dir()
        check_cache_root(root.parent)
        try:
            return make_smoke_data(root)
        except OSError as exc:
            raise BenchmarkError(f"LLAMA_BENCH_CACHE {root.parent}: cannot write the smoke data there "
                                 f"({exc.strerror or exc}); set LLAMA_BENCH_CACHE to a writable folder") from None


_PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def check_cache_root(root: Path) -> None:
    """The smoke cache's folder ($LLAMA_BENCH_CACHE) must be a folder on a real file system."""
    check_path(root, "LLAMA_BENCH_CACHE")
    try:
        resolved = root.resolve()
    except (OSError, RuntimeError) as exc:
        raise BenchmarkError(f"LLAMA_BENCH_CACHE {root}: cannot resolve it ({one_line(exc)}); set LLAMA_BENCH_CACHE "
                             "to a writable folder") from None
    if any(resolved == Path(p) or Path(p) in resolved.parents for p in _PSEUDO_FILESYSTEMS):
        raise BenchmarkError(f"LLAMA_BENCH_CACHE {root}: under {resolved.parts[0]}{resolved.parts[1]}, a kernel "
                             "file system, not a place for a cache; set LLAMA_BENCH_CACHE to a writable folder")
    if root.exists() and not root.is_dir():
        raise BenchmarkError(f"LLAMA_BENCH_CACHE {root}: not a folder; set LLAMA_BENCH_CACHE to a writable folder "
                             "(or unset it for ~/.cache/llama_bench)")


def _model_config(weight_dir: Path) -> dict[str, Any]:
    """The config fields that change the arithmetic (identity.model_arithmetic), of the config the model is
    built from: weight_dir/config.json, or Llama-2-7B's for a synthetic run without one."""
    import transformers

    from .model import LLAMA2_7B, read_model_config

    return identity.model_arithmetic(read_model_config(weight_dir) or transformers.LlamaConfig(**LLAMA2_7B))


def _identity_deviations(workload: Workload) -> list[str]:
    """The tokenizer and the arithmetic config fields against Llama-2-7B's (when the workload recorded them)."""
    out = []
    tokenizer = workload.fingerprint.get("tokenizer_sha256")
    if tokenizer is not None and tokenizer != identity.LLAMA2_TOKENIZER_SHA256:
        out.append(f"the tokenizer is not Llama-2's (vocabulary and probe text sha256 {tokenizer[:12]}..., expected "
                   f"{identity.LLAMA2_TOKENIZER_SHA256[:12]}...): other token ids, other labels")
    config = workload.notes.get("model_config")
    differ = identity.arithmetic_deviations(config) if isinstance(config, dict) else []
    if differ:
        out.append("the model config is not Llama-2-7B's: " + ", ".join(differ))
    return out


def weights_fingerprint(weight_dir: Path) -> str:
    """sha256 of config.json and the weights' index (or of the file names and sizes): cheap, not the 13 GB."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (weight_dir / name).is_file():
            h.update(name.encode() + (weight_dir / name).read_bytes())
    for path in sorted(weight_dir.glob("*.safetensors")) + sorted(weight_dir.glob("*.bin")):
        h.update(f"{path.name}:{path.stat().st_size}".encode())
    return h.hexdigest()


CASE = Llama2MMLU()
