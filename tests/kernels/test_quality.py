"""The compressed checkpoint's CPU forward vs the forward of its dequantized dense weights, and the quality CLI."""
import json

import torch

from sparse24.kernels.cli import main as cli
from sparse24.kernels.quality import load_sparse_checkpoint_as_hf


def test_sparse_fp8_forward_matches_dequantized_dense_forward(tiny_sparse_dir):
    sparse = load_sparse_checkpoint_as_hf(tiny_sparse_dir, "sparse-fp8")
    dequant = load_sparse_checkpoint_as_hf(tiny_sparse_dir, "dequantized")
    ids = torch.randint(3, 1000, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = sparse(ids).logits, dequant(ids).logits
    # The only difference is per-token FP8 activation quantization (relative step 2^-4 per element) through
    # two layers; measured max |diff| ~1e-3 of the logit range. 3% of the range is a loose, stated bound.
    span = (b.max() - b.min()).item()
    assert (a - b).abs().max().item() <= 0.03 * span
    # And the error is noise-like, not a systematic shift: logits stay ~perfectly correlated.
    corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
    assert corr > 0.99


def test_quality_cli_reports_perplexities(tiny_dense_dir, tiny_sparse_dir, tmp_path, capsys):
    out = tmp_path / "q.json"
    assert cli(["quality", str(tiny_dense_dir), str(tiny_sparse_dir), "--max-tokens", "512", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for key in ("dense_bf16", "sparse_fp8", "dequantized"):
        assert 1.0 < report[key] < 10 * 1024  # a random tiny model: near-uniform over its 1024-token vocabulary
    assert abs(report["ratio_sparse_fp8_vs_dense"] - report["sparse_fp8"] / report["dense_bf16"]) < 1e-9
