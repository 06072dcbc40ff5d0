// Internal glue shared by the library's translation units (not part of the C ABI).
#pragma once
#include <cstdint>

#include "s24_api.h"

namespace s24 {

struct GemmCall {
  const void* a;      // [N, K/2] fp8 values
  const void* e;      // reordered metadata
  const void* x;      // [M, K] fp8
  const float* s_w;   // [N]
  const float* s_x;   // [M]
  const void* bias;   // [N] ElementD or nullptr
  void* d;            // [M, N] ElementD
  int m, n, k;
  int mode, splits;
  int pdl;  // launch with programmatic dependent launch
  int sm_count, device;
  void* workspace;
  int64_t workspace_bytes;
  void* stream;
};

using GemmFn = int (*)(const GemmCall&);
using WorkspaceFn = int64_t (*)(const GemmCall&);

struct GemmEntry {
  const char* name = nullptr;
  int tile_m = 0, tile_n = 0, tile_k = 0, cluster_m = 0, stream_k = 0;
  GemmFn run[2] = {nullptr, nullptr};  // indexed by s24_dtype (bf16, fp16)
  WorkspaceFn workspace[2] = {nullptr, nullptr};
};

constexpr int kMaxConfigs = 32;
// Called from static initializers of the per-config translation units.
bool register_config(int id, const GemmEntry& e);

// Records a printf-style message as the thread's last error; returns a non-zero status.
int set_error(const char* fmt, ...);

}  // namespace s24
