"""The GPU measurement tools' host-side logic (their timings need a GPU; their parsing and inputs do not)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import attn_bench  # noqa: E402
import bench_variants  # noqa: E402


def test_bench_variants_parses_modes_packs_and_flags() -> None:
    v = bench_variants.parse_variant("compile:reduce-overhead:static:64:8192:fuse+prune")
    assert (v["kind"], v["mode"], v["dynamic"], v["pad"], v["pack"]) == ("compile", "reduce-overhead", False, 64, 8192)
    assert (v["fuse"], v["prune"], v["nocap"], v["cudnn"]) == (True, True, False, False)
    assert bench_variants.parse_variant("compile:default:dyn:0")["pack"] == 0
    e = bench_variants.parse_variant("eager+pack:4096:prune+nocap")
    assert (e["kind"], e["pack"], e["prune"], e["nocap"], e["fuse"]) == ("eager", 4096, True, True, False)
    with pytest.raises(SystemExit, match="unknown variant flag"):
        bench_variants.parse_variant("compile:default:dyn:128:8192:fuse+turbo")


def test_attn_bench_pads_like_pad_right_and_counts_causal_flops() -> None:
    q, k, v, cu, segs = attn_bench.pack_inputs([5, 9], 8, heads=2, head_dim=4, dtype=torch.float32,
                                               device=torch.device("cpu"))
    assert segs == [5, 9, 2] and cu.tolist() == [0, 5, 14, 16] and q.shape == (16, 2, 4)
    # per prompt: (QK^T + PV) x 2 flops per multiply-add x n^2/2 (causal) x heads x head_dim
    assert attn_bench.causal_flops([5, 9], heads=2, head_dim=4) == 2 * 2 * (25 + 81) / 2 * 2 * 4
    dense = attn_bench.make_backend("fp32", longest=9)(q, k, v, cu, segs)
    alone = torch.softmax(q[5:14].transpose(0, 1) @ k[5:14].permute(1, 2, 0) / 2 + torch.full((9, 9), float("-inf"))
                          .triu(1), -1) @ v[5:14].transpose(0, 1)
    torch.testing.assert_close(dense[5:14], alone.transpose(0, 1), atol=1e-5, rtol=1e-5)


def test_bench_variants_groups_kernel_rows_of_a_recorded_profile() -> None:
    """On the profile recorded on the H200 (docs/results), the groups the results README reports."""
    import json

    path = Path(__file__).resolve().parents[2] / "docs/results/profile_h200_packed8192_fuse_prune.json"
    d = json.loads(path.read_text())
    groups = bench_variants.kernel_groups(d["events"])
    assert round(groups["GEMMs"] / 1e3, 1) == 848.8 and round(groups["attention"] / 1e3, 1) == 100.5
    assert round(groups["rotary + q/k layout"] / 1e3, 1) == 30.1 and round(groups["SiLU x up"] / 1e3, 1) == 21.9
    assert round(groups["RMSNorm + residual"] / 1e3, 1) == 27.4 and round(sum(groups.values()) / 1e3, 1) == 1030.1
