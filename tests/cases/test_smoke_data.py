"""The self-made smoke data_dir (benchmarks/llama2_7b_mmlu/smoke.py): layout, model, tokenizer, CSV exactness, reuse."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import transformers

from benchmarks.llama2_7b_mmlu import smoke
from benchmarks.llama2_7b_mmlu.smoke import CHOICES, SUBJECTS, format_prompt, make_smoke_data

N_TEST = 3


def _read(path: Path) -> list[list[str]]:
    return pd.read_csv(path, header=None, dtype=str, keep_default_na=False).values.tolist()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("smoke") / "data_dir"
    assert make_smoke_data(root, n_test=N_TEST) == root
    return root


@pytest.fixture(scope="module")
def tok(data_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(str(data_dir / "llama2_7b_hf"))


@pytest.fixture(scope="module")
def prompts(data_dir: Path) -> list[str]:
    base = data_dir / "mmlu_dataset" / "data"
    out = []
    for subject in SUBJECTS:
        dev = _read(base / "dev" / f"{subject}_dev.csv")
        for row in _read(base / "test" / f"{subject}_test.csv"):
            out.append(format_prompt(subject, dev, row))
    return out


# --------------------------------------------------------------------------------------------- layout


def test_layout(data_dir: Path) -> None:
    model_dir = data_dir / "llama2_7b_hf"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (model_dir / name).is_file(), name
    assert not list(model_dir.glob("*.bin")), "weights must be safetensors"
    assert not list(data_dir.glob(".tmp-*")), "temporary generation folder left behind"

    marker = json.loads((data_dir / ".complete-v1").read_text())
    assert marker["format"] == 1 and marker["n_test"] == N_TEST and marker["seed"] == 0

    assert len(SUBJECTS) == len(set(SUBJECTS)) == 57
    for split, n in (("dev", 5), ("test", N_TEST)):
        folder = data_dir / "mmlu_dataset" / "data" / split
        files = sorted(p.name for p in folder.iterdir())
        assert files == sorted(f"{s}_{split}.csv" for s in SUBJECTS)
        for subject in SUBJECTS:
            path = folder / f"{subject}_{split}.csv"
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            assert len(rows) == n, path  # no header row
            assert rows == [list(r) for r in smoke.smoke_rows(subject, split, n)]
            for row in rows:
                assert len(row) == 6 and row[5] in CHOICES
                assert len(set(row[1:5])) == 4, row  # distinct choices
                if row[0].startswith("What is "):  # arithmetic rows: the letter points at the result
                    a, op, b = row[0][len("What is "):-1].split()
                    value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
                    assert row[1 + CHOICES.index(row[5])] == str(value)


def test_csv_exact_reading(data_dir: Path) -> None:
    base = data_dir / "mmlu_dataset" / "data"
    test_rows = _read(base / "test" / "abstract_algebra_test.csv")
    assert test_rows[0] == list(smoke.NONE_ROW)
    assert "None" in test_rows[0][1:5]
    dev_rows = _read(base / "dev" / "abstract_algebra_dev.csv")
    question = dev_rows[0][0]
    assert question == smoke.QUOTE_COMMA_ROW[0] and "," in question and '"' in question
    # Every file reads back exactly as generated (strings, nothing turned into NaN or numbers).
    for split, n in (("dev", 5), ("test", N_TEST)):
        for subject in SUBJECTS:
            got = _read(base / split / f"{subject}_{split}.csv")
            assert got == [list(r) for r in smoke.smoke_rows(subject, split, n)], (subject, split)


# ---------------------------------------------------------------------------------- model & tokenizer


def test_model_forward(data_dir: Path, tok, prompts: list[str]) -> None:
    model = transformers.LlamaForCausalLM.from_pretrained(str(data_dir / "llama2_7b_hf"))
    model.eval()
    cfg = model.config
    assert cfg.vocab_size == len(tok)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (64, 2, 4)
    assert cfg.max_position_embeddings == 2048
    assert cfg.bos_token_id == tok.bos_token_id and cfg.eos_token_id == tok.eos_token_id
    ids = tok(prompts[0], return_tensors="pt").input_ids
    n = ids.shape[1]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert tuple(logits.shape) == (1, n, cfg.vocab_size)
    assert torch.isfinite(logits).all()


def test_tokenizer_contract(tok) -> None:
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>" and tok.unk_token == "<unk>"
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    letter_ids = []
    for letter in CHOICES:
        ids = tok(letter).input_ids
        assert len(ids) == 2 and ids[0] == tok.bos_token_id, (letter, ids)
        letter_ids.append(ids[1])
        # The letter after "Answer:" is the same token as the bare letter (as with Llama's "▁A").
        assert tok("Answer: " + letter).input_ids[-1] == ids[1]
        assert tok(letter, add_special_tokens=False).input_ids == [ids[1]]
    assert len(set(letter_ids)) == 4 and tok.unk_token_id not in letter_ids
    # Byte fallback: text outside the generated vocabulary still never maps to <unk>.
    odd = "Zoë ½ 漢字 \t tabs\r\n ~`|{}"
    ids = tok(odd).input_ids
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == odd


def test_prompts_tokenize_without_unk(tok, prompts: list[str]) -> None:
    assert len(prompts) == 57 * N_TEST
    lengths = []
    for text in prompts:
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
        assert tok.unk_token_id not in ids
        lengths.append(len(ids))
    assert 100 <= min(lengths) and max(lengths) <= 400, (min(lengths), max(lengths))
    assert tok.decode(tok(prompts[0]).input_ids, skip_special_tokens=True) == prompts[0]


def test_tokenizer_config_is_portable(data_dir: Path) -> None:
    cfg = json.loads((data_dir / "llama2_7b_hf" / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"  # a name both 4.x and 5.x resolve


# ------------------------------------------------------------------------------------ reuse & marker


def _stamps(root: Path) -> dict[str, int]:
    paths = [
        root / ".complete-v1",
        root / "llama2_7b_hf" / "model.safetensors",
        root / "llama2_7b_hf" / "tokenizer.json",
        root / "mmlu_dataset" / "data" / "test" / "abstract_algebra_test.csv",
    ]
    return {p.name: p.stat().st_mtime_ns for p in paths}


def test_reuse_and_marker(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_smoke_data(root, n_test=1)
    before = _stamps(root)
    model_bytes = (root / "llama2_7b_hf" / "model.safetensors").read_bytes()

    assert make_smoke_data(root, n_test=1) == root
    assert _stamps(root) == before  # reused, nothing rewritten

    # An interrupted generation (no marker, damaged files) is not reused but regenerated.
    csv_path = root / "mmlu_dataset" / "data" / "test" / "abstract_algebra_test.csv"
    csv_path.write_text("truncated")
    (root / ".complete-v1").unlink()
    make_smoke_data(root, n_test=1)
    after = _stamps(root)
    assert all(after[k] != before[k] for k in before), (before, after)
    assert _read(csv_path) == [list(smoke.NONE_ROW)]
    assert (root / "llama2_7b_hf" / "model.safetensors").read_bytes() == model_bytes  # deterministic

    # Other parameters than the marker's: regenerated with the new row count.
    make_smoke_data(root, n_test=2)
    assert len(_read(csv_path)) == 2
    assert json.loads((root / ".complete-v1").read_text())["n_test"] == 2


def test_deterministic(tmp_path: Path, data_dir: Path) -> None:
    other = make_smoke_data(tmp_path / "again", n_test=N_TEST)
    for rel in ("llama2_7b_hf/model.safetensors", "llama2_7b_hf/tokenizer.json",
                "mmlu_dataset/data/dev/anatomy_dev.csv", "mmlu_dataset/data/test/world_religions_test.csv"):
        assert (other / rel).read_bytes() == (data_dir / rel).read_bytes(), rel


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLAMA_BENCH_CACHE", str(tmp_path))
    assert smoke.default_cache_dir() == tmp_path / "smoke-v1"
    monkeypatch.delenv("LLAMA_BENCH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert smoke.default_cache_dir() == tmp_path / "home" / ".cache" / "llama_bench" / "smoke-v1"
