"""Three YAML files per case, merged with the reference rules into one frozen, typed `Config`.

configs/<case>/configurations.yaml  harness keys (`RunConfig`)
configs/<case>/parameters.yaml      case keys (the case's `Params` dataclass)
configs/<case>/vendor_config/<vendor>_configurations.yaml
                                    overrides of harness keys, the keys of the case's named optimizations
                                    (each `Optimization.Options`) and the vendor's own keys (its `Options`);
                                    when it is missing, the copy the vendor ships in its own folder,
                                    <vendor folder>/configs/<case>/<vendor>_configurations.yaml, is used
A case registered from outside the repository may ship its configs/<case>/ folder beside its code.
Rules: a key in both configurations and parameters is an error; a vendor key overrides a configurations key,
and setting it to the value it already has is an error ("redundant"); a vendor may not set case parameters
or `flops` (they define what is measured); then `--set key=value` overrides anything. Every key is declared
in one of the dataclasses (harness, case, optimizations, vendor) with a type; unknown keys, wrong types and missing required keys are errors
naming the key and the file.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import scenarios
from ..errors import BenchmarkError, one_line, printable
from .flops import parse_flops
from ..guard.input_limits import LimitedLoader, check_int_range, load_yaml, read_bytes
from ..contracts import PRECISIONS, is_lossy, yaml_text

MAX_CONFIG_BYTES = 16 * 2**20  # a config file is a few kB


def doc(text: str, bounds: tuple[int, int, str] | None = None, **kw: Any) -> Any:
    """A dataclass field carrying its documentation, and for an integer key optionally its bounds
    (low, high, how to say them), checked when the config is built."""
    return field(metadata={"doc": text, "bounds": bounds}, **kw)


@dataclass(frozen=True)
class RunConfig:
    """Harness keys. The first block are the reference's keys, kept with their names and meaning."""

    batch_size: int = doc("prompts per forward; the reference semantics is 1", bounds=(1, 1, "1"))
    flops: str = doc("FLOPs per token as an arithmetic string, e.g. '2*7e9' (parsed safely, never eval'd)")
    fp16: bool = doc("reference switch: true = fp16, false = fp32 (see `precision`)")
    compiler: str = doc("the toolkit of the inference pass, e.g. 'inductor' or 'none' (eager)")
    num_workers: int = doc("kept for compatibility; prompts are tokenized once up front", default=8,
                           bounds=(0, 1024, "0..1024"))
    log_freq: int = doc("log a progress line every N questions", default=100, bounds=(1, 10**9, "1..10**9 questions"))
    repeat: int = doc("kept for compatibility; must be 1", default=1, bounds=(1, 1, "1"))
    no_validation: bool = doc("skip the validation pass (plain model)", default=False)
    exist_onnx_path: str | None = doc("kept for compatibility; must be null", default=None)
    exist_compiler_path: str | None = doc("kept for compatibility; must be null", default=None)
    # Additions.
    precision: str | None = doc(
        "fp16, bf16, fp32 or fp8 (the plain model and the validation pass in fp16, the inference pass's decoder "
        "GEMMs in float8 e4m3 with per-row scales, where the vendor supports it); when null it follows `fp16`",
        default=None)
    tf32: bool = doc("allow TF32 tensor cores for fp32 matmuls (MFU then uses the TF32 peak)", default=True)
    synthetic_weights: bool = doc(
        "random weights of the same architecture, for speed-only runs (accuracy not meaningful)", default=False
    )
    seed: int = doc("seed for torch/random (synthetic weights)", default=0,
                    bounds=(0, 2**64 - 1, "0..2**64-1 (what torch.manual_seed accepts)"))
    warmup_longest: bool = doc(
        "run the plain model once on the longest prompt before the validation pass, so the allocator and "
        "library caches are warm (timed separately as val_warmup_time)",
        default=True,
    )
    allow_compile_fallback: bool = doc(
        "if the toolkit fails to compile, run the inference pass on the plain model (the result says so)",
        default=False,
    )
    def __post_init__(self) -> None:
        if self.batch_size != 1:
            _bad("batch_size", self.batch_size, "1 (batch-1 semantics; batching is a vendor optimization)")
        if self.repeat != 1:
            _bad("repeat", self.repeat, "1 (use --repeat N on the command line for repeated runs)")
        if self.log_freq < 1:
            _bad("log_freq", self.log_freq, "a positive integer")
        if self.precision is not None and self.precision not in PRECISIONS:
            _bad("precision", self.precision, "one of " + ", ".join(PRECISIONS) + " or null")
        if self.exist_onnx_path is not None or self.exist_compiler_path is not None:
            _bad("exist_onnx_path/exist_compiler_path", "set", "null (prebuilt artefacts are not supported)")
        parse_flops(self.flops)

    @property
    def effective_precision(self) -> str:
        return self.precision or ("fp16" if self.fp16 else "fp32")

    @property
    def flops_per_token(self) -> float:
        return parse_flops(self.flops)


def _bad(key: str, value: Any, expected: str) -> typing.NoReturn:
    raise BenchmarkError(f"config key '{key}': got {value!r}; expected {expected}")


@dataclass(frozen=True)
class Config:
    """The merged configuration. `sources` says which file (or --set) each key's value came from."""

    run: RunConfig
    case: Any
    vendor: Any
    sources: Mapping[str, str]
    # optimization name -> its Options instance, for every optimization the case declares (on or off)
    optimizations: Mapping[str, Any] = field(default_factory=dict)
    scenario: str = "optimized"  # benchmarks.config.scenarios: which semantics the run measures
    replaced: Mapping[str, Any] = field(default_factory=dict)  # key -> the files' value a --set replaced

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in (self.run, self.case, *self.optimizations.values(), self.vendor):
            out.update(dataclasses.asdict(part))
        return out


# ---------------------------------------------------------------------------------------------- YAML


class _UniqueKeyLoader(LimitedLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would silently keep the last), and
    (LimitedLoader) deep nesting, alias bombs and unhashable keys."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, required: bool = True) -> dict[str, Any]:
    if not path.is_file():
        if not required:
            return {}
        raise BenchmarkError(f"{path}: config file not found; create it (see configs/ in the repository)")
    try:
        data = load_yaml(read_bytes(path, "config file", MAX_CONFIG_BYTES).decode("utf-8"), _UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        msg = one_line(exc)
        raise BenchmarkError(f"{path}: not valid YAML ({msg})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: expected a mapping of key: value at the top level, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise BenchmarkError(f"{path}: key {key!r} is not a string")
    return data


# ------------------------------------------------------------------------------------------- typing


def _check_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_check_type(v, typing.get_args(tp)[0]) for v in value)
    raise TypeError(f"unsupported config type {tp!r}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) in (dict, Mapping, typing.Mapping):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _yaml11_float(value: Any, tp: Any) -> Any:
    """PyYAML (YAML 1.1) reads 1e12 and 989.4e12 as strings; a key declared float takes them as numbers."""
    if isinstance(value, str) and not _check_type(value, tp) and _check_type(0.5, tp):
        try:
            number = float(value)
        except ValueError:
            return value
        if number == number and abs(number) != float("inf"):
            return number
    return value


def fields_of(cls: type) -> dict[str, tuple[Any, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls) if f.init}


def build(cls: type, values: Mapping[str, Any], sources: Mapping[str, str], home: str = "the config") -> Any:
    """Construct dataclass `cls` from `values`, checking types; errors name the key and its file."""
    kwargs = {}
    for name, (tp, f) in fields_of(cls).items():
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BenchmarkError(f"config key '{name}' is required but missing; add it to {sources.get(name, home)}")
            continue
        value = _yaml11_float(values[name], tp)
        if not _check_type(value, tp):
            raise BenchmarkError(
                f"{sources.get(name, 'config')}: key '{name}' has {type(value).__name__} value {value!r}; "
                f"expected {_type_name(tp)}"
            )
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        if _check_type(value, float) and tp is float:
            value = float(value)
        kwargs[name] = value
    try:
        built = cls(**kwargs)
    except BenchmarkError as exc:
        # Name the file the offending key came from.
        raise BenchmarkError(f"{_first_source(str(exc), sources)}{exc}") from None
    for name, value in kwargs.items():  # after the class's own checks, whose messages are more specific
        check_int_range(name, value, sources.get(name, home), fields_of(cls)[name][1].metadata.get("bounds"))
    return built


def _first_source(message: str, sources: Mapping[str, str]) -> str:
    for key, src in sources.items():
        if f"'{key}'" in message:
            return f"{src}: "
    return ""


def parse_set(item: str, types_by_key: Mapping[str, Any]) -> tuple[str, Any]:
    """`key=value` from --set, typed by the key's declared type."""
    shown = repr(item) if len(item) <= 120 else repr(item[:100]) + f"... ({len(item):,} characters)"
    if "=" not in item or not item.split("=", 1)[0].strip():
        raise BenchmarkError(f"--set {shown}: expected key=value, e.g. --set precision=bf16")
    key, raw = (s.strip() for s in item.split("=", 1))
    if key not in types_by_key:
        raise BenchmarkError(f"--set {shown}: unknown key '{key[:100]}'; known keys: {', '.join(sorted(types_by_key))}")
    tp = types_by_key[key]
    if _check_type(raw, tp):
        # Keys that take strings keep the text verbatim ("2*7e9" must not turn into anything else).
        return key, (None if raw in ("null", "~") and _check_type(None, tp) else raw)
    try:  # the config files' bounded loader: no alias bomb, no deep nesting, no key given twice
        value = load_yaml(raw, _UniqueKeyLoader) if raw else None
    except (yaml.composer.ComposerError, yaml.constructor.ConstructorError) as exc:  # a bound or a duplicate key
        raise BenchmarkError(f"--set {printable(item[:60])}{'...' if len(item) > 60 else ''}: "
                             f"{getattr(exc, 'problem', None) or one_line(exc)}; expected a small value") from None
    except yaml.YAMLError:
        value = raw
    value = _yaml11_float(value, tp)
    if not _check_type(value, tp):
        raise BenchmarkError(f"--set {shown}: '{key}' expects {_type_name(tp)}, got "
                             f"{repr(raw) if len(raw) <= 120 else repr(raw[:100]) + '...'}")
    return key, value


def vendor_yaml_path(config_root: Path, case_name: str, vendor_name: str, vendor_home: Path | None = None) -> Path:
    """The vendor's YAML for a case: configs/<case>/vendor_config/<vendor>_configurations.yaml, else the one
    the vendor ships in its folder (`vendor_home`, see registry.vendor_home), so an out-of-tree vendor needs no
    file in this repository. A YAML under configs/ wins, so a site can override a shipped one."""
    tried = [config_root / case_name / "vendor_config" / f"{vendor_name}_configurations.yaml"]
    if vendor_home is not None:
        tried.append(vendor_home / "configs" / case_name / f"{vendor_name}_configurations.yaml")
    for path in tried:
        if path.is_file():
            return path
    raise BenchmarkError(
        f"vendor config not found for vendor '{vendor_name}' and case '{case_name}'; tried: "
        + ", ".join(str(p) for p in tried) + "; create one of them (see docs/adding_a_vendor.md)"
    )


def load_config(
    config_root: Path,
    case: Any,
    vendor_name: str,
    vendor_options: type,
    overrides: list[str] = (),
    vendor_home: Path | None = None,
    scenario: str = scenarios.DEFAULT,
) -> Config:
    """The merged config of `case` (a benchmarks.interfaces.Case) for vendor `vendor_name`.

    scenario 'reference' (benchmarks.config.scenarios): the vendor YAML is not read, configurations.yaml's optimization
    keys are dropped (every optimization at its default), and the scenario's settings take their place."""
    case_name = case.name
    case_dir = config_root / case_name
    conf_path = case_dir / "configurations.yaml"
    params_path = case_dir / "parameters.yaml"
    reference = scenarios.check(scenario) == scenarios.REFERENCE
    if reference:
        vendor_path = Path(f"<{scenarios.SOURCE}>")
        conf, params, vend = read_yaml(conf_path), read_yaml(params_path), {}
    else:
        vendor_path = vendor_yaml_path(config_root, case_name, vendor_name, vendor_home)
        conf, params, vend = read_yaml(conf_path), read_yaml(params_path), read_yaml(vendor_path)

    opt_groups = {f"opt:{o.name}": o.Options for o in case.optimizations}
    classes = {"run": RunConfig, "case": case.Params, **opt_groups, "vendor": vendor_options}
    groups = {group: fields_of(cls) for group, cls in classes.items()}
    owner: dict[str, str] = {}
    for group, fields in groups.items():
        for key in fields:
            assert key not in owner, f"config key {key!r} declared twice ({owner[key]} and {group})"
            owner[key] = group
    types_by_key = {k: tp for fields in groups.values() for k, (tp, _) in fields.items()}

    # Each file holds its own kind of key, and every value is type-checked where it is written, so a
    # wrong value that a later file overrides is still reported. Optimization keys are settings of the
    # inference pass, like harness keys: configurations.yaml or a vendor YAML may set them.
    def home_of(group: str) -> str:
        return "run" if group.startswith("opt:") else group

    allowed = {conf_path: ("run",), params_path: ("case",), vendor_path: ("run", "vendor")}
    for path, data in ((conf_path, conf), (params_path, params), (vendor_path, vend)):
        for key, value in data.items():
            group = home_of(owner[key]) if key in owner else None
            if group is not None and group not in allowed[path] and not (path == vendor_path and group == "case"):
                home = {"run": conf_path, "case": params_path, "vendor": vendor_path}[group]
                raise BenchmarkError(f"{path}: key '{key}' belongs in {home}; move it there")
            if key in owner and not _check_type(_yaml11_float(value, types_by_key[key]), types_by_key[key]):
                raise BenchmarkError(
                    f"{path}: key '{key}' has {type(value).__name__} value {value!r}; "
                    f"expected {_type_name(types_by_key[key])}"
                )

    both = sorted(set(conf) & set(params))
    if both:
        raise BenchmarkError(f"{params_path}: key '{both[0]}' is also in {conf_path}; keep it in one file")
    sources = {k: str(conf_path) for k in conf} | {k: str(params_path) for k in params}
    merged = {**conf, **params}
    for key, value in vend.items():
        if key in params or owner.get(key) == "case" or key == "flops":
            raise BenchmarkError(
                f"{vendor_path}: key '{key}' defines what is measured and may not be set by a vendor; remove it"
            )
        if key in conf and conf[key] == value and type(conf[key]) is type(value):
            raise BenchmarkError(f"{vendor_path}: key '{key}' repeats the value {value!r} of {conf_path} (redundant); remove it")
        merged[key] = value
        sources[key] = str(vendor_path)
    if reference:
        merged = {k: v for k, v in merged.items() if not owner.get(k, "").startswith("opt:")}
        sources = {k: v for k, v in sources.items() if k in merged}
        vendor_keys = set(groups["vendor"])
        for key, value in {**scenarios.REFERENCE_RUN_SETTINGS, **{
                k: v for k, v in scenarios.REFERENCE_TOOLKIT_SETTINGS.items() if k in vendor_keys}}.items():
            merged[key] = value
            sources[key] = scenarios.SOURCE
    for key in merged:
        if key not in owner:
            hint = "harness, case or vendor" if vendor_options is not type(None) else "harness or case"
            raise BenchmarkError(
                f"{sources[key]}: unknown key '{key}' (not a {hint} key); known keys: {', '.join(sorted(owner))}"
            )
    replaced: dict[str, Any] = {}
    for item in overrides:
        key, value = parse_set(item, types_by_key)
        if key in merged and sources.get(key) != "--set":
            replaced[key] = merged[key]
        merged[key] = value
        sources[key] = "--set"
    parts = {}
    homes = {"run": str(conf_path), "case": str(params_path), "vendor": str(vendor_path)}
    for group, cls in classes.items():
        parts[group] = build(cls, {k: v for k, v in merged.items() if owner[k] == group}, sources,
                             homes[home_of(group)])
    config = Config(run=parts["run"], case=parts["case"], vendor=parts["vendor"], sources=dict(sources),
                    optimizations={o.name: parts[f"opt:{o.name}"] for o in case.optimizations}, scenario=scenario,
                    replaced=replaced)
    if reference and is_lossy(config.run.effective_precision):
        where = config.sources.get("precision", "config")
        raise BenchmarkError(f"{where}: config key 'precision': {config.run.effective_precision} is not a precision of "
                             "the reference (fp16, bf16 or fp32, one model for both passes); run it with --scenario "
                             "optimized, or set --set precision=fp16")
    check_optimizations(case.optimizations, config)
    return config


def check_optimizations(declared: Any, config: Config, vendor: Any = None) -> None:
    """The rules the active optimizations declare (needs a compiler; their own cross-key checks, with the
    vendor once it is configured), errors naming the file the key came from. And one of the verdict's: an
    optimization's predictions are checked against the validation pass, so it needs one."""
    precision = config.run.effective_precision
    if is_lossy(precision) and not any(precision in o.precisions for o in declared):
        where = config.sources.get("precision", "config")
        raise BenchmarkError(f"{where}: config key 'precision': got {precision!r}, which this case does not implement "
                             "(none of its optimizations declares it); choose fp16, bf16 or fp32")
    on = [o.name for o in declared if o.switched_on(config.optimizations[o.name], precision)]
    if config.run.no_validation and on:
        where = config.sources.get("no_validation", "config")
        raise BenchmarkError(f"{where}: config key 'no_validation': true with the named optimization(s) {', '.join(on)} "
                             "on: nothing could check their predictions; set no_validation: false, or switch them off")
    for opt in declared:
        options = config.optimizations[opt.name]
        if not opt.switched_on(options, precision):
            continue
        keys = [f.name for f in dataclasses.fields(opt.Options)] if dataclasses.is_dataclass(opt.Options) else []
        key = "precision" if opt.precisions else keys[0]
        where = f"{config.sources.get(key, 'config')}: "
        if opt.needs_compiler and config.run.compiler == "none":
            off = yaml_text(dataclasses.fields(opt.Options)[0].default)
            raise BenchmarkError(f"{where}config key '{key}': got {getattr(options, key)!r}; expected {off} with "
                                 f"compiler 'none' (it changes compiled graphs only): add {opt.off_setting()}")
        try:
            opt.check(options, config.run, vendor)
        except BenchmarkError as exc:
            raise BenchmarkError(f"{_first_source(str(exc), config.sources)}{exc}") from None


@dataclass(frozen=True)
class NoOptions:
    """For vendors without keys of their own."""
