"""The 2:4 packed layout and its CPU codec: round trips, uniqueness of the encoding, errors."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse24.kernels import layout
from sparse24.kernels.checkpoint.prune import magnitude_2of4


def _random_2of4_fp8(n, k, seed, zero_groups=0.0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    w = w * magnitude_2of4(w)
    drop = torch.rand(n, k, generator=g) < zero_groups  # extra zeros: groups with fewer than 2 non-zeros
    return w.masked_fill(drop, 0).to(torch.float8_e4m3fn)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 40), k=st.sampled_from([8, 64, 136, 256]), seed=st.integers(0, 2**16),
       zero_groups=st.sampled_from([0.0, 0.3, 1.0]))
def test_compress_then_decompress_is_bit_exact(n, k, seed, zero_groups):
    w = _random_2of4_fp8(n, k, seed, zero_groups)
    values, meta = layout.compress_2of4(w)
    assert values.shape == (n, k // 2) and values.dtype == torch.float8_e4m3fn
    assert meta.shape == (n, k // 8) and meta.dtype == torch.uint8
    # Equal as numbers (a dropped -0.0 comes back as +0.0); kept values are bit-identical.
    assert torch.equal(layout.decompress_2of4(values, meta).float(), w.float())
    again_values, again_meta = layout.compress_2of4(layout.decompress_2of4(values, meta))
    assert torch.equal(again_values.view(torch.uint8), values.view(torch.uint8)) and torch.equal(again_meta, meta)


def test_metadata_nibbles_follow_the_documented_layout():
    w = torch.zeros(1, 8)
    w[0, 1], w[0, 3] = 1.0, 2.0  # group 0 keeps positions 1, 3 -> nibble 1 | 3 << 2 = 0xD
    w[0, 6] = 3.0  # group 1 keeps 6 and pads with the lowest unused position 4 -> 0 | 2 << 2 = 0x8
    values, meta = layout.compress_2of4(w.to(torch.float8_e4m3fn))
    assert meta.tolist() == [[0xD | (0x8 << 4)]]
    assert values.float().tolist() == [[1.0, 2.0, 0.0, 3.0]]


def test_negative_zero_counts_as_zero():
    w = torch.tensor([[-0.0, 1.0, -0.0, 2.0, 0, 0, 0, 0]]).to(torch.float8_e4m3fn)
    assert not layout.violating_groups(w).any()


def test_more_than_two_nonzeros_in_a_group_is_rejected():
    w = torch.ones(2, 8).to(torch.float8_e4m3fn)
    with pytest.raises(layout.Not2of4Error, match="more than 2 non-zeros"):
        layout.compress_2of4(w)


def test_k_alignment_error_names_the_value():
    with pytest.raises(ValueError, match="K=96 is not a multiple of 64"):
        layout.check_k_alignment(96)


def test_decompress_rejects_bad_metadata():
    values = torch.zeros(1, 4, dtype=torch.float8_e4m3fn)
    with pytest.raises(ValueError, match="uint8"):
        layout.decompress_2of4(values, torch.zeros(1, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="ascending"):
        layout.decompress_2of4(values, torch.zeros(1, 1, dtype=torch.uint8))  # idx0 == idx1 == 0
