"""One write path (issue 23): every file the project writes goes through benchmarks/guard/safe_write.py. This test
parses every .py file of benchmarks/ and vendors/ (and run_benchmark.py) and fails on any other way to write,
append, replace, lock-create or delete a file, so a new writer cannot bypass the module's rules (no symlink
followed, only a regular file or nothing replaced, whole lines or nothing). Exceptions are listed with why.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
OWNER = "benchmarks/guard/safe_write.py"
# (file, what) -> why it may write without safe_write
ALLOWED = {
    ("benchmarks/llama2_7b_mmlu/smoke.py", "save_pretrained"):
        "transformers writes the tiny model and tokenizer into a fresh private folder (.tmp-<pid>), which "
        "safe_write.move_folder then puts in place",
    ("benchmarks/reporting/plots.py", "savefig"):
        "draws the PNG into memory (io.BytesIO); the bytes are then written by safe_write",
}
# Methods that write or delete whatever object they are called on (Path, figure, DataFrame, model).
WRITING_METHODS = {"write_text", "write_bytes", "savefig", "to_csv", "to_json", "to_parquet", "to_pickle",
                   "save_pretrained", "symlink_to", "hardlink_to", "touch", "unlink", "rmdir", "rename", "chmod"}
# module.function calls that write or delete.
WRITING_CALLS = {("json", "dump"), ("pickle", "dump"), ("torch", "save"), ("np", "save"), ("numpy", "save"),
                 ("os", "replace"), ("os", "rename"), ("os", "renames"), ("os", "remove"), ("os", "unlink"),
                 ("os", "write"), ("os", "pwrite"), ("os", "writev"), ("os", "ftruncate"), ("os", "truncate"),
                 ("os", "mkfifo"), ("os", "mknod"), ("os", "symlink"), ("os", "link"), ("os", "fdopen"),
                 ("tempfile", "mkstemp"), ("tempfile", "NamedTemporaryFile"), ("tempfile", "TemporaryFile"),
                 ("logging", "FileHandler"), ("shutil", "*")}
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


def _mode(call: ast.Call, position: int) -> str | None:
    """The mode string of an open() call (positional `position` or mode=), None when not a literal."""
    for kw in call.keywords:
        if kw.arg == "mode" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    if len(call.args) > position and isinstance(call.args[position], ast.Constant):
        value = call.args[position].value
        return value if isinstance(value, str) else None
    return "r" if len(call.args) <= position and not any(kw.arg == "mode" for kw in call.keywords) else None


def _writes(mode: str | None) -> bool:
    return mode is None or any(c in mode for c in "wax+")


def findings(source: str, name: str = "<string>") -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, name)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        what = None
        if isinstance(f, ast.Name) and f.id == "open" and _writes(_mode(node, 1)):
            what = "open"
        elif isinstance(f, ast.Attribute):
            owner = f.value.id if isinstance(f.value, ast.Name) else None
            if owner == "safe_write":  # the one write path itself
                continue
            if f.attr == "open" and owner not in ("os",) and _writes(_mode(node, 0 if owner != "io" else 1)):
                what = f"{owner or '...'}.open"
            elif f.attr == "open" and owner == "os":
                flags = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)} & WRITE_FLAGS
                what = "os.open" if flags else None
            elif (owner, f.attr) in WRITING_CALLS or (owner, "*") in WRITING_CALLS:
                what = f"{owner}.{f.attr}"
            elif f.attr in WRITING_METHODS:
                what = f.attr
            elif f.attr == "replace" and len(node.args) == 1 and not node.keywords and owner != "dataclasses":
                what = "replace"  # Path.replace(target); str.replace takes two arguments
        if what is not None:
            out.append(f"{name}:{node.lineno}: {what}")
    return out


def _sources() -> list[Path]:
    files = sorted((REPO_ROOT / "benchmarks").rglob("*.py")) + sorted((REPO_ROOT / "vendors").rglob("*.py"))
    return [REPO_ROOT / "run_benchmark.py", *files]


def test_the_scan_finds_what_it_looks_for() -> None:
    code = ("open(p, 'w')\nopen(p)\nopen(p, 'rb')\np.open('a+')\np.open('rb')\np.write_text('x')\nfig.savefig(b)\n"
            "json.dump(d, f)\njson.dumps(d)\nshutil.rmtree(p)\nos.replace(a, b)\ntmp.replace(path)\n"
            "s.replace('a', 'b')\ndataclasses.replace(o)\nos.open(p, os.O_RDONLY)\nos.open(p, os.O_WRONLY | os.O_CREAT)\n"
            "logging.FileHandler(p)\np.unlink()\nmodel.save_pretrained(d)\nsafe_write.write_text(p, t)\n")
    assert findings(code) == ["<string>:1: open", "<string>:4: p.open", "<string>:6: write_text",
                              "<string>:7: savefig", "<string>:8: json.dump", "<string>:10: shutil.rmtree",
                              "<string>:11: os.replace", "<string>:12: replace", "<string>:16: os.open",
                              "<string>:17: logging.FileHandler", "<string>:18: unlink",
                              "<string>:19: save_pretrained"]


def test_every_write_goes_through_safe_write() -> None:
    sources = _sources()
    assert REPO_ROOT / OWNER in sources and REPO_ROOT / "vendors" / "nvidia" / "__init__.py" in sources
    found = []
    for path in sources:
        rel = str(path.relative_to(REPO_ROOT))
        if rel == OWNER:
            continue
        for finding in findings(path.read_text(encoding="utf-8"), rel):
            what = finding.rsplit(": ", 1)[1]
            if (rel, what) not in ALLOWED:
                found.append(finding)
    assert found == [], "write through benchmarks/guard/safe_write.py instead (or list the exception here, with why)"
