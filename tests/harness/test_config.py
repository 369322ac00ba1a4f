"""The config merge (benchmarks/config/loader.py): the shipped YAMLs, every merge rule and every error.

Each test builds its own config root in tmp_path (a copy of configs/ or small hand-written YAMLs) and calls
the real `load_config` with the real case Params and vendor Options.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from benchmarks.config import RunConfig, load_config, parse_set, read_yaml
from benchmarks.errors import BenchmarkError
from benchmarks.llama2_7b_mmlu import CASE
from vendors.cpu import CpuOptions
from vendors.nvidia import NvidiaOptions

REPO = Path(__file__).resolve().parents[2]
CASE_NAME = "llama2_7b_mmlu"
Params = CASE.Params
OPTIONS = {"cpu": CpuOptions, "nvidia": NvidiaOptions}

CONF = """\
batch_size: 1
flops: "2*7e9"
fp16: true
compiler: inductor
num_workers: 8
log_freq: 1000
repeat: 1
no_validation: false
exist_onnx_path: null
exist_compiler_path: null
"""
PARAMS = """\
weight_dir: "llama2_7b_hf"
mmlu_dir: "mmlu_dataset/data"
few_shots: 5
"""


def make_root(tmp_path: Path, conf: str = CONF, params: str = PARAMS, vendor: str | None = "",
              vendor_name: str = "cpu") -> Path:
    """A config root with the three files; vendor=None leaves the vendor file out."""
    case_dir = tmp_path / "configs" / CASE_NAME
    (case_dir / "vendor_config").mkdir(parents=True)
    (case_dir / "configurations.yaml").write_text(conf)
    (case_dir / "parameters.yaml").write_text(params)
    if vendor is not None:
        (case_dir / "vendor_config" / f"{vendor_name}_configurations.yaml").write_text(vendor)
    return tmp_path / "configs"


def paths(root: Path, vendor: str = "cpu") -> dict[str, str]:
    case_dir = root / CASE_NAME
    return {"conf": str(case_dir / "configurations.yaml"), "params": str(case_dir / "parameters.yaml"),
            "vendor": str(case_dir / "vendor_config" / f"{vendor}_configurations.yaml")}


def load(root: Path, vendor: str = "cpu", overrides: list[str] = ()):
    return load_config(root, CASE, vendor, OPTIONS[vendor], list(overrides))


def error(root: Path, vendor: str = "cpu", overrides: list[str] = ()) -> str:
    with pytest.raises(BenchmarkError) as info:
        load(root, vendor, overrides)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg, f"not one line: {msg!r}"
    return msg


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the repository's configs/ (tests edit it without touching the real files)."""
    dst = tmp_path / "configs"
    shutil.copytree(REPO / "configs", dst)
    return dst


# ------------------------------------------------------------------------------------ shipped configs


@pytest.mark.parametrize("vendor", ["cpu", "nvidia"])
def test_shipped_configs_load_with_expected_values(shipped: Path, vendor: str) -> None:
    cfg = load(shipped, vendor)
    p = paths(shipped, vendor)
    assert cfg.run.batch_size == 1
    assert cfg.run.flops == "2*7e9" and isinstance(cfg.run.flops, str)
    assert cfg.run.flops_per_token == 1.4e10
    assert cfg.run.repeat == 1 and cfg.run.no_validation is False
    assert cfg.run.exist_onnx_path is None and cfg.run.exist_compiler_path is None
    assert cfg.case == Params(weight_dir="llama2_7b_hf", mmlu_dir="mmlu_dataset/data", few_shots=5)
    assert isinstance(cfg.vendor, OPTIONS[vendor])
    for key in ("batch_size", "flops", "num_workers", "log_freq", "repeat", "no_validation"):
        assert cfg.sources[key] == p["conf"], key
    for key in ("weight_dir", "mmlu_dir", "few_shots"):
        assert cfg.sources[key] == p["params"], key
    # Keys nobody set take their defaults and have no source.
    assert "seed" not in cfg.sources and cfg.run.seed == 0
    assert cfg.as_dict()["few_shots"] == 5


def test_shipped_cpu_overrides(shipped: Path) -> None:
    cfg = load(shipped, "cpu")
    p = paths(shipped, "cpu")
    assert cfg.run.compiler == "none" and cfg.sources["compiler"] == p["vendor"]
    assert cfg.run.fp16 is False and cfg.sources["fp16"] == p["vendor"]
    assert cfg.run.effective_precision == "fp32"
    assert cfg.vendor == CpuOptions()


def test_shipped_nvidia_values(shipped: Path) -> None:
    cfg = load(shipped, "nvidia")
    p = paths(shipped, "nvidia")
    raw = read_yaml(Path(p["vendor"]))
    assert cfg.vendor.dynamo_mode == raw["dynamo_mode"] == "default"
    assert cfg.vendor.dynamo_dynamic is raw["dynamo_dynamic"] is True
    assert cfg.vendor.pad_multiple == raw["pad_multiple"] == 128
    # harness keys the vendor YAML switches on: the named optimizations measured fastest within 16 GiB
    # the case's named optimizations the vendor YAML switches on: measured fastest within 16 GiB
    opts = cfg.optimizations
    assert opts["pack_tokens"].pack_tokens == raw["pack_tokens"] == 12288
    assert opts["prune_last_layer"].prune_last_layer is raw["prune_last_layer"] is True
    assert opts["fuse_projections"].fuse_projections is raw["fuse_projections"] is True
    assert cfg.vendor.packed_attention == "flash" and "packed_attention" not in raw
    assert cfg.vendor.expandable_segments is raw["expandable_segments"] is True
    for key in ("dynamo_mode", "dynamo_dynamic", "pad_multiple", "pack_tokens", "fuse_projections",
                "expandable_segments"):
        assert cfg.sources[key] == p["vendor"], key
    assert cfg.run.compiler == "inductor" and cfg.sources["compiler"] == p["conf"]
    assert cfg.run.fp16 is True and cfg.run.effective_precision == "fp16"


def test_out_of_memory_knobs_for_the_shipped_nvidia_config_load(shipped: Path) -> None:
    """Each setting an out-of-memory error suggests must be accepted as given (fusion needs a compiler)."""
    from benchmarks.harness import optimizations
    from benchmarks.harness.faults import knobs

    cfg = load(shipped, "nvidia", ["fp16=false"])
    active = optimizations.active(CASE.optimizations, cfg)
    assert [a.opt.name for a in active] == ["pack_tokens", "prune_last_layer", "fuse_projections"]
    hints = knobs(cfg.run.effective_precision, cfg.run.compiler, cfg.vendor.pad_multiple, None, 1500,
                  optimizations.memory_hints(active), optimizations.off_without_compiler(active))
    sets = [h.split(" (")[0] for h in hints if h.startswith("--set ")]
    assert "--set compiler=none --set fuse_projections=false" in sets and len(sets) == 4, sets
    for knob in sets:
        overrides = ["fp16=false"] + [part for part in knob.split("--set ") if part.strip()]
        load(shipped, "nvidia", [o.strip() for o in overrides])  # a refused knob raises BenchmarkError


def test_missing_vendor_file_is_an_error_naming_it(tmp_path: Path) -> None:
    root = make_root(tmp_path, vendor=None)
    msg = error(root)
    assert paths(root)["vendor"] in msg and "'cpu'" in msg


def test_empty_vendor_file_is_allowed(tmp_path: Path) -> None:
    cfg = load(make_root(tmp_path, vendor=""))
    assert cfg.run.compiler == "inductor" and cfg.vendor == CpuOptions()


# -------------------------------------------------------------------------------------- merge rules


def test_key_in_configurations_and_parameters_is_an_error(tmp_path: Path) -> None:
    root = make_root(tmp_path, params=PARAMS + "log_freq: 10\n")
    msg = error(root)
    assert "'log_freq'" in msg and paths(root)["params"] in msg and paths(root)["conf"] in msg


def test_vendor_overrides_a_configurations_key(tmp_path: Path) -> None:
    root = make_root(tmp_path, vendor="log_freq: 7\ncompiler: none\n")
    cfg = load(root)
    assert cfg.run.log_freq == 7 and cfg.run.compiler == "none"
    assert cfg.sources["log_freq"] == cfg.sources["compiler"] == paths(root)["vendor"]
    assert cfg.sources["batch_size"] == paths(root)["conf"]


@pytest.mark.parametrize("line", ["log_freq: 1000", "compiler: inductor", "fp16: true", 'flops: "2*7e9"'])
def test_vendor_repeating_a_value_is_redundant_or_refused(tmp_path: Path, line: str) -> None:
    root = make_root(tmp_path, vendor=line + "\n")
    msg = error(root)
    key = line.split(":")[0]
    assert f"'{key}'" in msg and paths(root)["vendor"] in msg
    if key != "flops":
        assert "redundant" in msg and paths(root)["conf"] in msg


def test_same_value_of_another_type_is_not_redundant(tmp_path: Path) -> None:
    # 1000.0 is not the 1000 of configurations.yaml: it is a type error, not a "redundant" one.
    root = make_root(tmp_path, vendor="log_freq: 1000.0\n")
    msg = error(root)
    assert "redundant" not in msg and "'log_freq'" in msg and "expected int" in msg


@pytest.mark.parametrize("line", ["few_shots: 3", 'weight_dir: "other"', 'mmlu_dir: "x"', 'flops: "2*6e9"'])
def test_vendor_may_not_set_case_keys_or_flops(tmp_path: Path, line: str) -> None:
    root = make_root(tmp_path, vendor=line + "\n")
    msg = error(root)
    assert f"'{line.split(':')[0]}'" in msg and paths(root)["vendor"] in msg
    assert "may not be set by a vendor" in msg


def test_vendor_may_not_set_a_case_key_missing_from_parameters(tmp_path: Path) -> None:
    # few_shots is a case key even where parameters.yaml lacks it.
    root = make_root(tmp_path, params='weight_dir: "w"\nmmlu_dir: "m"\n', vendor="few_shots: 5\n")
    assert "may not be set by a vendor" in error(root)


def test_new_vendor_keys_known_to_options_are_added(tmp_path: Path) -> None:
    root = make_root(tmp_path, vendor="pad_multiple: 8\ndynamo_mode: max-autotune\ntf32: false\n"
                                      "peak_flops: 1.5e+12\n")
    cfg = load(root)
    assert cfg.vendor.pad_multiple == 8 and cfg.vendor.dynamo_mode == "max-autotune"
    assert cfg.vendor.peak_flops == 1.5e12
    assert cfg.run.tf32 is False  # a harness key absent from configurations.yaml
    for key in ("pad_multiple", "dynamo_mode", "tf32", "peak_flops"):
        assert cfg.sources[key] == paths(root)["vendor"]


def test_float_keys_take_exponent_notation_from_yaml(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads 989.4e12 and 5e-2 as strings; keys declared float still get numbers."""
    root = make_root(tmp_path, vendor="peak_flops: 989.4e12\nmemory_sample_interval_s: 5e-2\n",
                     vendor_name="nvidia")
    cfg = load(root, "nvidia")
    assert cfg.vendor.peak_flops == 989.4e12 and cfg.vendor.memory_sample_interval_s == 0.05
    # Only float keys: a str key keeps the text, an int key refuses it.
    root2 = make_root(tmp_path / "b", conf=CONF.replace('flops: "2*7e9"', "flops: 14e9") + "seed: 1e3\n")
    msg = error(root2)
    assert "'seed'" in msg and "expected int" in msg
    root3 = make_root(tmp_path / "c", conf=CONF.replace('flops: "2*7e9"', "flops: 14e9"))
    assert load(root3).run.flops == "14e9" and load(root3).run.flops_per_token == 1.4e10


def test_nvidia_only_key_is_unknown_to_cpu(tmp_path: Path) -> None:
    root = make_root(tmp_path, vendor="device_index: 1\n")
    msg = error(root, "cpu")
    assert "unknown key 'device_index'" in msg and paths(root)["vendor"] in msg
    root2 = make_root(tmp_path / "nv", vendor="device_index: 1\n", vendor_name="nvidia")
    assert load(root2, "nvidia").vendor.device_index == 1


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("where", ["conf", "params", "vendor"])
def test_unknown_key_names_key_and_file(tmp_path: Path, where: str) -> None:
    extra = "bogus_key: 1\n"
    root = make_root(tmp_path, conf=CONF + extra * (where == "conf"), params=PARAMS + extra * (where == "params"),
                     vendor=extra * (where == "vendor"))
    msg = error(root)
    assert "unknown key 'bogus_key'" in msg and paths(root)[where] in msg


@pytest.mark.parametrize(
    "where,key,bad,expected",
    [
        ("conf", "batch_size", '"1"', "expected int"),
        ("conf", "fp16", "1", "expected bool"),
        ("conf", "flops", "14000000000", "expected str"),
        ("params", "few_shots", "5.5", "expected int"),
        ("params", "weight_dir", "[a, b]", "expected str"),
        ("vendor", "pad_multiple", "yes", "expected int"),
        ("vendor", "inductor_options", "[1]", "expected mapping"),
        ("vendor", "dynamo_dynamic", '"true"', "expected bool or null"),
    ],
)
def test_wrong_type_names_key_and_file(tmp_path: Path, where: str, key: str, bad: str, expected: str) -> None:
    def edit(text: str) -> str:
        lines = [ln for ln in text.splitlines() if not ln.startswith(key + ":")]
        return "\n".join(lines + [f"{key}: {bad}"]) + "\n"

    root = make_root(tmp_path, conf=edit(CONF) if where == "conf" else CONF,
                     params=edit(PARAMS) if where == "params" else PARAMS,
                     vendor=f"{key}: {bad}\n" if where == "vendor" else "")
    msg = error(root)
    assert f"key '{key}'" in msg and paths(root)[where] in msg and expected in msg


@pytest.mark.parametrize("where,key", [("conf", "flops"), ("conf", "batch_size"), ("conf", "compiler"),
                                       ("params", "few_shots"), ("params", "weight_dir")])
def test_missing_required_key_names_it(tmp_path: Path, where: str, key: str) -> None:
    drop = lambda text: "".join(ln + "\n" for ln in text.splitlines() if not ln.startswith(key + ":"))  # noqa: E731
    root = make_root(tmp_path, conf=drop(CONF) if where == "conf" else CONF,
                     params=drop(PARAMS) if where == "params" else PARAMS)
    msg = error(root)
    assert f"'{key}'" in msg and "required" in msg and paths(root)[where] in msg


@pytest.mark.parametrize("where", ["conf", "params", "vendor"])
def test_duplicate_key_in_one_file(tmp_path: Path, where: str) -> None:
    dup = "log_freq: 5\nlog_freq: 6\n" if where != "params" else "few_shots: 5\n"
    root = make_root(tmp_path, conf=CONF + "seed: 1\nseed: 2\n" * (where == "conf"),
                     params=PARAMS + dup * (where == "params"), vendor=dup if where == "vendor" else "")
    msg = error(root)
    assert paths(root)[where] in msg and "twice" in msg


@pytest.mark.parametrize("text,what", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_non_mapping_yaml(tmp_path: Path, text: str, what: str) -> None:
    root = make_root(tmp_path, vendor=text)
    msg = error(root)
    assert paths(root)["vendor"] in msg and "mapping" in msg and what in msg


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a: b: c\n", "\tbad: tab\n", "k: 'unterminated\n"])
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    root = make_root(tmp_path, params=PARAMS + text)
    msg = error(root)
    assert paths(root)["params"] in msg and "not valid YAML" in msg


def test_non_string_key(tmp_path: Path) -> None:
    root = make_root(tmp_path, vendor="1: x\n")
    msg = error(root)
    assert paths(root)["vendor"] in msg and "not a string" in msg


@pytest.mark.parametrize(
    "line,key",
    [("batch_size: 2", "batch_size"), ("repeat: 3", "repeat"), ("log_freq: 0", "log_freq"),
     ("precision: int4", "precision"), ('flops: "2*"', "flops"), ('flops: "-1"', "flops")],
)
def test_value_checks_name_key_and_file(tmp_path: Path, line: str, key: str) -> None:
    root = make_root(tmp_path, vendor=line + "\n") if key != "flops" else make_root(
        tmp_path, conf=CONF.replace('flops: "2*7e9"', line))
    msg = error(root)
    assert f"'{key}'" in msg
    assert paths(root)["conf" if key == "flops" else "vendor"] in msg


@pytest.mark.parametrize("line", ['weight_dir: " "', 'mmlu_dir: "../up"', "few_shots: 6"])
def test_case_value_checks(tmp_path: Path, line: str) -> None:
    key = line.split(":")[0]
    root = make_root(tmp_path, params="\n".join(
        [ln for ln in PARAMS.splitlines() if not ln.startswith(key + ":")] + [line]) + "\n")
    msg = error(root)
    assert f"'{key}'" in msg and paths(root)["params"] in msg


# ------------------------------------------------------------------------------------------- --set


@pytest.mark.parametrize(
    "item,key,value",
    [
        ("precision=bf16", "precision", "bf16"),
        ("tf32=false", "tf32", False),
        ("flops=2*7e9", "flops", "2*7e9"),
        ("flops=14e9", "flops", "14e9"),
        ("compiler=none", "compiler", "none"),
        ("compiler=null", "compiler", "null"),  # compiler is a plain str: null is just the text
        ("pad_multiple=32", "pad_multiple", 32),
        ("inductor_options={a: 1}", "inductor_options", {"a": 1}),
        ("dynamo_mode=null", "dynamo_mode", None),
        ("dynamo_mode=~", "dynamo_mode", None),
        ("dynamo_dynamic=null", "dynamo_dynamic", None),
        (" seed = 7 ", "seed", 7),
        ("peak_flops=1e12", "peak_flops", 1e12),
        ("peak_flops=989.4e12", "peak_flops", 989.4e12),
        ("peak_flops=2.5", "peak_flops", 2.5),
        ("mmlu_dir=a=b", "mmlu_dir", "a=b"),
    ],
)
def test_parse_set_types_by_declared_type(item: str, key: str, value: object) -> None:
    types_by_key = {**{k: tp for k, tp in _types(RunConfig).items()}, **_types(Params), **_types(CpuOptions)}
    got_key, got = parse_set(item, types_by_key)
    assert got_key == key
    assert got == value and type(got) is type(value)


def _types(cls: type) -> dict:
    from benchmarks.config import fields_of

    return {k: tp for k, (tp, _) in fields_of(cls).items()}


def test_set_overrides_every_file(shipped: Path) -> None:
    cfg = load(shipped, "nvidia", ["precision=bf16", "tf32=false", "flops=2*7e9", "pad_multiple=32",
                                   "inductor_options={a: 1}", "dynamo_mode=null", "few_shots=3",
                                   "compiler=none", "fuse_projections=false", "peak_flops=1e12"])
    assert cfg.run.precision == "bf16" and cfg.run.effective_precision == "bf16"
    assert cfg.run.tf32 is False
    assert cfg.run.flops == "2*7e9"
    assert cfg.vendor.pad_multiple == 32 and type(cfg.vendor.pad_multiple) is int
    assert cfg.vendor.inductor_options == {"a": 1}
    assert cfg.vendor.dynamo_mode is None
    assert cfg.vendor.peak_flops == 1e12
    assert cfg.case.few_shots == 3 and cfg.run.compiler == "none"
    for key in ("precision", "tf32", "flops", "pad_multiple", "inductor_options", "dynamo_mode", "few_shots",
                "compiler", "peak_flops"):
        assert cfg.sources[key] == "--set", key
    assert cfg.sources["dynamo_dynamic"] == paths(shipped, "nvidia")["vendor"]


def test_later_set_wins(shipped: Path) -> None:
    assert load(shipped, "cpu", ["seed=1", "seed=2"]).run.seed == 2


@pytest.mark.parametrize(
    "item,needle",
    [
        ("precision", "expected key=value"),
        ("=bf16", "expected key=value"),
        ("nosuchkey=1", "unknown key 'nosuchkey'"),
        ("device_index=1", "unknown key 'device_index'"),  # an nvidia key on cpu
        ("batch_size=abc", "'batch_size' expects int"),
        ("batch_size=1.0", "'batch_size' expects int"),
        ("tf32=maybe", "'tf32' expects bool"),
        ("tf32=1", "'tf32' expects bool"),
        ("few_shots=5.5", "'few_shots' expects int"),
        ("inductor_options=[1, 2]", "'inductor_options' expects mapping"),
        ("peak_flops=nan", "'peak_flops' expects float or null"),
        ("peak_flops=abc", "'peak_flops' expects float or null"),
    ],
)
def test_malformed_set(shipped: Path, item: str, needle: str) -> None:
    msg = error(shipped, "cpu", [item])
    assert needle in msg and "--set" in msg


@pytest.mark.parametrize("item,key", [("batch_size=2", "batch_size"), ("precision=int4", "precision"),
                                      ("flops=2**3", "flops"), ("few_shots=9", "few_shots"),
                                      ("dynamo_mode=fast", "dynamo_mode"), ("pad_multiple=-1", "pad_multiple"),
                                      ("pack_tokens=-1", "pack_tokens")])
def test_set_values_are_checked_and_named(shipped: Path, item: str, key: str) -> None:
    msg = error(shipped, "cpu", [item])
    assert f"'{key}'" in msg and msg.startswith("--set: ")


def test_cudnn_packed_attention_is_refused_at_fp32_by_the_nvidia_vendor(shipped: Path) -> None:
    from benchmarks.config import check_optimizations
    from vendors.nvidia import NvidiaVendor

    vendor = NvidiaVendor()
    ok = load(shipped, "nvidia", ["packed_attention=cudnn", "precision=bf16"])
    vendor.options = ok.vendor
    check_optimizations(CASE.optimizations, ok, vendor)
    bad = load(shipped, "nvidia", ["packed_attention=cudnn", "precision=fp32"])
    vendor.options = bad.vendor
    with pytest.raises(BenchmarkError, match="'packed_attention'.*fp16/bf16"):
        check_optimizations(CASE.optimizations, bad, vendor)
    with pytest.raises(BenchmarkError, match="'packed_attention'"):
        load(shipped, "nvidia", ["packed_attention=flash3"])


# ------------------------------------------------------------------------------------- precision etc.


@pytest.mark.parametrize(
    "fp16,precision,expected",
    [(True, None, "fp16"), (False, None, "fp32"), (True, "bf16", "bf16"), (False, "fp16", "fp16"),
     (True, "fp32", "fp32"), (False, "bf16", "bf16")],
)
def test_effective_precision(tmp_path: Path, fp16: bool, precision: str | None, expected: str) -> None:
    conf = CONF.replace("fp16: true", f"fp16: {str(fp16).lower()}")
    if precision is not None:
        conf += f"precision: {precision}\n"
    cfg = load(make_root(tmp_path, conf=conf))
    assert cfg.run.precision == precision
    assert cfg.run.effective_precision == expected


def test_config_is_frozen(shipped: Path) -> None:
    cfg = load(shipped, "nvidia")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run = cfg.run  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run.batch_size = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.case.few_shots = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.vendor.pad_multiple = 0  # type: ignore[misc]
    assert cfg.run.batch_size == 1 and cfg.case.few_shots == 5 and cfg.vendor.pad_multiple == 128


def test_loading_does_not_touch_the_files(shipped: Path) -> None:
    before = {p: p.read_bytes() for p in shipped.rglob("*.yaml")}
    load(shipped, "cpu", ["seed=3"])
    assert {p: p.read_bytes() for p in shipped.rglob("*.yaml")} == before


def test_wrong_value_is_reported_even_when_a_later_file_overrides_it(tmp_path):
    root = make_root(tmp_path, conf=CONF.replace("fp16: true", "fp16: true-"), vendor="fp16: false\n")
    msg = error(root)
    assert paths(root)["conf"] in msg and "'fp16'" in msg and "true-" in msg


def test_harness_key_in_parameters_file_is_refused(tmp_path):
    root = make_root(tmp_path, params=PARAMS + "seed: 3\n")
    msg = error(root)
    assert paths(root)["params"] in msg and "'seed'" in msg and "configurations.yaml" in msg


def test_case_key_in_configurations_file_is_refused(tmp_path):
    root = make_root(tmp_path, conf=CONF + "few_shots: 5\n", params=PARAMS.replace("few_shots: 5\n", ""))
    msg = error(root)
    assert paths(root)["conf"] in msg and "'few_shots'" in msg and "parameters.yaml" in msg
