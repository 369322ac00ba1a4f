"""A tiny, self-made `data_dir` for `--smoke` runs: nothing is downloaded and nothing is read from disk.

`make_smoke_data(root)` writes a folder with the same layout as the real data_dir, so the NORMAL loading
path of the case reads it unchanged:

    root/
      llama2_7b_hf/                    tiny LlamaForCausalLM (save_pretrained, safetensors) + tokenizer
      mmlu_dataset/data/dev/<subject>_dev.csv     5 rows each, all 57 MMLU subjects
      mmlu_dataset/data/test/<subject>_test.csv   n_test rows each
      .complete-v1                     marker, written last (JSON: the generation parameters)

The tokenizer is built here with the `tokenizers` library, in the shape of Llama's own `tokenizer.json`:
a BPE model with `byte_fallback` (the 256 `<0xNN>` tokens are in the vocab, so no text ever maps to
`<unk>`), a Metaspace pre-tokenizer (spaces become "▁", a "▁" is prepended to the text, like
SentencePiece), the printable ASCII characters as single tokens, and merges that spell each word of the
generated prompts ("▁What", "▁algebra", "▁A", ...) so that prompts stay short (~100-300 tokens). Every
merge has a "▁"-led left side, so the merges of one word cannot interfere inside another. A
TemplateProcessing post-processor prepends `<s>` (id 1), so `tok("A").input_ids == [1, id("▁A")]` and the
letter after "Answer:" is the same token id. Ids 0/1/2 are <unk>/<s>/</s> as in Llama-2.

Everything is deterministic (fixed seeds, sorted vocab); generation takes a few seconds on 2 CPU cores,
most of it importing transformers.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import re
import sys
from pathlib import Path
from typing import Iterator, Sequence

MARKER = ".complete-v1"
FORMAT_VERSION = 1
MODEL_DIRNAME = "llama2_7b_hf"
DATASET_DIRNAME = "mmlu_dataset"
N_DEV = 5

# The real subject names, so the generated data exercises the case's subject validation.
from . import data as mmlu  # noqa: E402
from .data import LETTERS as CHOICES  # noqa: E402
from .data import SUBJECTS  # noqa: E402
from ..guard import safe_write  # noqa: E402

assert len(SUBJECTS) == 57

# Special tokens: the ids of Llama-2 (<unk>=0, <s>=1, </s>=2).
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPACE = "\u2581"  # "▁", SentencePiece's space

# Rows that exercise exact CSV reading: a question with a comma and double quotes (dev of the first
# subject, so it is in the 5-shot prefix of every abstract_algebra prompt) and a choice that is exactly
# `None` (pandas would read it as NaN with its default NA values).
QUOTE_COMMA_ROW = ('If "a, b" stands for a + b, what is "6, 7"?', "13", "12", "14", "42", "A")
NONE_ROW = ("Which of the following is a negative integer greater than 5?", "6", "-6", "None", "7", "C")


# --------------------------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """$LLAMA_BENCH_CACHE or ~/.cache/llama_bench, then /smoke-v1."""
    base = os.environ.get("LLAMA_BENCH_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "llama_bench"
    return root / "smoke-v1"


# ---------------------------------------------------------------------------------------------- data


def _arith_row(rng: random.Random) -> tuple[str, str, str, str, str, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        value = a * b
    else:
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        value = a + b if op == "+" else a - b
    wrong: list[int] = []
    for delta in rng.sample([-10, -3, -2, -1, 1, 2, 3, 10], 8):
        if len(wrong) == 3:
            break
        wrong.append(value + delta)
    options = [value] + wrong
    rng.shuffle(options)
    letter = CHOICES[options.index(value)]
    return (f"What is {a} {op} {b}?", *(str(o) for o in options), letter)  # type: ignore[return-value]


def smoke_rows(subject: str, split: str, n: int, seed: int = 0) -> list[tuple[str, ...]]:
    """The rows of one CSV: deterministic in (seed, subject, split), independent of the other files."""
    rng = random.Random(f"smoke-v1:{seed}:{subject}:{split}")  # str seeds are hashed deterministically
    rows: list[tuple[str, ...]] = [_arith_row(rng) for _ in range(n)]
    if subject == SUBJECTS[0] and n > 0:
        rows[0] = QUOTE_COMMA_ROW if split == "dev" else NONE_ROW
    return rows


def _write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerows(rows)
    safe_write.write_text(path, buf.getvalue())


def _write_dataset(dataset_dir: Path, n_test: int, seed: int) -> dict[str, dict[str, list[tuple[str, ...]]]]:
    out: dict[str, dict[str, list[tuple[str, ...]]]] = {}
    for split, n in (("dev", N_DEV), ("test", n_test)):
        d = dataset_dir / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        for subject in SUBJECTS:
            rows = smoke_rows(subject, split, n, seed)
            _write_csv(d / f"{subject}_{split}.csv", rows)
            out.setdefault(subject, {})[split] = rows
    return out


def _question(subject: str, index: int, row: Sequence[str]) -> mmlu.Question:
    return mmlu.Question(subject, index, row[0], tuple(row[1:5]), row[5])  # type: ignore[arg-type]


def format_prompt(subject: str, dev_rows: Sequence[Sequence[str]], test_row: Sequence[str]) -> str:
    """The 5-shot prompt of CSV rows, by the case's own formatter (used to build the vocab and by the tests)."""
    dev = [_question(subject, i, r) for i, r in enumerate(dev_rows)]
    return mmlu.build_prompt(subject, dev, _question(subject, 0, test_row), len(dev))


# ----------------------------------------------------------------------------------------- tokenizer

_WORD = re.compile(SPACE + "[A-Za-z0-9]+")


def build_tokenizer(corpus: Sequence[str]):
    """A Llama-like `tokenizers.Tokenizer` whose merges spell every "▁word" of `corpus` as one token."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    pre = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first", split=True)
    words: set[str] = {SPACE + c for c in CHOICES}
    for text in corpus:
        for piece, _ in pre.pre_tokenize_str(text):
            m = _WORD.match(piece)
            if m:
                words.add(m.group(0))

    vocab: dict[str, int] = {}
    for tok in (UNK, BOS, EOS, *(f"<0x{b:02X}>" for b in range(256)), SPACE, *map(chr, range(33, 127))):
        vocab.setdefault(tok, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in sorted(words):
        for k in range(1, len(word)):
            left, right = word[:k], word[k]
            if left + right not in vocab:
                vocab[left + right] = len(vocab)
                merges.append((left, right))

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (UNK, BOS, EOS)])
    return tokenizer


def _save_tokenizer(tokenizer, model_dir: Path, model_max_length: int) -> int:
    import transformers

    wrapped = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    wrapped.save_pretrained(str(model_dir))
    # transformers 5.x records its class as "TokenizersBackend", which 4.x does not know; both resolve
    # "PreTrainedTokenizerFast" (5.x keeps it as an alias), so a folder made by either loads on both.
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    safe_write.write_text(cfg_path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    return len(wrapped)


# --------------------------------------------------------------------------------------------- model

MODEL_KWARGS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=2048,
    hidden_act="silu",
    rms_norm_eps=1e-5,
    initializer_range=0.02,
    tie_word_embeddings=False,
    use_cache=True,
)


def _save_model(model_dir: Path, vocab_size: int, bos_id: int, eos_id: int, seed: int) -> None:
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=None, **MODEL_KWARGS
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(config)
    model.eval()
    with _quiet_progress_bars():
        model.save_pretrained(str(model_dir))  # safetensors is the default on 4.4x and 5.x


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' "Writing model shards" bar (5.x) for the duration, then restore the setting."""
    from transformers.utils import logging as hf_logging

    enabled = getattr(hf_logging, "is_progress_bar_enabled", lambda: False)()
    if enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


# ------------------------------------------------------------------------------------------ assembly


def _read_marker(root: Path) -> dict | None:
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_complete(root: Path, n_test: int, seed: int) -> bool:
    info = _read_marker(root)
    if not info or info.get("format") != FORMAT_VERSION:
        return False
    if info.get("n_test") != n_test or info.get("seed") != seed:
        return False
    model_dir = root / MODEL_DIRNAME
    needed = [model_dir / "config.json", model_dir / "tokenizer.json", model_dir / "tokenizer_config.json",
              root / DATASET_DIRNAME / "data" / "dev", root / DATASET_DIRNAME / "data" / "test"]
    return (all(p.exists() for p in needed) and any(model_dir.glob("*.safetensors"))
            and info.get("sha256") == _digests(root))


def _digests(root: Path) -> dict[str, str]:
    """sha256 of every generated file (1.4 MB in all, milliseconds): a damaged cache is regenerated, not
    reported as a broken Llama-2 export by the run that reads it."""
    import hashlib

    out = {}
    for top in (MODEL_DIRNAME, DATASET_DIRNAME):
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on root/.lock (POSIX); no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = safe_write.open_fd(root / ".lock", os.O_RDWR, "smoke cache lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _generate(work: Path, n_test: int, seed: int) -> dict:
    import tokenizers
    import transformers

    data = _write_dataset(work / DATASET_DIRNAME, n_test, seed)
    corpus = []
    for subject, splits in data.items():
        for row in splits["test"] or [splits["dev"][0]]:
            corpus.append(format_prompt(subject, splits["dev"], row))
    tokenizer = build_tokenizer(corpus)
    model_dir = work / MODEL_DIRNAME
    model_dir.mkdir(parents=True)
    vocab_size = _save_tokenizer(tokenizer, model_dir, MODEL_KWARGS["max_position_embeddings"])
    _save_model(model_dir, vocab_size, tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS), seed)
    return {
        "format": FORMAT_VERSION,
        "n_test": n_test,
        "seed": seed,
        "vocab_size": vocab_size,
        "subjects": len(SUBJECTS),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def make_smoke_data(root: Path, n_test: int = 4, seed: int = 0) -> Path:
    """Create (or reuse, if a complete marker file `root/.complete-v1` exists) the tiny data_dir; return root.

    The marker is written last (atomically) and records `n_test`/`seed`: a folder without it, or made
    with other parameters, is regenerated. Generation happens in `root/.tmp-*`, and the finished parts
    replace `llama2_7b_hf/` and `mmlu_dataset/`; nothing else under root is touched. Concurrent callers
    serialise on `root/.lock`.
    """
    given = Path(root).expanduser()
    root = given.resolve()
    if n_test < 0:
        raise ValueError(f"n_test must be >= 0, got {n_test}")
    if _is_complete(root, n_test, seed):
        return given
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if _is_complete(root, n_test, seed):  # another process finished it while we waited
            return given
        safe_write.remove(root / MARKER)
        for stale in root.glob(".tmp-*"):
            safe_write.remove_tree(stale)
        work = root / f".tmp-{os.getpid()}"
        work.mkdir()
        try:
            info = _generate(work, n_test, seed)
            for name in (MODEL_DIRNAME, DATASET_DIRNAME):
                safe_write.move_folder(work / name, root / name)
        finally:
            safe_write.remove_tree(work)
        info["sha256"] = _digests(root)
        safe_write.write_text(root / MARKER, json.dumps(info, indent=2) + "\n")  # last, atomically
    return given


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Generate the tiny smoke-test data_dir and print its path.")
    p.add_argument("root", nargs="?", type=Path, default=None, help="default: " + str(default_cache_dir()))
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(make_smoke_data(args.root or default_cache_dir(), n_test=args.n_test, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
