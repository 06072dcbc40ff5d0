// Dynamic per-token FP8 e4m3 quantization in one kernel (reference.quantize_per_token_fp8):
//   s_x[m] = max(amax_k |x[m,k]|, 1/512) / 448  (NaN if the row holds any NaN/inf)
//   xq[m,k] = e4m3_rne(clamp(x[m,k] / s_x[m], -448, 448))   (IEEE fp32 division, satfinite cast)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "s24_internal.h"

namespace s24 {
namespace {

constexpr int kThreads = 256;
constexpr float kFp8Max = 448.0f;
constexpr float kMinAmax = 1.0f / 512.0f;

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

__device__ __forceinline__ uint8_t q8(float v, float scale) {
  float q = __fdiv_rn(v, scale);
  if (!isnan(q)) q = fminf(fmaxf(q, -kFp8Max), kFp8Max);  // NaN (NaN/inf row) stays NaN
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(q, __NV_SATFINITE, __NV_E4M3));
}

template <class T>
__device__ __forceinline__ void reduce_row(float& amax, int& bad) {
  __shared__ float s_amax[kThreads / 32];
  __shared__ int s_bad[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    bad |= __shfl_xor_sync(0xffffffffu, bad, o);
  }
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if (l == 0) {
    s_amax[w] = amax;
    s_bad[w] = bad;
  }
  __syncthreads();
  if (w == 0) {
    amax = l < kThreads / 32 ? s_amax[l] : 0.0f;
    bad = l < kThreads / 32 ? s_bad[l] : 0;
    for (int o = 16; o > 0; o >>= 1) {
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      bad |= __shfl_xor_sync(0xffffffffu, bad, o);
    }
    if (l == 0) {
      s_amax[0] = amax;
      s_bad[0] = bad;
    }
  }
  __syncthreads();
  amax = s_amax[0];
  bad = s_bad[0];
}

// VEC elements per thread-step: 8 (16-byte loads of 16-bit types, 2x16 bytes of fp32) or 1 (scalar fallback).
template <class T, int VEC>
__global__ void __launch_bounds__(kThreads) quant_kernel(const T* __restrict__ x, int64_t k, int64_t ld,
                                                         uint8_t* __restrict__ xq, float* __restrict__ sx) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * ld;
  uint8_t* qr = xq + row * k;
  float amax = 0.0f;
  int bad = 0;
  struct alignas(sizeof(T) * VEC) Vec {
    T v[VEC];
  };
  for (int64_t i = threadIdx.x * VEC; i < k; i += kThreads * VEC) {
    Vec v = *reinterpret_cast<const Vec*>(xr + i);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      float f = to_f(v.v[j]);
      bad |= !isfinite(f);
      amax = fmaxf(amax, fabsf(f));
    }
  }
  reduce_row<T>(amax, bad);
  const float scale = bad ? __int_as_float(0x7fffffff) : __fdiv_rn(fmaxf(amax, kMinAmax), kFp8Max);
  if (threadIdx.x == 0) sx[row] = scale;
  for (int64_t i = threadIdx.x * VEC; i < k; i += kThreads * VEC) {
    Vec v = *reinterpret_cast<const Vec*>(xr + i);
    if constexpr (VEC == 8) {
      uint32_t lo = 0, hi = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) lo |= uint32_t(q8(to_f(v.v[j]), scale)) << (8 * j);
#pragma unroll
      for (int j = 0; j < 4; ++j) hi |= uint32_t(q8(to_f(v.v[4 + j]), scale)) << (8 * j);
      *reinterpret_cast<uint2*>(qr + i) = make_uint2(lo, hi);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) qr[i + j] = q8(to_f(v.v[j]), scale);
    }
  }
}

template <class T>
int launch(const void* x, int64_t m, int64_t k, int64_t ld, void* xq, float* sx, cudaStream_t st) {
  const bool vec_ok = (k % 8 == 0) && (ld % 8 == 0) && (reinterpret_cast<uintptr_t>(x) % (8 * sizeof(T)) == 0) &&
                      (reinterpret_cast<uintptr_t>(xq) % 8 == 0);
  if (vec_ok) {
    quant_kernel<T, 8><<<dim3(static_cast<unsigned>(m)), kThreads, 0, st>>>(static_cast<const T*>(x), k, ld,
                                                                            static_cast<uint8_t*>(xq), sx);
  } else {
    quant_kernel<T, 1><<<dim3(static_cast<unsigned>(m)), kThreads, 0, st>>>(static_cast<const T*>(x), k, ld,
                                                                            static_cast<uint8_t*>(xq), sx);
  }
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? 0 : set_error("quantize launch failed: %s", cudaGetErrorString(err));
}

}  // namespace
}  // namespace s24

extern "C" int s24_quantize_per_token(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ld, void* xq,
                                      float* s_x, void* stream) {
  using namespace s24;
  if (m <= 0 || k <= 0) return set_error("bad shape M=%lld K=%lld", (long long)m, (long long)k);
  if (m > 0x7fffffff) return set_error("M=%lld too large", (long long)m);
  if (ld < k) return set_error("row stride %lld < K=%lld", (long long)ld, (long long)k);
  auto st = static_cast<cudaStream_t>(stream);
  switch (x_dtype) {
    case S24_BF16: return launch<__nv_bfloat16>(x, m, k, ld, xq, s_x, st);
    case S24_FP16: return launch<__half>(x, m, k, ld, xq, s_x, st);
    case S24_FP32: return launch<float>(x, m, k, ld, xq, s_x, st);
    default: return set_error("input dtype code %d unsupported (0=bf16, 1=fp16, 2=fp32)", x_dtype);
  }
}
