// 2:4 compressor (dense fp8 W -> logical values + meta of kernels/layout.py, bit-exact) and the reorder of the
// logical metadata into CUTLASS's sm90 fp8 metadata layout (E).
//
// CUTLASS sm90 8-bit E layout (Sm90GemmSparseConfig, TensorEAtom_8bit = (64 rows, 128 k) k-fastest, atoms
// stacked along M first, then K): one byte holds the 2 nibbles of 8 logical k (our meta byte), so
//   E[kb][m][j] = meta[m][16*kb + j]   for kb < ceil(K/128), m < round_up(N, 64), j < 16 (zero padding).
#include <cuda_runtime.h>

#include "s24_internal.h"

namespace s24 {
namespace {

// One thread per 8 consecutive k (two groups of 4 = one meta byte, four value bytes).
__global__ void compress_kernel(const uint8_t* __restrict__ w, int64_t n, int64_t k, uint8_t* __restrict__ values,
                                uint8_t* __restrict__ meta, int* __restrict__ violations) {
  const int64_t kb = k / 8;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n * kb) return;
  const int64_t row = idx / kb, col = idx % kb;
  const uint2 raw = *reinterpret_cast<const uint2*>(w + row * k + col * 8);
  uint32_t words[2] = {raw.x, raw.y};
  uint32_t vals = 0;
  uint32_t nib = 0;
  int bad = 0;
#pragma unroll
  for (int g = 0; g < 2; ++g) {
    uint32_t b[4];
    int nz[4];
    int count = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      b[i] = (words[g] >> (8 * i)) & 0xFF;
      nz[i] = (b[i] & 0x7F) != 0;  // +0 (0x00) and -0 (0x80) are zeros
      count += nz[i];
    }
    bad += count > 2;
    // kept = non-zeros, padded with the lowest unused (zero) positions up to 2 (layout.kept_mask_2of4)
    int need_zero = 2 - count;
    int idx_sel[2] = {0, 0};
    int taken = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int keep = nz[i];
      if (!nz[i] && need_zero > 0) {
        keep = 1;
        --need_zero;
      }
      if (keep && taken < 2) {
        idx_sel[taken] = i;
        ++taken;
      }
    }
    vals |= (b[idx_sel[0]] | (b[idx_sel[1]] << 8)) << (16 * g);
    nib |= (uint32_t(idx_sel[0]) | (uint32_t(idx_sel[1]) << 2)) << (4 * g);
  }
  if (bad) atomicAdd(violations, bad);
  *reinterpret_cast<uint32_t*>(values + row * (k / 2) + col * 4) = vals;
  meta[row * kb + col] = static_cast<uint8_t>(nib);
}

// One thread per output E byte (covers the padding too, which is written as 0).
__global__ void reorder_kernel(const uint8_t* __restrict__ meta, int64_t n, int64_t k, int64_t n_pad,
                               int64_t kblocks, uint8_t* __restrict__ e) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t total = kblocks * n_pad * 16;
  if (idx >= total) return;
  const int64_t j = idx % 16;
  const int64_t m = (idx / 16) % n_pad;
  const int64_t kblk = idx / (16 * n_pad);
  const int64_t col = kblk * 16 + j;  // meta byte column
  uint8_t v = 0;
  if (m < n && col < k / 8) v = meta[m * (k / 8) + col];
  e[idx] = v;
}

}  // namespace
}  // namespace s24

using namespace s24;

extern "C" {

int s24_compress_2of4(const void* w, int64_t n, int64_t k, void* values, void* meta, int* violations,
                      void* stream) {
  if (n <= 0 || k <= 0 || k % 8) return set_error("bad weight shape N=%lld K=%lld (K %% 8 != 0?)", (long long)n,
                                                   (long long)k);
  if (reinterpret_cast<uintptr_t>(w) % 8 || reinterpret_cast<uintptr_t>(values) % 4) {
    return set_error("compress: weight must be 8-byte aligned and values 4-byte aligned");
  }
  const int64_t threads = n * (k / 8);
  const int block = 256;
  compress_kernel<<<dim3(static_cast<unsigned>((threads + block - 1) / block)), block, 0,
                    static_cast<cudaStream_t>(stream)>>>(static_cast<const uint8_t*>(w), n, k,
                                                         static_cast<uint8_t*>(values), static_cast<uint8_t*>(meta),
                                                         violations);
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? 0 : set_error("compress launch failed: %s", cudaGetErrorString(err));
}

int64_t s24_meta_reordered_bytes(int64_t n, int64_t k) {
  const int64_t n_pad = (n + 63) / 64 * 64;
  const int64_t kblocks = (k + 127) / 128;
  return kblocks * n_pad * 16;
}

int s24_reorder_meta(const void* meta, int64_t n, int64_t k, void* e, void* stream) {
  if (n <= 0 || k <= 0 || k % 8) return set_error("bad meta shape N=%lld K=%lld", (long long)n, (long long)k);
  const int64_t n_pad = (n + 63) / 64 * 64;
  const int64_t kblocks = (k + 127) / 128;
  const int64_t total = kblocks * n_pad * 16;
  const int block = 256;
  reorder_kernel<<<dim3(static_cast<unsigned>((total + block - 1) / block)), block, 0,
                   static_cast<cudaStream_t>(stream)>>>(static_cast<const uint8_t*>(meta), n, k, n_pad, kblocks,
                                                        static_cast<uint8_t*>(e));
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? 0 : set_error("reorder launch failed: %s", cudaGetErrorString(err));
}

}  // extern "C"
