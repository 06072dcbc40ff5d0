// CUTLASS's own StructuredSparseCompressor for the GEMM's SparseConfig: used only by tests to check that
// compress.cu's reorder produces exactly CUTLASS's metadata layout.
#include "cutlass/transform/device/transform_universal_adapter.hpp"
#include "cutlass/transform/kernel/sparse_gemm_compressor.hpp"
#include "s24_gemm.cuh"

namespace s24 {
namespace {
using G = SparseFp8Gemm<cutlass::bfloat16_t, 128, 16, 256, 1, 1, Sched::COOP_SK>;
using ProblemShape = Shape<int, int, int, int>;
using ElementA = cutlass::float_e4m3_t;
using Utility = cutlass::transform::kernel::StructuredSparseCompressorUtility<ProblemShape, ElementA,
                                                                              cutlass::layout::RowMajor,
                                                                              G::SparseConfig>;
using Kernel = cutlass::transform::kernel::StructuredSparseCompressor<ProblemShape, ElementA,
                                                                      cutlass::layout::RowMajor, G::SparseConfig,
                                                                      cutlass::arch::Sm90>;
using Compressor = cutlass::transform::device::TransformUniversalAdapter<Kernel>;
}  // namespace
}  // namespace s24

extern "C" int s24_cutlass_compress(const void* w, int64_t n, int64_t k, void* values, void* e, void* stream) {
  using namespace s24;
  ProblemShape problem{static_cast<int>(n), 1, static_cast<int>(k), 1};
  using StrideA = cute::Stride<int64_t, cute::Int<1>, int64_t>;
  StrideA stride_a{k, cute::Int<1>{}, 0};
  Utility util(problem, stride_a);
  if (util.get_tensorA_k_physical() != k / 2 || int64_t(util.get_metadata_m_physical()) *
                                                        util.get_metadata_k_physical() !=
                                                    s24_meta_reordered_bytes(n, k)) {
    return set_error("CUTLASS compressor sizes differ: A_k=%d E=%dx%d", util.get_tensorA_k_physical(),
                     util.get_metadata_m_physical(), util.get_metadata_k_physical());
  }
  cutlass::KernelHardwareInfo hw;
  cudaGetDevice(&hw.device_id);
  cudaDeviceGetAttribute(&hw.sm_count, cudaDevAttrMultiProcessorCount, hw.device_id);
  typename Compressor::Arguments args{
      problem,
      {static_cast<ElementA const*>(w), stride_a, static_cast<ElementA*>(values),
       static_cast<typename G::ElementE*>(e)},
      {hw}};
  Compressor op;
  if (op.can_implement(args) != cutlass::Status::kSuccess) return set_error("CUTLASS compressor: cannot implement");
  auto st = static_cast<cudaStream_t>(stream);
  size_t ws_bytes = Compressor::get_workspace_size(args);
  void* ws = nullptr;
  if (ws_bytes && cudaMallocAsync(&ws, ws_bytes, st) != cudaSuccess) return set_error("compressor workspace alloc");
  int rc = 0;
  if (op.initialize(args, ws, st) != cutlass::Status::kSuccess) {
    rc = set_error("CUTLASS compressor: init failed");
  } else if (op.run(st) != cutlass::Status::kSuccess) {
    rc = set_error("CUTLASS compressor: run failed");
  }
  if (ws) cudaFreeAsync(ws, st);
  if (rc) return rc;
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? 0 : set_error("CUTLASS compressor launch failed: %s", cudaGetErrorString(err));
}
