"""Bounds on what an input file may make the harness build: YAML/JSON nesting, alias expansion, integer ranges.

A config or baseline is a few dozen keys. Anything far beyond that is a mistake or an attack (a "billion
laughs" of YAML aliases expands 500 bytes into 10^9 nodes the moment anything walks it), so it is refused
while parsing, in time proportional to the file, before anything walks it.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import BenchmarkError, printable

MAX_DEPTH = 100  # nested collections; real configs and results are < 10 deep
MAX_NODES = 100_000  # scalars and collections after alias expansion; real configs hold a few hundred
MAX_INPUT_BYTES = 256 * 2**20  # an input file read whole (a full run's predictions.jsonl is ~2 MB)
MAX_INT_DIGITS = 100  # an integer literal; Python refuses to convert more than 4,300 digits (a ValueError)


def read_bytes(path: Path, what: str, max_bytes: int = MAX_INPUT_BYTES, prefix: bool = False) -> bytes:
    """The bytes of a regular file, read whole, at most `max_bytes`: a FIFO, device or folder is refused (it is
    opened without blocking, then checked), so no reader waits forever on a FIFO or reads /dev/zero forever.
    Any problem is a one-line BenchmarkError naming `what` and the path. prefix: the first `max_bytes` of a
    file of any size (a header line)."""
    shown = printable(os.fsencode(str(path)).decode("utf-8", "backslashreplace"))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BenchmarkError(f"{what} {shown}: file not found") from None
    except OSError as exc:
        raise BenchmarkError(f"{what} {shown}: cannot read it ({exc.strerror}); fix the path or permissions") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO, device or socket"
            raise BenchmarkError(f"{what} {shown}: {kind}, not a regular file; give a file written by run_benchmark.py")
        if info.st_size > max_bytes and not prefix:
            raise BenchmarkError(f"{what} {shown}: {info.st_size:,} bytes, more than the {max_bytes:,} such a file "
                                 "can have; give a file written by run_benchmark.py")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise BenchmarkError(f"{what} {shown}: cannot read it ({exc.strerror}); fix the path or permissions") from None
    finally:
        os.close(fd)
    if prefix:
        return b"".join(chunks)[:max_bytes]
    if size > max_bytes:
        raise BenchmarkError(f"{what} {shown}: more than the {max_bytes:,} bytes such a file can have")
    return b"".join(chunks)


def read_text(path: Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """read_bytes as UTF-8; bytes that are not UTF-8 are a BenchmarkError naming their offset."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = printable(os.fsencode(str(path)).decode("utf-8", "backslashreplace"))
        raise BenchmarkError(f"{what} {shown}: not UTF-8 text at byte {exc.start}; give a file written by "
                             "run_benchmark.py") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("+-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('+-')):,} digits (more than {MAX_INT_DIGITS})")
    return int(text)


def parse_json(text: str | bytes, where: str) -> Any:
    """json.loads, bounded: nesting (MAX_DEPTH, and Python's own recursion), integers of at most MAX_INT_DIGITS
    digits (a longer one is a ValueError of Python's, not a JSON error); any problem is one BenchmarkError."""
    try:
        data = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"{where}: not UTF-8 text at byte {exc.start}") from None
    except RecursionError:
        raise BenchmarkError(f"{where}: nested too deeply; expected a file written by this benchmark") from None
    except ValueError as exc:
        raise BenchmarkError(f"{where}: {exc}; expected a file written by this benchmark") from None
    check_depth(data, where)
    return data


def load_yaml(text: str, loader: type | None = None) -> Any:
    """YAML through the bounded loader (depth, alias expansion, unhashable keys): config files, baselines and
    every `--set` value take this one path."""
    return yaml.load(text, Loader=loader or LimitedLoader)


class LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses, with the line of the problem: nesting deeper than MAX_DEPTH, more than
    MAX_NODES nodes once aliases are expanded, and mapping keys that are lists or mappings (unhashable)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer recurses per level: counting here refuses deep input before Python's stack runs out.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise yaml.composer.ComposerError(None, None, "a mapping key is a list or mapping (unhashable); "
                                                  "keys must be plain names", key.start_mark)
        return node

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            expanded_nodes(node)
        return node


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """YAML 1.1 integers (decimal, 0x, 0o, 0b, sexagesimal), refused past MAX_INT_DIGITS: Python raises a plain
    ValueError converting more than 4,300 digits, which would escape as a crash."""
    digits = sum(ch.isalnum() for ch in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(None, None, f"an integer of {digits:,} digits (more than "
                                                f"{MAX_INT_DIGITS})", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


LimitedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def expanded_nodes(root: yaml.Node) -> int:
    """How many nodes `root` stands for with every alias expanded; raises past MAX_NODES. Shared nodes are
    counted once per reference but computed once (memoised), so a bomb is refused in time linear in the file."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if children_done or not kids:
            size = 1 + sum(sizes.get(id(k), 0) for k in kids)
            if size > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_NODES} values once anchors/aliases are expanded (an alias bomb?)",
                    node.start_mark)
            sizes[id(node)] = size
        else:
            stack.append((node, True))
            # a node that refers to itself (recursive alias) never finishes: refuse it as a bomb
            stack.extend((k, False) for k in kids if id(k) not in sizes and k is not node)
            if any(k is node for k in kids):
                raise yaml.composer.ComposerError(None, None, "an alias refers to its own node", node.start_mark)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_depth(data: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """Refuse (BenchmarkError naming `where`) parsed JSON nested deeper than `limit`; iterative, no recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        else:
            continue
        if depth > limit:
            raise BenchmarkError(f"{where}: nested deeper than {limit} levels; expected a flat file written by "
                                 "this benchmark (or by transformers)")
        stack.extend((c, depth + 1) for c in children)


def check_int_range(key: str, value: Any, source: str, bounds: tuple[int, int, str] | None) -> None:
    """A key's declared bounds (`benchmarks.config.doc(..., bounds=(low, high, text))`): the limits of what
    consumes it (torch.manual_seed takes an unsigned 64-bit seed) or far beyond any sane use, so that a typo
    of ten extra digits is caught here."""
    if bounds is None or not isinstance(value, int) or isinstance(value, bool):
        return
    low, high, text = bounds
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 30 else f"{str(value)[:12]}...({len(str(value))} digits)"
        raise BenchmarkError(f"{source}: key '{key}' = {shown} is out of range; expected {text}")
