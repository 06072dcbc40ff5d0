// C ABI of libsparse24_fp8.so: 2:4-sparse FP8 GEMM (CUTLASS sm90a), per-token FP8 quantizer, 2:4 compressor.
// Every function returns 0 on success or a non-zero status; s24_last_error() then holds a message
// (thread-local). Nothing here aborts the process. All pointers are device pointers; every launch goes to
// `stream` on the calling thread's current CUDA device.
#pragma once
#include <cstddef>
#include <cstdint>

#ifdef __cplusplus
extern "C" {
#endif

// dtype codes shared with Python (kernels/ops.py)
enum s24_dtype { S24_BF16 = 0, S24_FP16 = 1, S24_FP32 = 2 };
// tile-scheduler decomposition (stream-K configs only; others ignore it)
enum s24_mode { S24_MODE_HEURISTIC = 0, S24_MODE_DATA_PARALLEL = 1, S24_MODE_SPLIT_K = 2, S24_MODE_STREAM_K = 3 };

const char* s24_version(void);
const char* s24_last_error(void);

// GEMM configurations compiled into this library (see gemm_configs.def).
int s24_num_configs(void);
// name, tile shape (M' = weight rows, N' = tokens, K), cluster M', whether it uses the stream-K scheduler
int s24_config_info(int cfg, const char** name, int* tile_m, int* tile_n, int* tile_k, int* cluster_m, int* stream_k);

// Y[M,N] = s_x[M] * s_w[N] * (X[M,K] . W[N,K]^T) + bias[N]   computed as D^T = W . X^T.
//   a_values: [N, K/2] fp8 (the logical 2:4 values of layout.py), e_meta: reordered metadata
//   (s24_meta_reordered_bytes), x: [M, K] fp8 row-major (row stride K), s_w: [N] f32, s_x: [M] f32,
//   bias: [N] in out_dtype or NULL, d: [M, N] out_dtype row-major.
int64_t s24_gemm_workspace_size(int cfg, int m, int n, int k, int mode, int splits, int sm_count);
//   pdl != 0 launches with programmatic dependent launch (prologue overlaps the previous kernel).
int s24_gemm(int cfg, int out_dtype, const void* a_values, const void* e_meta, const void* x,
             const float* s_w, const float* s_x, const void* bias, void* d, int m, int n, int k,
             int mode, int splits, int sm_count, int pdl, void* workspace, int64_t workspace_bytes, void* stream);

// Per-token FP8 quantization (reference.quantize_per_token_fp8): x [M,K] (row stride in elements),
// xq [M,K] fp8 contiguous, s_x [M] f32.
int s24_quantize_per_token(const void* x, int x_dtype, int64_t m, int64_t k, int64_t x_row_stride,
                           void* xq, float* s_x, void* stream);

// Dense 2:4 fp8 W [N,K] -> logical values [N,K/2] + meta [N,K/8] (bit-exact with layout.compress_2of4).
// *violations_dev (device int32, zeroed by the caller) receives the number of groups with > 2 non-zeros.
int s24_compress_2of4(const void* w, int64_t n, int64_t k, void* values, void* meta, int* violations_dev,
                      void* stream);
// Logical meta [N,K/8] -> CUTLASS sm90 fp8 metadata (E) layout; the output is fully written (padding = 0).
int64_t s24_meta_reordered_bytes(int64_t n, int64_t k);
int s24_reorder_meta(const void* meta, int64_t n, int64_t k, void* e_meta, void* stream);
// CUTLASS's own StructuredSparseCompressor (verification only): dense W -> (values [N, K/2], E).
int s24_cutlass_compress(const void* w, int64_t n, int64_t k, void* values, void* e_meta, void* stream);

#ifdef __cplusplus
}
#endif
