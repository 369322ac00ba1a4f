"""Tests of benchmarks.llama2_7b_mmlu.data on the real MMLU release and the real Llama-2 tokenizer.

The shared data lives in <repo>/../shared/data (override: env LLAMA_BENCH_SHARED_DATA). Without it the
real-data tests are skipped, or fail under CI. The error tests use tiny CSVs and always run.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import os
import re
from pathlib import Path

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.llama2_7b_mmlu import data as D

SHARED = Path(os.environ.get("LLAMA_BENCH_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
MMLU = SHARED / "mmlu" / "data"
TOKENIZER = SHARED / "llama2_tokenizer"
LENGTHS_CSV = SHARED / "mmlu" / "prompt_lengths_llama2.csv"

# The header that prompt_lengths_llama2.csv was built with: ONE space before the subject
# (format_subject already starts with a space), see shared/data/mmlu/SOURCE.md.
ONE_SPACE_HEADER = "The following are multiple choice questions (with answers) about{}.\n\n"


def _require_shared() -> None:
    if (MMLU / "test").is_dir() and (TOKENIZER / "tokenizer.json").is_file() and LENGTHS_CSV.is_file():
        return
    msg = (f"shared data not found under {SHARED} (need mmlu/data/{{dev,test}}, mmlu/prompt_lengths_llama2.csv, "
           "llama2_tokenizer/); set LLAMA_BENCH_SHARED_DATA to the shared/data folder")
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def tokenizer():
    _require_shared()
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(str(TOKENIZER))
    assert tok.is_fast
    return tok


@pytest.fixture(scope="module")
def mmlu():
    _require_shared()
    return D.load_mmlu(MMLU, few_shots=5)


@pytest.fixture(scope="module")
def samples(tokenizer, mmlu):
    dev, test = mmlu
    return D.build_samples(tokenizer, dev, test, few_shots=5)


@pytest.fixture(scope="module")
def by_key(samples):
    return {(s.subject, s.index): s for s in samples}


@pytest.fixture(scope="module")
def sp():
    _require_shared()
    spm = pytest.importorskip("sentencepiece")
    return spm.SentencePieceProcessor(model_file=str(TOKENIZER / "tokenizer.model"))


# ---------------------------------------------------------------- 1. real data


def test_subjects_match_release():
    _require_shared()
    on_disk = sorted(p.name[: -len("_test.csv")] for p in (MMLU / "test").glob("*_test.csv"))
    assert D.SUBJECTS == tuple(on_disk)
    assert len(D.SUBJECTS) == 57 and list(D.SUBJECTS) == sorted(D.SUBJECTS)


@pytest.mark.slow  # tokenizes all 14,042 real prompts (~30 s on 2 idle cores)
def test_real_data_counts(mmlu, samples):
    dev, test = mmlu
    assert len(samples) == 14042
    assert sum(len(v) for v in dev.values()) == 285
    counts = collections.Counter(s.subject for s in samples)
    assert len(counts) == 57
    # Per-subject counts from SOURCE.md.
    for subject, n in {"abstract_algebra": 100, "college_physics": 102, "high_school_european_history": 165,
                       "moral_scenarios": 895, "professional_law": 1534, "world_religions": 171}.items():
        assert counts[subject] == n == len(test[subject])
    # Order: subjects in SUBJECTS order, rows in CSV order.
    assert [(s.subject, s.index) for s in samples] == [(q.subject, q.index) for sub in D.SUBJECTS for q in test[sub]]
    assert {q.answer for qs in test.values() for q in qs} == {"A", "B", "C", "D"}
    assert all(len(s.input_ids) <= 2048 and s.input_ids[0] == 1 for s in samples)
    # With the reference (two-space) header 524 prompts need truncation; 2 more than the one-space
    # header of prompt_lengths_llama2.csv (522), because the extra space is one more token.
    assert collections.Counter(s.n_dropped for s in samples) == {0: 13518, 1: 174, 2: 271, 3: 79}


def test_none_cell_kept_as_text(mmlu):
    _, test = mmlu
    q = test["college_mathematics"][8]
    assert q.index == 8
    assert "None" in (q.question, *q.choices)
    assert q.choices[0] == "None"
    # The ten 'None' cells of the test split (SOURCE.md), none turned into NaN / "nan".
    cells = [c for qs in test.values() for q in qs for c in (q.question, *q.choices)]
    assert cells.count("None") == 10
    assert "nan" not in cells


def test_limit_keeps_first_rows():
    _require_shared()
    dev, test = D.load_mmlu(MMLU, few_shots=5, limit=3, subjects=("anatomy", "virology"))
    assert list(test) == ["anatomy", "virology"]
    assert [q.index for q in test["anatomy"]] == [0, 1, 2]
    assert len(dev["virology"]) == 5


def test_fingerprint_is_sha256_of_csv_bytes():
    _require_shared()
    subjects = ("anatomy", "abstract_algebra")
    h = hashlib.sha256()
    for s in subjects:
        h.update((MMLU / "dev" / f"{s}_dev.csv").read_bytes())
        h.update((MMLU / "test" / f"{s}_test.csv").read_bytes())
    assert D.fingerprint(MMLU, subjects) == h.hexdigest()
    assert D.fingerprint(MMLU, subjects[::-1]) != h.hexdigest()


# ---------------------------------------------------------------- 2. exact prompt text


@pytest.mark.slow  # tokenizes all 14,042 real prompts (~30 s on 2 idle cores)
def test_prompt_text_abstract_algebra_0(mmlu, tokenizer, by_key):
    dev, test = mmlu
    q = test["abstract_algebra"][0]
    assert q.answer == "B"
    prompt = D.build_prompt("abstract_algebra", dev["abstract_algebra"], q, 5)
    assert prompt.startswith("The following are multiple choice questions (with answers) about  abstract algebra.\n\n")
    assert prompt.endswith("Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q."
                           "\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    assert len(re.findall(r"\nAnswer: [ABCD]\n\n", prompt)) == 5
    d0 = dev["abstract_algebra"][0]
    first = f"{d0.question}\nA. {d0.choices[0]}\nB. {d0.choices[1]}\nC. {d0.choices[2]}\nD. {d0.choices[3]}\nAnswer: {d0.answer}\n\n"
    assert prompt.split("\n\n", 1)[1].startswith(first)
    s = by_key[("abstract_algebra", 0)]
    assert s.n_dropped == 0
    assert list(s.input_ids) == tokenizer(prompt).input_ids


def test_format_subject_and_example():
    assert D.format_subject("abstract_algebra") == " abstract algebra"
    assert D.format_subject("high_school_us_history") == " high school us history"
    q = D.Question("x", 0, "Q?", ("a", "b", "c", "d"), "C")
    assert D.format_example(q, include_answer=False) == "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    assert D.format_example(q, include_answer=True) == "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\n"


def test_truncate_once_splits_dev_question_with_blank_line(mmlu):
    """The reference rule drops a "\\n\\n"-paragraph, not a whole example: replicated on purpose."""
    dev, test = mmlu
    econ = dev["econometrics"]
    assert "\n\n" in econ[1].question and "\n\n" not in econ[0].question
    prompt = D.build_prompt("econometrics", econ, test["econometrics"][0], 5)
    once = D.truncate_once(prompt)
    assert once == D.build_prompt("econometrics", econ[1:], test["econometrics"][0], 4)  # whole dev 0 gone
    twice = D.truncate_once(once)  # drops only the first paragraph of dev 1
    assert twice != D.build_prompt("econometrics", econ[2:], test["econometrics"][0], 3)
    assert twice.startswith(D.HEADER.format(" econometrics") + "yt = 0.2 + 0.4 yt-1 + ut\n\n")


# ---------------------------------------------------------------- 3. ids vs raw SentencePiece


def _sp_truncate(sp, prompt: str) -> str:
    # Independent re-statement of the reference rule, counted with raw SentencePiece.
    while len(sp.encode(prompt)) + 1 > 2048:
        parts = prompt.split("\n\n")
        prompt = "\n\n".join(parts[:1] + parts[2:])
    return prompt


@pytest.mark.slow  # tokenizes all 14,042 real prompts (~30 s on 2 idle cores)
def test_ids_equal_sentencepiece(mmlu, by_key, samples, sp):
    dev, test = mmlu
    euro = [s for s in samples if s.subject == "high_school_european_history" and s.n_dropped >= 1]
    most = max(samples, key=lambda s: s.n_dropped)
    keys = [("abstract_algebra", 0), ("college_mathematics", 8), ("electrical_engineering", 41),
            (euro[0].subject, euro[0].index), (most.subject, most.index)]
    for subject, index in keys:
        q = test[subject][index]
        text = _sp_truncate(sp, D.build_prompt(subject, dev[subject], q, 5))
        s = by_key[(subject, index)]
        assert list(s.input_ids) == [1] + sp.encode(text), (subject, index)
        assert len(s.input_ids) <= 2048
    assert euro[0].n_dropped >= 1 and most.n_dropped == 3


# ---------------------------------------------------------------- 4. labels


@pytest.mark.slow  # tokenizes all 14,042 real prompts (~30 s on 2 idle cores)
def test_labels(tokenizer, mmlu, samples):
    ids = D.letter_ids(tokenizer)
    assert ids == {"A": 319, "B": 350, "C": 315, "D": 360}
    _, test = mmlu
    answers = {(q.subject, q.index): q.answer for qs in test.values() for q in qs}
    assert all(s.label == ids[answers[(s.subject, s.index)]] for s in samples)
    assert collections.Counter(s.label for s in samples).keys() == {319, 350, 315, 360}


# ---------------------------------------------------------------- 5. lengths vs prompt_lengths_llama2.csv


@pytest.mark.slow  # tokenizes all 14,042 real prompts (~30 s on 2 idle cores)
def test_lengths_match_published_csv(mmlu, tokenizer):
    dev, test = mmlu
    questions = [q for s in D.SUBJECTS for q in test[s]]
    prompts = [D.build_prompt(q.subject, dev[q.subject], q, 5, header=ONE_SPACE_HEADER) for q in questions]
    assert prompts[0].startswith("The following are multiple choice questions (with answers) about abstract algebra.\n\n")
    encoded = D.tokenize_prompts(tokenizer, prompts, max_tokens=2048)
    with open(LENGTHS_CSV, newline="") as f:
        expected = {(r["subject"], int(r["index"])): int(r["n_tokens"]) for r in csv.DictReader(f)}
    got = {(q.subject, q.index): len(ids) for q, (ids, _) in zip(questions, encoded)}
    assert got == expected  # all 14042, no exception needed
    dropped = collections.Counter(n for _, n in encoded)
    assert sum(v for k, v in dropped.items() if k) == 522
    assert dropped == {0: 13520, 1: 172, 2: 271, 3: 79}  # k used 5/4/3/2, as SOURCE.md says
    # On this data the "\n\n" rule drops whole examples (no truncated prompt has a dev question with a
    # blank line), which is why the CSV's drop-oldest-example rule gives the same counts.
    for q, p, (_, n) in zip(questions, prompts, encoded):
        if n:
            t = p
            for _ in range(n):
                t = D.truncate_once(t)
            assert t == D.build_prompt(q.subject, dev[q.subject][n:], q, 5 - n, header=ONE_SPACE_HEADER)


# ---------------------------------------------------------------- tokenize_prompts logic (stub tokenizer)


class CharTokenizer:
    """One id per character plus BOS=1; records each batch it was called with."""

    bos_token_id = 1
    name_or_path = "stub/char"

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, text, add_special_tokens=True):
        batch = [text] if isinstance(text, str) else list(text)
        self.calls.append(batch)
        ids = [[1] + [ord(c) for c in t] for t in batch]
        return {"input_ids": ids[0] if isinstance(text, str) else ids}


def test_tokenize_prompts_rounds():
    tok = CharTokenizer()
    short = "H\n\nq"  # 4 chars
    one = "H\n\naaaa\n\nbbbb\n\nq"  # 16 chars: 1 + 16 > 12, drop "aaaa" -> 11 chars, 1 + 11 <= 12
    two = "H\n\naaaa\n\nbbbb\n\ncccc\n\nq"  # 22 -> 16 -> 10 chars
    out = D.tokenize_prompts(tok, [short, one, two], max_tokens=12)
    enc = lambda t: [1] + [ord(c) for c in t]
    assert out == [(enc(short), 0), (enc("H\n\nbbbb\n\nq"), 1), (enc("H\n\ncccc\n\nq"), 2)]
    assert [len(c) for c in tok.calls] == [3, 2, 1]  # all at once, then only the still-too-long ones
    assert D.tokenize_prompts(tok, [], max_tokens=12) == []


def test_tokenize_prompts_cannot_shorten():
    with pytest.raises(BenchmarkError, match=r"'H\\n\\nqqqqqqqqqq'.*after dropping every few-shot example"):
        D.tokenize_prompts(CharTokenizer(), ["H\n\naa\n\nqqqqqqqqqq"], max_tokens=5)


def test_letter_ids_needs_single_tokens():
    class TwoTokenLetters(CharTokenizer):
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [1, 29871, ord(text)]}

    with pytest.raises(BenchmarkError, match=r"tokenizer stub/char: 'A'.*no single-token answer letters"):
        D.letter_ids(TwoTokenLetters())
    assert D.letter_ids(CharTokenizer()) == {"A": 65, "B": 66, "C": 67, "D": 68}


# ---------------------------------------------------------------- 6. user errors


def _write_mmlu(root: Path, dev: bytes | str | None, test: bytes | str | None, subject="abstract_algebra") -> Path:
    for split, content in (("dev", dev), ("test", test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        if content is not None:
            path = root / split / f"{subject}_{split}.csv"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


GOOD_DEV = "".join(f"dq{i},a,b,c,d,A\n" for i in range(5))
GOOD_TEST = 'tq0,a,b,c,d,B\n"two\n\nlines",None,b,c,d,D\n'


def _load(root: Path, few_shots=5):
    return D.load_mmlu(root, few_shots=few_shots, subjects=("abstract_algebra",))


def test_tiny_good_data(tmp_path):
    dev, test = _load(_write_mmlu(tmp_path, GOOD_DEV, GOOD_TEST))
    assert test["abstract_algebra"][1] == D.Question("abstract_algebra", 1, "two\n\nlines", ("None", "b", "c", "d"), "D")
    assert len(dev["abstract_algebra"]) == 5


@pytest.mark.parametrize("dev, test, few_shots, pattern", [
    (None, GOOD_TEST, 5, r"abstract_algebra_dev\.csv: MMLU file not found"),
    (GOOD_DEV, None, 5, r"abstract_algebra_test\.csv: MMLU file not found"),
    (GOOD_DEV, "q,a,b,c,B\n", 5, r"abstract_algebra_test\.csv: has 5 columns, expected 6"),
    (GOOD_DEV, "q,a,b,c,d,A\nq,a,b,c,d,E\n", 5, r"abstract_algebra_test\.csv: row 2 has answer 'E', expected one of A, B, C, D"),
    (GOOD_DEV, "q,a,b,c,d,A\nq,a,b,c,d\n", 5, r"abstract_algebra_test\.csv: row 2 has answer '', expected one of A"),
    (GOOD_DEV, ",a,b,c,d,A\n", 5, r"abstract_algebra_test\.csv: row 1 has an empty question cell"),
    ("q,a,b,c,d,A\n" * 3, GOOD_TEST, 5, r"abstract_algebra_dev\.csv: has 3 rows, fewer than few_shots = 5"),
    (GOOD_DEV, b"\xff\xfe\x00bad", 5, r"abstract_algebra_test\.csv: not valid UTF-8"),
    (GOOD_DEV, b"", 5, r"abstract_algebra_test\.csv: file is empty"),
    (GOOD_DEV, "q,a,b,c,d,A\nq,a,b,c,d,A,x\n", 5, r"abstract_algebra_test\.csv: cannot parse as CSV"),
])
def test_csv_errors(tmp_path, dev, test, few_shots, pattern):
    root = _write_mmlu(tmp_path, dev, test)
    with pytest.raises(BenchmarkError, match=pattern) as excinfo:
        _load(root, few_shots)
    assert "\n" not in str(excinfo.value)


def test_few_shots_zero_accepts_short_dev(tmp_path):
    dev, _ = _load(_write_mmlu(tmp_path, "q,a,b,c,d,A\n", GOOD_TEST), few_shots=0)
    assert len(dev["abstract_algebra"]) == 1


def test_missing_mmlu_dir(tmp_path):
    with pytest.raises(BenchmarkError, match=r"nope does not exist; it should hold the dev/ and test/ folders.*data\.tar"):
        D.load_mmlu(tmp_path / "nope", few_shots=5)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BenchmarkError, match=r"file is not a directory; it should hold the dev/ and test/"):
        D.load_mmlu(tmp_path / "file", few_shots=5)


def test_unknown_subject(tmp_path):
    with pytest.raises(BenchmarkError, match=r"unknown MMLU subject 'astrology'"):
        D.load_mmlu(_write_mmlu(tmp_path, GOOD_DEV, GOOD_TEST), few_shots=5, subjects=("astrology",))


def test_build_prompt_more_shots_than_dev():
    q = D.Question("anatomy", 0, "Q?", ("a", "b", "c", "d"), "A")
    with pytest.raises(BenchmarkError, match=r"subject anatomy: few_shots = 2 but only 1 dev rows"):
        D.build_prompt("anatomy", [q], q, 2)


def test_fingerprint_missing_file(tmp_path):
    root = _write_mmlu(tmp_path, GOOD_DEV, None)
    with pytest.raises(BenchmarkError, match=r"abstract_algebra_test\.csv: cannot read"):
        D.fingerprint(root, ("abstract_algebra",))
