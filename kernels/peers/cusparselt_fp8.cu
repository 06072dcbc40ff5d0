// cuSPARSELt 2:4-sparse FP8 GEMM with a cached plan: the fair cuSPARSELt peer of our kernel (issue 17).
//
// torch._cslt_sparse_mm rebuilds descriptors and the plan on every call (360-940 us measured); this wrapper
// does all set-up once per weight and per M bucket, so a timed call only launches:
//   - s24p_cslt_weight_create: handle (once per process), structured descriptor of W [N, K] fp8 e4m3
//     row-major (2:4 along K), prune check (pruning with the STRIP rule only if W is not 2:4 already),
//     compression into a buffer owned by the weight;
//   - s24p_cslt_plan_create: dense descriptor of X [M, K] fp8 (row-major, used transposed), output
//     descriptor (bf16/fp16), matmul descriptor with CUSPARSELT_MATMUL_ALPHA_VECTOR_SCALING (alpha = s_w,
//     one float per output channel: cuSPARSELt's only per-channel scaling on sm_90; the A/B/D scale modes
//     of 0.8 are scalar or sm_100 block scales), plan, cusparseLtMatmulSearch once (best algorithm and
//     split-K on the real operands), workspace owned by the plan;
//   - s24p_cslt_matmul: cusparseLtMatmul only, then (when s_x is given) one elementwise kernel applying
//     the per-token scale, which cuSPARSELt cannot fuse: D = s_x (x) s_w * (X W^T).
// Math: D^T = W . X^T with op(A) = W [N, K] and op(B) = X^T [K, M]; D is N x M, stored column-major with
// ld = N (= Y [M, N] row-major, like our kernel) or, if that layout is refused, row-major (= Y^T).
// C ABI, no libtorch: loaded by kernels/peers/cusparselt.py with ctypes; built by kernels/peers/build.py.
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cusparseLt.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <type_traits>

namespace {

thread_local std::string g_error;
std::mutex g_mutex;
cusparseLtHandle_t g_handle;
int g_handle_device = -1;

struct Weight {
  int64_t n, k;
  cusparseLtMatDescriptor_t desc;
  void* compressed = nullptr;
  size_t compressed_bytes = 0;
  int pruned = 0;  // 1 if cuSPARSELt had to prune W (it was not 2:4 along K)
};

struct Plan {
  Weight* w;
  int64_t m;
  int out_dtype;   // 0 bf16, 1 fp16
  int d_col_major; // 1: D column-major (Y [M, N] row-major); 0: D row-major (Y^T [N, M])
  const float* alpha_vec;  // device [N]; captured by the plan at creation (pointer must outlive it)
  cusparseLtMatDescriptor_t b_desc, d_desc;
  cusparseLtMatmulDescriptor_t matmul;
  cusparseLtMatmulAlgSelection_t alg_sel;
  cusparseLtMatmulPlan_t plan;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int alg_id = -1, split_k = -1, split_k_mode = -1, max_alg_id = -1;
};

bool fail(const char* what, cusparseStatus_t st) {
  g_error = std::string(what) + ": " + cusparseLtGetErrorName(st) + " (" + cusparseLtGetErrorString(st) + ")";
  return false;
}
bool fail_cuda(const char* what, cudaError_t st) {
  g_error = std::string(what) + ": " + cudaGetErrorName(st) + " (" + cudaGetErrorString(st) + ")";
  return false;
}

#define LT(expr)                                   \
  do {                                             \
    cusparseStatus_t st_ = (expr);                 \
    if (st_ != CUSPARSE_STATUS_SUCCESS) {          \
      fail(#expr, st_);                            \
      goto error;                                  \
    }                                              \
  } while (0)
#define CU(expr)                                   \
  do {                                             \
    cudaError_t st_ = (expr);                      \
    if (st_ != cudaSuccess) {                      \
      fail_cuda(#expr, st_);                       \
      goto error;                                  \
    }                                              \
  } while (0)

bool ensure_handle() {
  std::lock_guard<std::mutex> lock(g_mutex);
  int dev = 0;
  cudaError_t ce = cudaGetDevice(&dev);
  if (ce != cudaSuccess) return fail_cuda("cudaGetDevice", ce);
  if (g_handle_device == dev) return true;
  if (g_handle_device >= 0) {
    g_error = "cuSPARSELt handle was initialised on device " + std::to_string(g_handle_device) +
              ", now called on device " + std::to_string(dev) + " (one device per process)";
    return false;
  }
  cusparseStatus_t st = cusparseLtInit(&g_handle);
  if (st != CUSPARSE_STATUS_SUCCESS) return fail("cusparseLtInit", st);
  g_handle_device = dev;
  return true;
}

// Per-token scale on the bf16/fp16 output: y[t, c] *= s_x[t]. Two elements per thread (N and M even).
template <typename T>
__global__ void scale_rows_kernel(T* __restrict__ out, const float* __restrict__ s_x, int64_t rows, int64_t cols,
                                  int per_row) {
  // per_row = 1: out is [rows = M, cols = N] row-major, scale by row; 0: out is [N, M], scale by column
  int64_t pairs = rows * cols / 2;
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < pairs; p += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = 2 * p;
    float s0, s1;
    if (per_row) {
      s0 = s1 = s_x[i / cols];
    } else {
      s0 = s_x[i % cols];
      s1 = s_x[(i + 1) % cols];
    }
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
      __nv_bfloat162 v = reinterpret_cast<__nv_bfloat162*>(out)[p];
      float2 f = __bfloat1622float2(v);
      reinterpret_cast<__nv_bfloat162*>(out)[p] = __floats2bfloat162_rn(f.x * s0, f.y * s1);
    } else {
      __half2 v = reinterpret_cast<__half2*>(out)[p];
      float2 f = __half22float2(v);
      reinterpret_cast<__half2*>(out)[p] = __floats2half2_rn(f.x * s0, f.y * s1);
    }
  }
}

}  // namespace

extern "C" {

const char* s24p_cslt_last_error() { return g_error.c_str(); }

// cuSPARSELt version of the loaded library (major*1000 + minor*100 + patch), or -1 with s24p_cslt_last_error.
int s24p_cslt_version() {
  if (!ensure_handle()) return -1;
  int v = 0;
  cusparseStatus_t st = cusparseLtGetVersion(&g_handle, &v);
  if (st != CUSPARSE_STATUS_SUCCESS) {
    fail("cusparseLtGetVersion", st);
    return -1;
  }
  return v;
}

// The header this wrapper was compiled against (CUSPARSELT_VERSION).
int s24p_cslt_header_version() { return CUSPARSELT_VERSION; }

// W: device [N, K] fp8 e4m3 row-major, 2:4 along K. Returns an opaque weight (compressed copy owned by it).
void* s24p_cslt_weight_create(const void* w, int64_t n, int64_t k, cudaStream_t stream) {
  if (!ensure_handle()) return nullptr;
  Weight* wt = new Weight();
  wt->n = n;
  wt->k = k;
  bool have_desc = false;
  void* pruned_copy = nullptr;
  void* buffer = nullptr;
  int* d_valid = nullptr;
  int valid = 0;
  size_t buffer_bytes = 0;
  const void* src = w;
  LT(cusparseLtStructuredDescriptorInit(&g_handle, &wt->desc, n, k, k, 16, CUDA_R_8F_E4M3, CUSPARSE_ORDER_ROW,
                                        CUSPARSELT_SPARSITY_50_PERCENT));
  have_desc = true;
  CU(cudaMalloc(&d_valid, sizeof(int)));
  LT(cusparseLtSpMMAPruneCheck2(&g_handle, &wt->desc, 1, CUSPARSE_OPERATION_NON_TRANSPOSE, w, d_valid, stream));
  CU(cudaMemcpyAsync(&valid, d_valid, sizeof(int), cudaMemcpyDeviceToHost, stream));
  CU(cudaStreamSynchronize(stream));
  if (valid != 0) {  // 0 means "already 2:4" for the prune check
    CU(cudaMalloc(&pruned_copy, (size_t)(n * k)));
    LT(cusparseLtSpMMAPrune2(&g_handle, &wt->desc, 1, CUSPARSE_OPERATION_NON_TRANSPOSE, w, pruned_copy,
                             CUSPARSELT_PRUNE_SPMMA_STRIP, stream));
    src = pruned_copy;
    wt->pruned = 1;
  }
  LT(cusparseLtSpMMACompressedSize2(&g_handle, &wt->desc, &wt->compressed_bytes, &buffer_bytes));
  CU(cudaMalloc(&wt->compressed, wt->compressed_bytes));
  if (buffer_bytes) CU(cudaMalloc(&buffer, buffer_bytes));
  LT(cusparseLtSpMMACompress2(&g_handle, &wt->desc, 1, CUSPARSE_OPERATION_NON_TRANSPOSE, src, wt->compressed,
                              buffer, stream));
  CU(cudaStreamSynchronize(stream));
  cudaFree(buffer);
  cudaFree(pruned_copy);
  cudaFree(d_valid);
  return wt;
error:
  cudaFree(buffer);
  cudaFree(pruned_copy);
  cudaFree(d_valid);
  cudaFree(wt->compressed);
  if (have_desc) cusparseLtMatDescriptorDestroy(&wt->desc);
  delete wt;
  return nullptr;
}

int s24p_cslt_weight_pruned(void* weight) { return static_cast<Weight*>(weight)->pruned; }
int64_t s24p_cslt_weight_bytes(void* weight) { return (int64_t)static_cast<Weight*>(weight)->compressed_bytes; }

void s24p_cslt_weight_destroy(void* weight) {
  Weight* wt = static_cast<Weight*>(weight);
  if (!wt) return;
  cusparseLtMatDescriptorDestroy(&wt->desc);
  cudaFree(wt->compressed);
  delete wt;
}

// One plan for X [M, K] -> D. alpha_vec: device float [N] (per-channel s_w; must outlive the plan) or null
// (alpha = 1). x / out: real operands of this M for the algorithm search (out is overwritten).
// search_iters <= 0 skips the search (default algorithm). Returns an opaque plan or null.
void* s24p_cslt_plan_create(void* weight, int64_t m, int out_dtype, int d_col_major, const float* alpha_vec,
                            const void* x, void* out, int search_iters, cudaStream_t stream) {
  if (!ensure_handle()) return nullptr;
  Weight* wt = static_cast<Weight*>(weight);
  Plan* p = new Plan();
  p->w = wt;
  p->m = m;
  p->out_dtype = out_dtype;
  p->d_col_major = d_col_major;
  p->alpha_vec = alpha_vec;
  const int64_t n = wt->n, k = wt->k;
  const cudaDataType dt = out_dtype == 1 ? CUDA_R_16F : CUDA_R_16BF;
  bool b_ok = false, d_ok = false, plan_ok = false, alg_ok = false;
  float alpha_scalar = 1.0f, beta = 0.0f;
  const void* alpha_ptr = alpha_vec ? (const void*)alpha_vec : (const void*)&alpha_scalar;
  // X [M, K] row-major, used transposed: op(B) = X^T [K, M]
  LT(cusparseLtDenseDescriptorInit(&g_handle, &p->b_desc, m, k, k, 16, CUDA_R_8F_E4M3, CUSPARSE_ORDER_ROW));
  b_ok = true;
  LT(cusparseLtDenseDescriptorInit(&g_handle, &p->d_desc, n, m, d_col_major ? n : m, 16, dt,
                                   d_col_major ? CUSPARSE_ORDER_COL : CUSPARSE_ORDER_ROW));
  d_ok = true;
  LT(cusparseLtMatmulDescriptorInit(&g_handle, &p->matmul, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                    CUSPARSE_OPERATION_TRANSPOSE, &wt->desc, &p->b_desc, &p->d_desc, &p->d_desc,
                                    CUSPARSE_COMPUTE_32F));
  if (alpha_vec) {
    int on = 1;
    LT(cusparseLtMatmulDescSetAttribute(&g_handle, &p->matmul, CUSPARSELT_MATMUL_ALPHA_VECTOR_SCALING, &on,
                                        sizeof(on)));
  }
  {
    // the search must see the compressed operand it will run with
    const void* a_ptr = wt->compressed;
    LT(cusparseLtMatmulDescSetAttribute(&g_handle, &p->matmul, CUSPARSELT_MATMUL_SPARSE_MAT_POINTER, &a_ptr,
                                        sizeof(a_ptr)));
  }
  LT(cusparseLtMatmulAlgSelectionInit(&g_handle, &p->alg_sel, &p->matmul, CUSPARSELT_MATMUL_ALG_DEFAULT));
  alg_ok = true;
  if (search_iters > 0)
    LT(cusparseLtMatmulAlgSetAttribute(&g_handle, &p->alg_sel, CUSPARSELT_MATMUL_SEARCH_ITERATIONS, &search_iters,
                                       sizeof(search_iters)));
  LT(cusparseLtMatmulPlanInit(&g_handle, &p->plan, &p->matmul, &p->alg_sel));
  plan_ok = true;
  LT(cusparseLtMatmulGetWorkspace(&g_handle, &p->plan, &p->workspace_bytes));
  if (p->workspace_bytes) CU(cudaMalloc(&p->workspace, p->workspace_bytes));
  if (search_iters > 0) {
    LT(cusparseLtMatmulSearch(&g_handle, &p->plan, alpha_ptr, wt->compressed, x, &beta, out, out, p->workspace,
                              &stream, 1));
    CU(cudaStreamSynchronize(stream));
    // the chosen split-K may need a larger workspace than the default algorithm
    size_t ws = 0;
    LT(cusparseLtMatmulGetWorkspace(&g_handle, &p->plan, &ws));
    if (ws > p->workspace_bytes) {
      cudaFree(p->workspace);
      p->workspace = nullptr;
      p->workspace_bytes = ws;
      CU(cudaMalloc(&p->workspace, ws));
    }
  }
  cusparseLtMatmulAlgGetAttribute(&g_handle, &p->alg_sel, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &p->alg_id,
                                  sizeof(p->alg_id));
  cusparseLtMatmulAlgGetAttribute(&g_handle, &p->alg_sel, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &p->max_alg_id,
                                  sizeof(p->max_alg_id));
  cusparseLtMatmulAlgGetAttribute(&g_handle, &p->alg_sel, CUSPARSELT_MATMUL_SPLIT_K, &p->split_k,
                                  sizeof(p->split_k));
  cusparseLtMatmulAlgGetAttribute(&g_handle, &p->alg_sel, CUSPARSELT_MATMUL_SPLIT_K_MODE, &p->split_k_mode,
                                  sizeof(p->split_k_mode));
  return p;
error:
  cudaFree(p->workspace);
  if (plan_ok) cusparseLtMatmulPlanDestroy(&p->plan);
  if (alg_ok) cusparseLtMatmulAlgSelectionDestroy(&p->alg_sel);
  if (d_ok) cusparseLtMatDescriptorDestroy(&p->d_desc);
  if (b_ok) cusparseLtMatDescriptorDestroy(&p->b_desc);
  delete p;
  return nullptr;
}

// alg id, max alg id, split-K, split-K mode, workspace bytes of a plan (after the search).
int s24p_cslt_plan_info(void* plan, int* alg_id, int* max_alg_id, int* split_k, int* split_k_mode,
                        int64_t* workspace_bytes) {
  Plan* p = static_cast<Plan*>(plan);
  *alg_id = p->alg_id;
  *max_alg_id = p->max_alg_id;
  *split_k = p->split_k;
  *split_k_mode = p->split_k_mode;
  *workspace_bytes = (int64_t)p->workspace_bytes;
  return 0;
}

// out = s_w * (X W^T) [* s_x per token when s_x != null]. Launches only; capturable in a CUDA graph.
int s24p_cslt_matmul(void* plan, const void* x, void* out, const float* s_x, cudaStream_t stream) {
  Plan* p = static_cast<Plan*>(plan);
  float alpha_scalar = 1.0f, beta = 0.0f;
  const void* alpha_ptr = p->alpha_vec ? (const void*)p->alpha_vec : (const void*)&alpha_scalar;
  cusparseStatus_t st = cusparseLtMatmul(&g_handle, &p->plan, alpha_ptr, p->w->compressed, x, &beta, out, out,
                                         p->workspace, &stream, 1);
  if (st != CUSPARSE_STATUS_SUCCESS) {
    fail("cusparseLtMatmul", st);
    return 1;
  }
  if (s_x) {
    const int64_t n = p->w->n, m = p->m;
    const int64_t pairs = n * m / 2;
    const int threads = 256;
    const int blocks = (int)std::min<int64_t>((pairs + threads - 1) / threads, 132 * 16);
    // D column-major = out [M, N] row-major: scale rows; D row-major = out [N, M]: scale columns
    const int64_t rows = p->d_col_major ? m : n, cols = p->d_col_major ? n : m;
    if (p->out_dtype == 1)
      scale_rows_kernel<__half><<<blocks, threads, 0, stream>>>(static_cast<__half*>(out), s_x, rows, cols,
                                                                p->d_col_major);
    else
      scale_rows_kernel<__nv_bfloat16><<<blocks, threads, 0, stream>>>(static_cast<__nv_bfloat16*>(out), s_x, rows,
                                                                       cols, p->d_col_major);
    cudaError_t ce = cudaGetLastError();
    if (ce != cudaSuccess) {
      fail_cuda("scale_rows_kernel", ce);
      return 1;
    }
  }
  return 0;
}

void s24p_cslt_plan_destroy(void* plan) {
  Plan* p = static_cast<Plan*>(plan);
  if (!p) return;
  cusparseLtMatmulPlanDestroy(&p->plan);
  cusparseLtMatmulAlgSelectionDestroy(&p->alg_sel);
  cusparseLtMatDescriptorDestroy(&p->d_desc);
  cusparseLtMatDescriptorDestroy(&p->b_desc);
  cudaFree(p->workspace);
  delete p;
}

}  // extern "C"
