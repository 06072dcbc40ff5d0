// C ABI entry points: config registry, GEMM dispatch by config id, error reporting.
#include <cuda_runtime.h>

#include <cstdarg>
#include <cstdio>

#include "s24_internal.h"

#ifndef S24_VERSION
#define S24_VERSION "dev"
#endif

namespace s24 {
namespace {
thread_local char g_error[1024] = "";

GemmEntry* table() {
  static GemmEntry entries[kMaxConfigs];
  return entries;
}
}  // namespace

int set_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_error, sizeof(g_error), fmt, ap);
  va_end(ap);
  return 1;
}

bool register_config(int id, const GemmEntry& e) {
  if (id < 0 || id >= kMaxConfigs) return false;
  table()[id] = e;
  return true;
}

}  // namespace s24

using namespace s24;

extern "C" {

const char* s24_version(void) { return S24_VERSION; }
const char* s24_last_error(void) { return g_error; }

int s24_num_configs(void) { return kMaxConfigs; }

int s24_config_info(int cfg, const char** name, int* tile_m, int* tile_n, int* tile_k, int* cluster_m,
                    int* stream_k) {
  if (cfg < 0 || cfg >= kMaxConfigs || table()[cfg].name == nullptr) {
    return set_error("GEMM config %d is not compiled into this library", cfg);
  }
  const GemmEntry& e = table()[cfg];
  *name = e.name;
  *tile_m = e.tile_m;
  *tile_n = e.tile_n;
  *tile_k = e.tile_k;
  *cluster_m = e.cluster_m;
  *stream_k = e.stream_k;
  return 0;
}

static int make_call(int cfg, int out_dtype, GemmCall& c, const GemmEntry** entry) {
  if (cfg < 0 || cfg >= kMaxConfigs || table()[cfg].name == nullptr) {
    return set_error("GEMM config %d is not compiled into this library", cfg);
  }
  if (out_dtype != S24_BF16 && out_dtype != S24_FP16) {
    return set_error("output dtype code %d unsupported (0=bf16, 1=fp16)", out_dtype);
  }
  if (c.m <= 0 || c.n <= 0 || c.k <= 0) return set_error("bad GEMM shape M=%d N=%d K=%d", c.m, c.n, c.k);
  if (c.k % 64 != 0) return set_error("K=%d must be a multiple of 64", c.k);
  if (c.n % 8 != 0) return set_error("N=%d must be a multiple of 8 (16-byte output rows)", c.n);
  if (cudaGetDevice(&c.device) != cudaSuccess) return set_error("cudaGetDevice failed");
  if (c.sm_count <= 0) {
    if (cudaDeviceGetAttribute(&c.sm_count, cudaDevAttrMultiProcessorCount, c.device) != cudaSuccess) {
      return set_error("cudaDeviceGetAttribute(MultiProcessorCount) failed");
    }
  }
  *entry = &table()[cfg];
  return 0;
}

int64_t s24_gemm_workspace_size(int cfg, int m, int n, int k, int mode, int splits, int sm_count) {
  GemmCall c{};
  c.m = m;
  c.n = n;
  c.k = k;
  c.mode = mode;
  c.splits = splits;
  c.sm_count = sm_count;
  const GemmEntry* e = nullptr;
  if (make_call(cfg, S24_BF16, c, &e)) return -1;
  return e->workspace[S24_BF16](c);
}

int s24_gemm(int cfg, int out_dtype, const void* a_values, const void* e_meta, const void* x, const float* s_w,
             const float* s_x, const void* bias, void* d, int m, int n, int k, int mode, int splits, int sm_count,
             int pdl, void* workspace, int64_t workspace_bytes, void* stream) {
  GemmCall c{};
  c.a = a_values;
  c.e = e_meta;
  c.x = x;
  c.s_w = s_w;
  c.s_x = s_x;
  c.bias = bias;
  c.d = d;
  c.m = m;
  c.n = n;
  c.k = k;
  c.mode = mode;
  c.splits = splits;
  c.sm_count = sm_count;
  c.pdl = pdl;
  c.workspace = workspace;
  c.workspace_bytes = workspace_bytes;
  c.stream = stream;
  const GemmEntry* e = nullptr;
  if (make_call(cfg, out_dtype, c, &e)) return 1;
  if (!a_values || !e_meta || !x || !s_w || !s_x || !d) return set_error("null operand pointer");
  return e->run[out_dtype](c);
}

}  // extern "C"
