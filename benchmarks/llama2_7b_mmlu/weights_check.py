"""Checks of a weight_dir that transformers does not make, or makes after a multi-line report and a silent fix:
config.json types, shards outside the index, tensors in another dtype than declared, tensors that do not fit
the declared shapes or are left over (more layers than declared), and a tokenizer larger than the vocabulary.

Every problem is a BenchmarkError naming the file and the tensor or key: a model that loads "with warnings"
measures something else than Llama-2-7B and must not produce a number.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import stat
import struct
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import BenchmarkError

REEXPORT = "re-export Llama-2-7B in Hugging Face format (transformers' convert_llama_weights_to_hf.py)"
# config.json keys that size the model: positive integers of a sane size, never strings or floats.
_SIZE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "max_position_embeddings", "head_dim")
_MAX_SIZE = 2**31 - 1
_DTYPE_NAMES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
_MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header of 7B weights is ~30 kB


def check_regular_files(weight_dir: Path) -> None:
    """Every file in weight_dir (links followed) is a regular file: the tokenizer, config and weight loaders read
    whatever is there, and a FIFO blocks them forever while /dev/zero never ends."""
    try:
        entries = sorted(weight_dir.iterdir())
    except OSError:
        return  # the loaders name a missing or unreadable folder themselves
    for path in entries:
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise BenchmarkError(f"{path}: cannot read it ({exc.strerror}); fix or remove it") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise BenchmarkError(f"{path}: not a regular file (a FIFO, device or socket), which the loaders would "
                                 f"block on or read forever; remove it or {REEXPORT}")


def check_config_values(raw: Mapping[str, Any], path: Path) -> None:
    """Types and ranges of the keys that size the model (transformers fails later, or deep inside)."""
    for key in _SIZE_KEYS:
        value = raw.get(key)
        if value is None and key in ("num_key_value_heads", "head_dim"):
            continue
        if key not in raw and key != "vocab_size":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_SIZE:
            raise BenchmarkError(f"{path}: key '{key}' is {value!r}; expected a positive integer (the exported "
                                 f"model's size); {REEXPORT}")
    for key in ("rms_norm_eps", "rope_theta"):
        value = raw.get(key)
        if key in raw and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                               and math.isfinite(value) and value > 0):
            raise BenchmarkError(f"{path}: key '{key}' is {value!r}; expected a positive number; {REEXPORT}")
    heads, hidden = raw.get("num_attention_heads"), raw.get("hidden_size")
    if isinstance(heads, int) and isinstance(hidden, int) and "head_dim" not in raw and hidden % heads:
        raise BenchmarkError(f"{path}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}; "
                             f"{REEXPORT}")
    for key in ("torch_dtype", "dtype"):
        value = raw.get(key)
        if value is not None and value not in _DTYPE_NAMES:
            raise BenchmarkError(f"{path}: key '{key}' is {value!r}; expected one of {', '.join(_DTYPE_NAMES)}")


def declared_dtype(raw: Mapping[str, Any]) -> str | None:
    return raw.get("dtype") or raw.get("torch_dtype")


def safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a .safetensors file (tensor name -> dtype, shape, offsets): read, not the data.
    None when it has none: the loader then says the file does not load."""
    try:
        with path.open("rb") as f:
            size_bytes = f.read(8)
            (size,) = struct.unpack("<Q", size_bytes) if len(size_bytes) == 8 else (-1,)
            if not 0 < size <= _MAX_HEADER_BYTES:
                raise ValueError("no safetensors header")
            header = json.loads(f.read(size).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    return {k: v for k, v in header.items() if k != "__metadata__"}


def check_shards(weight_dir: Path) -> None:
    """With an index, every *.safetensors file must be in it (transformers would ignore the others); without
    one, a single file (transformers would read only model.safetensors)."""
    files = sorted(p.name for p in weight_dir.glob("*.safetensors"))
    index = weight_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (ValueError, UnicodeDecodeError, AttributeError, RecursionError) as exc:
            raise BenchmarkError(f"{index}: not a valid weights index ({exc}); {REEXPORT}") from None
        if not isinstance(weight_map, dict):
            raise BenchmarkError(f"{index}: key 'weight_map' missing or not a mapping; {REEXPORT}")
        listed = {str(v) for v in weight_map.values()}
        extra = [f for f in files if f not in listed]
        if extra:
            raise BenchmarkError(f"{weight_dir / extra[0]}: a weight file the index {index.name} does not list "
                                 f"({len(extra)} such file(s)); its tensors would be ignored: remove it or "
                                 f"{REEXPORT}")
    elif len(files) > 1:
        raise BenchmarkError(f"{weight_dir}: {len(files)} *.safetensors files ({', '.join(files[:3])}) but no "
                             "model.safetensors.index.json saying which tensor is where; " + REEXPORT)


def check_dtypes(weight_dir: Path, raw: Mapping[str, Any], config_path: Path) -> None:
    """Every tensor in the dtype config.json declares: loading casts silently, so a float32 export declared
    float16 (or the reverse) would run in a precision nobody chose."""
    declared = declared_dtype(raw)
    if declared is None:
        return
    want = _DTYPE_NAMES[declared]
    for path in sorted(weight_dir.glob("*.safetensors")):
        for name, info in (safetensors_header(path) or {}).items():
            got = info.get("dtype") if isinstance(info, dict) else None
            if got != want:
                raise BenchmarkError(f"{path}: tensor '{name}' is {got}, but {config_path} declares dtype "
                                     f"{declared} ({want}); fix config.json's dtype or {REEXPORT}")


def check_loading_info(weight_dir: Path, info: Mapping[str, Iterable[Any]], layers: int | None = None) -> None:
    """transformers' own report: tensors left over (more layers in the files than config.json declares) or
    of another shape than the config gives (a vocabulary or hidden size that does not match). layers: the
    model was shrunk on purpose (model_layers) to its first N layers, whose later layers are left unread."""
    unexpected = sorted(k for k in (info.get("unexpected_keys") or ()) if not _beyond(k, layers))
    if unexpected:
        raise BenchmarkError(f"{weight_dir}: the weight files hold {len(unexpected)} tensor(s) the model of "
                             f"config.json has no place for (e.g. {', '.join(unexpected[:3])}); config.json declares "
                             f"fewer layers or other names than the weights: fix config.json or {REEXPORT}")
    mismatched = sorted(info.get("mismatched_keys") or (), key=str)
    if mismatched:
        key, *shapes = mismatched[0]
        detail = f"{key} is {list(shapes[0])} in the files, {list(shapes[1])} by config.json" if len(shapes) == 2 \
            else str(key)
        raise BenchmarkError(f"{weight_dir}: {len(mismatched)} tensor(s) do not match config.json's shapes ({detail}); "
                             f"fix vocab_size/hidden_size in config.json or {REEXPORT}")


def _beyond(key: str, layers: int | None) -> bool:
    """Whether a tensor name belongs to decoder layer `layers` or later (model.layers.<i>.)."""
    m = re.search(r"(?:^|\.)layers\.(\d+)\.", key)
    return layers is not None and m is not None and int(m.group(1)) >= layers


def check_tokenizer_fits(weight_dir: Path, tokenizer_size: int, vocab_size: int) -> None:
    if tokenizer_size > vocab_size:
        raise BenchmarkError(f"{weight_dir}: the tokenizer has {tokenizer_size} tokens but config.json's vocab_size "
                             f"is {vocab_size}: token ids past the embedding would be read; use the tokenizer "
                             f"exported with these weights")


SAMPLE_BYTES = 1024  # per window; three windows per tensor (start, middle, end): a few KB of each tensor
_BIN_WINDOWS = 64  # pickle weights have no header to find tensors in: windows spread over the file


def _windows(begin: int, end: int) -> list[tuple[int, int]]:
    """Up to three (offset, length) windows of SAMPLE_BYTES in [begin, end): start, middle, end."""
    size = end - begin
    if size <= 3 * SAMPLE_BYTES:
        return [(begin, size)] if size > 0 else []
    middle = begin + (size - SAMPLE_BYTES) // 2
    return [(begin, SAMPLE_BYTES), (middle, SAMPLE_BYTES), (end - SAMPLE_BYTES, SAMPLE_BYTES)]


def content_sample_sha256(weight_dir: Path) -> str:
    """sha256 of a sample of every tensor's bytes (its name, dtype, shape and three windows of SAMPLE_BYTES),
    read from the safetensors files without loading the model; pickle weights are sampled at windows spread
    over each file. Re-randomized weights of the same shapes change it; reading it costs a few MB of a 13 GB
    export. Unreadable files are left to the loader, which names them."""
    h = hashlib.sha256()
    for path in sorted(weight_dir.glob("*.safetensors")):
        header = safetensors_header(path)
        if header is None:
            continue
        with path.open("rb") as f:
            base = 8 + struct.unpack("<Q", f.read(8))[0]
            for name in sorted(header):
                info = header[name]
                offsets = info.get("data_offsets") if isinstance(info, dict) else None
                if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
                    continue
                h.update(json.dumps([path.name, name, info.get("dtype"), info.get("shape")]).encode())
                for offset, length in _windows(base + offsets[0], base + offsets[1]):
                    f.seek(offset)
                    h.update(f.read(length))
    for path in sorted(weight_dir.glob("*.bin")):
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with path.open("rb") as f:
            for k in range(_BIN_WINDOWS):
                f.seek(size * k // _BIN_WINDOWS)
                h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()
