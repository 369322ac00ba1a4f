"""MMLU data for the llama2_7b_mmlu case: read the CSVs, build hendrycks-format prompts, tokenize them.

The prompt text and the truncation rule replicate the reference (FlagPerf / hendrycks `evaluate.py`)
exactly, quirks included, so token counts and accuracy stay comparable with its published numbers.
See shared/reference/CASE.md ("Prompts", "Scoring") and shared/data/mmlu/SOURCE.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import pandas as pd

from benchmarks import interfaces
from benchmarks.errors import BenchmarkError, one_line
from benchmarks.guard.input_limits import read_bytes

# The 57 subjects of the MMLU release (the file stems of data/test/*_test.csv), sorted.
SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics", "econometrics",
    "electrical_engineering", "elementary_mathematics", "formal_logic", "global_facts",
    "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics",
    "high_school_physics", "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law", "jurisprudence",
    "logical_fallacies", "machine_learning", "management", "marketing", "medical_genetics",
    "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition", "philosophy", "prehistory",
    "professional_accounting", "professional_law", "professional_medicine", "professional_psychology",
    "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
    "world_religions",
)

LETTERS = ("A", "B", "C", "D")

# hendrycks' header. format_subject() already starts with a space, so the text reads
# "about  abstract algebra." (two spaces), as the reference prompts do.
HEADER = "The following are multiple choice questions (with answers) about {}.\n\n"

_SPLITS = ("dev", "test")


@dataclass(frozen=True)
class Question:
    subject: str
    index: int  # 0-based data row in <subject>_<split>.csv
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # 'A'..'D'


@dataclass(frozen=True)
class Sample(interfaces.Sample):
    """index: the 0-based row in <subject>_test.csv; input_ids: BOS included; label: the answer letter's id."""

    n_dropped: int  # how many times truncate_once() was applied to fit max_tokens


def read_split(mmlu_dir: Path, split: str, subject: str) -> list[Question]:
    """Read `mmlu_dir/<split>/<subject>_<split>.csv` (headerless: question, A, B, C, D, answer)."""
    path = Path(mmlu_dir) / split / f"{subject}_{split}.csv"
    if not path.is_file():
        raise BenchmarkError(
            f"{path}: MMLU file not found; expected {subject}_{split}.csv in {path.parent} "
            f"(extract the MMLU release data.tar so that {split}/ holds one CSV per subject)")
    raw = read_bytes(path, "MMLU file")  # bounded: regular files only, at most input_limits.MAX_INPUT_BYTES
    try:
        # dtype=str + keep_default_na=False keep the exact text: pandas' defaults turn cells
        # reading "None" into NaN (12 cells in the release), which the reference then printed as "nan".
        df = pd.read_csv(io.BytesIO(raw), header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BenchmarkError(f"{path}: file is empty; expected headerless CSV rows "
                             "'question,A,B,C,D,answer' (re-extract the MMLU data)") from None
    except UnicodeDecodeError as e:
        raise BenchmarkError(f"{path}: not valid UTF-8 text ({one_line(e)}); "
                             "expected the UTF-8 CSVs of the MMLU release (re-extract the data)") from None
    except pd.errors.ParserError as e:
        raise BenchmarkError(f"{path}: cannot parse as CSV ({one_line(e)}); expected 6 columns "
                             "'question,A,B,C,D,answer' on every row (fix or re-extract the file)") from None
    if b"\x00" in raw:  # valid UTF-8, but pandas silently cuts a cell at a NUL: a damaged file, not text
        raise BenchmarkError(f"{path}: contains NUL bytes (first at byte {raw.find(bytes(1))}); expected the UTF-8 "
                             "text CSVs of the MMLU release (re-extract the file)")
    if df.shape[1] != 6:
        raise BenchmarkError(f"{path}: has {df.shape[1]} columns, expected 6 "
                             "(question, A, B, C, D, answer; no header row); fix or re-extract the file")
    questions = []
    for i, row in enumerate(df.itertuples(index=False, name=None)):
        # Short rows come back padded with '' (or NaN); treat anything non-str as empty.
        q, a, b, c, d, ans = (cell if isinstance(cell, str) else "" for cell in row)
        if not q:
            raise BenchmarkError(f"{path}: row {i + 1} has an empty question cell; "
                                 "expected question text in column 1 (fix the row or re-extract the file)")
        if ans not in LETTERS:
            raise BenchmarkError(f"{path}: row {i + 1} has answer {ans!r}, expected one of A, B, C, D "
                                 "in column 6 (fix the row or re-extract the file)")
        questions.append(Question(subject, i, q, (a, b, c, d), ans))
    return questions


def load_mmlu(
    mmlu_dir: Path, few_shots: int, limit: int | None = None, subjects: Iterable[str] = SUBJECTS,
) -> tuple[dict[str, list[Question]], dict[str, list[Question]]]:
    """Return (dev, test), each {subject: questions}. `limit` keeps the first N test rows per subject."""
    mmlu_dir = Path(mmlu_dir)
    if not mmlu_dir.is_dir():
        what = "is not a directory" if mmlu_dir.exists() else "does not exist"
        raise BenchmarkError(f"mmlu_dir {mmlu_dir} {what}; it should hold the dev/ and test/ folders "
                             "of the MMLU release data.tar (check data_dir and mmlu_dir)")
    if few_shots < 0:
        raise BenchmarkError(f"few_shots = {few_shots}; expected an integer >= 0 (MMLU's standard is 5)")
    if limit is not None and limit < 0:
        raise BenchmarkError(f"limit = {limit}; expected an integer >= 0 or None for all test rows")
    dev: dict[str, list[Question]] = {}
    test: dict[str, list[Question]] = {}
    for subject in subjects:
        if subject not in SUBJECTS:
            raise BenchmarkError(f"unknown MMLU subject {subject!r}; expected one of the 57 names in "
                                 "benchmarks.llama2_7b_mmlu.data.SUBJECTS (e.g. 'abstract_algebra')")
        dev[subject] = read_split(mmlu_dir, "dev", subject)
        if len(dev[subject]) < few_shots:
            path = mmlu_dir / "dev" / f"{subject}_dev.csv"
            raise BenchmarkError(f"{path}: has {len(dev[subject])} rows, fewer than few_shots = {few_shots}; "
                                 "lower few_shots or use the full MMLU dev split (5 rows per subject)")
        rows = read_split(mmlu_dir, "test", subject)
        test[subject] = rows if limit is None else rows[:limit]
    return dev, test


def format_subject(subject: str) -> str:
    # hendrycks: every '_'-separated word gets a leading space, so the result starts with a space.
    return "".join(" " + word for word in subject.split("_"))


def format_example(q: Question, include_answer: bool) -> str:
    text = q.question
    for letter, choice in zip(LETTERS, q.choices):
        text += f"\n{letter}. {choice}"
    text += "\nAnswer:"
    if include_answer:
        text += f" {q.answer}\n\n"
    return text


def build_prompt(subject: str, dev: Sequence[Question], test_q: Question, k: int, header: str = HEADER) -> str:
    """Header, the first k dev examples with answers, then the test question ending at "Answer:"."""
    if k > len(dev):
        raise BenchmarkError(f"subject {subject}: few_shots = {k} but only {len(dev)} dev rows; "
                             "lower few_shots or use the full MMLU dev split")
    prompt = header.format(format_subject(subject))
    for q in dev[:k]:
        prompt += format_example(q, include_answer=True)
    return prompt + format_example(test_q, include_answer=False)


def truncate_once(prompt: str) -> str:
    # The reference rule, verbatim: drop "\n\n"-separated element 1. That is the first remaining dev
    # example unless that example's own text contains "\n\n" (then only its first paragraph goes).
    # Kept as is so token counts match the reference; do not "fix".
    parts = prompt.split("\n\n")
    parts.pop(1)
    return "\n\n".join(parts)


def _without_bos(ids: Sequence[int], bos: int | None) -> int:
    return len(ids) - (1 if ids and bos is not None and ids[0] == bos else 0)


def tokenize_prompts(tokenizer, prompts: Sequence[str], max_tokens: int = 2048) -> list[tuple[list[int], int]]:
    """Return (input_ids with BOS, n_dropped) per prompt, truncated by the reference rule.

    Rule: while tokens(prompt without BOS) + 1 > max_tokens: prompt = truncate_once(prompt).
    Speed: one batched call to the fast tokenizer for all prompts, then rounds in which only the
    prompts still too long are truncated once and re-tokenized together (real data: 14042 prompts,
    then a few hundred per round). Re-tokenizing the whole text (not subtracting per-part counts)
    keeps the ids exactly those of the final prompt text.
    """
    prompts = list(prompts)
    bos = tokenizer.bos_token_id
    out: list[tuple[list[int], int] | None] = [None] * len(prompts)
    dropped = [0] * len(prompts)
    pending = list(range(len(prompts)))
    while pending:
        with _no_length_warning():
            encoded = tokenizer([prompts[i] for i in pending], add_special_tokens=True)["input_ids"]
        still_long = []
        for i, ids in zip(pending, encoded):
            if _without_bos(ids, bos) + 1 <= max_tokens:
                out[i] = (list(ids), dropped[i])
                continue
            if len(prompts[i].split("\n\n")) < 3:  # only header + test question left: nothing to drop
                raise PromptTooLong(i, len(ids), max_tokens,
                    f"prompt {prompts[i][:60]!r}... is {len(ids)} tokens after dropping every few-shot "
                    f"example, over max_tokens = {max_tokens}; raise max_tokens or skip this question")
            prompts[i] = truncate_once(prompts[i])
            dropped[i] += 1
            still_long.append(i)
        pending = still_long
    return out  # type: ignore[return-value]


@contextlib.contextmanager
def _no_length_warning() -> Iterator[None]:
    """Mute transformers' "Token indices sequence length is longer than..." warning: prompts over the limit
    are truncated here by the reference rule, or refused with the file and row."""
    logger = logging.getLogger("transformers.tokenization_utils_base")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class PromptTooLong(BenchmarkError):
    """A prompt over max_tokens with every few-shot example dropped; `position` is its index in the batch."""

    def __init__(self, position: int, tokens: int, max_tokens: int, message: str):
        super().__init__(message)
        self.position, self.tokens, self.max_tokens = position, tokens, max_tokens


def letter_ids(tokenizer) -> dict[str, int]:
    """Token id of each answer letter: the one id the tokenizer puts after BOS for "A" (etc.)."""
    ids = {}
    for letter in LETTERS:
        enc = list(tokenizer(letter)["input_ids"])
        if len(enc) != 2 or enc[0] != tokenizer.bos_token_id:
            name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise BenchmarkError(
                f"tokenizer {name}: {letter!r} encodes to {enc}, expected [BOS, one id]; the tokenizer has no "
                "single-token answer letters (use the Llama-2 tokenizer of the model's weight_dir)")
        ids[letter] = enc[1]
    return ids


def build_samples(
    tokenizer, dev: Mapping[str, Sequence[Question]], test: Mapping[str, Sequence[Question]],
    few_shots: int, max_tokens: int = 2048, mmlu_dir: Path | None = None,
) -> list[Sample]:
    """All test questions as Samples: subjects in SUBJECTS order (those in `test`), rows in CSV order."""
    unknown = sorted(set(test) - set(SUBJECTS))
    if unknown:
        raise BenchmarkError(f"unknown MMLU subject(s) {unknown}; expected names from "
                             "benchmarks.llama2_7b_mmlu.data.SUBJECTS")
    labels = letter_ids(tokenizer)  # also checks that the tokenizer adds BOS
    questions = [q for s in SUBJECTS if s in test for q in test[s]]
    prompts = [build_prompt(q.subject, dev[q.subject], q, few_shots) for q in questions]
    try:
        encoded = tokenize_prompts(tokenizer, prompts, max_tokens)
    except PromptTooLong as exc:
        q = questions[exc.position]
        where = Path(mmlu_dir) / "test" / f"{q.subject}_test.csv" if mmlu_dir is not None else f"subject {q.subject}"
        raise BenchmarkError(
            f"{where}: row {q.index + 1} makes a prompt of {exc.tokens} tokens even with every few-shot example "
            f"dropped, over the reference's limit of {exc.max_tokens} tokens (BOS included; question "
            f"{len(q.question):,} characters); shorten that row's question and choices or delete the row") from None
    return [Sample(q.subject, q.index, tuple(ids), labels[q.answer], n)
            for q, (ids, n) in zip(questions, encoded)]


def fingerprint(mmlu_dir: Path, subjects: Iterable[str] = SUBJECTS) -> str:
    """sha256 (hex) of the dev then test CSV bytes of each subject, in the given order."""
    h = hashlib.sha256()
    for subject in subjects:
        for split in _SPLITS:
            path = Path(mmlu_dir) / split / f"{subject}_{split}.csv"
            try:
                h.update(path.read_bytes())
            except OSError as e:
                raise BenchmarkError(f"{path}: cannot read ({e.strerror}); expected the MMLU {split} CSV "
                                     f"of {subject} (re-extract the MMLU data)") from None
    return h.hexdigest()


def text_fingerprint(dev: Mapping[str, Sequence[Question]], test: Mapping[str, Sequence[Question]]) -> str:
    """sha256 of the parsed rows (subject, split, row, question, choices, answer), in SUBJECTS order: the text
    the prompts are made of, whatever the files' bytes (line endings, quoting) look like."""
    h = hashlib.sha256()
    for subject in SUBJECTS:
        for split, rows in (("dev", dev.get(subject, ())), ("test", test.get(subject, ()))):
            for q in rows:
                h.update(json.dumps([subject, split, q.index, q.question, *q.choices, q.answer],
                                    ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()
