// One CUTLASS 3.x sm90a 2:4-sparse FP8 GEMM configuration with the fused scale/bias epilogue.
// Included by gemm_instance.cu, which is compiled once per configuration (-DS24_CFG_ID=n).
#pragma once
#include <cuda_runtime.h>

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "s24_internal.h"

namespace s24 {
using namespace cute;

enum class Sched { COOP_SK, COOP, PINGPONG };

#if defined(CUTLASS_ENABLE_GDC_FOR_SM90)
constexpr bool kGdcCompiled = true;  // producer warps wait on the previous grid: PDL launch is safe
#else
constexpr bool kGdcCompiled = false;
#endif

template <class ElementD_, int TM, int TN, int TK, int CM, int CN, Sched S, int STAGES = 0>
struct SparseFp8Gemm {
  using ElementAB = cutlass::float_e4m3_t;
  using ElementD = ElementD_;
  using ElementAcc = float;
  using TileShape = Shape<Int<TM>, Int<TN>, Int<TK>>;
  using ClusterShape = Shape<Int<CM>, Int<CN>, _1>;
  static constexpr bool kCoop = S != Sched::PINGPONG;
  using KernelSchedule = cute::conditional_t<kCoop,
      cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8FastAccum,
      cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8FastAccum>;
  using EpilogueSchedule = cute::conditional_t<kCoop,
      cutlass::epilogue::TmaWarpSpecializedCooperative, cutlass::epilogue::TmaWarpSpecialized>;
  using Scheduler = cute::conditional_t<S == Sched::COOP_SK, cutlass::gemm::StreamKScheduler,
                                        cutlass::gemm::PersistentScheduler>;

  // D^T [N', M'] = D^T of Y: column-major (M'=weight rows contiguous) == Y [M, N] row-major.
  using LayoutD = cutlass::layout::ColumnMajor;
  static constexpr int AlignD = 128 / cutlass::sizeof_bits<ElementD>::value;
  static constexpr int AlignAB = 16;

  // Epilogue: D = s_x[col] * (s_w[row] * acc) + bias[row]      (row = weight row, col = token)
  using RoundStyle = cutlass::FloatRoundStyle;
  using ScaleW = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<_1, _0, int64_t>>;
  using Bias = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, ElementD, float, Stride<_1, _0, int64_t>>;
  using ScaleX = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, int64_t>>;
  using Acc = cutlass::epilogue::fusion::Sm90AccFetch;
  using Mul = cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, RoundStyle::round_to_nearest>;
  using Fma = cutlass::epilogue::fusion::Sm90Compute<cutlass::homogeneous_multiply_add, ElementD, float,
                                                     RoundStyle::round_to_nearest>;
  using EvtScaled = cutlass::epilogue::fusion::Sm90EVT<Mul, ScaleW, Acc>;
  using Evt = cutlass::epilogue::fusion::Sm90EVT<Fma, ScaleX, EvtScaled, Bias>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, float,
      void, LayoutD, AlignD, ElementD, LayoutD, AlignD, EpilogueSchedule, Evt>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassSparseTensorOp,
      ElementAB, cutlass::layout::RowMajor, AlignAB,
      ElementAB, cutlass::layout::ColumnMajor, AlignAB,
      ElementAcc, TileShape, ClusterShape,
      cute::conditional_t<(STAGES > 0), cutlass::gemm::collective::StageCount<(STAGES > 0 ? STAGES : 1)>,
                          cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
                              sizeof(typename CollectiveEpilogue::SharedStorage))>>,
      KernelSchedule>::CollectiveOp;

  using GemmKernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop,
                                                          CollectiveEpilogue, Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;
  using SparseConfig = typename CollectiveMainloop::SparseConfig;
  using ElementE = typename CollectiveMainloop::ElementE;

  static typename Gemm::Arguments make_args(const GemmCall& c) {
    // GEMM problem (M', N', K) = (weight rows N, tokens M, K)
    Shape<int, int, int, int> problem{c.n, c.m, c.k, 1};
    auto layout_a = SparseConfig::fill_layoutA(problem);
    auto layout_e = SparseConfig::fill_layoutE(problem);
    using StrideB = typename GemmKernel::StrideB;
    using StrideD = typename GemmKernel::StrideD;
    StrideB stride_b = cutlass::make_cute_packed_stride(StrideB{}, cute::make_shape(c.m, c.k, 1));
    StrideD stride_d = cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(c.n, c.m, 1));

    typename GemmKernel::MainloopArguments mainloop{
        static_cast<ElementAB const*>(c.a), layout_a, static_cast<ElementAB const*>(c.x), stride_b,
        static_cast<ElementE const*>(c.e), layout_e};

    typename GemmKernel::EpilogueArguments epilogue{};
    auto& f = epilogue.thread;
    // Evt = Fma(ScaleX, EvtScaled(ScaleW, Acc), Bias)
    f = {
        {c.s_x, 0.0f, {}},                                          // ScaleX (row broadcast over tokens)
        {{c.s_w, 0.0f, {}}, {}, {}},                                // ScaleW * Acc
        {static_cast<ElementD const*>(c.bias), ElementD(0.0f), {}}, // Bias (nullptr -> 0)
        {}};
    epilogue.ptr_C = nullptr;
    epilogue.dC = stride_d;
    epilogue.ptr_D = static_cast<ElementD*>(c.d);
    epilogue.dD = stride_d;

    cutlass::KernelHardwareInfo hw;
    hw.device_id = c.device;
    hw.sm_count = c.sm_count;
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm, problem, mainloop, epilogue, hw};
    if constexpr (S == Sched::COOP_SK) {
      using Mode = cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90StreamKParams::DecompositionMode;
      Mode mode = Mode::Heuristic;
      if (c.mode == S24_MODE_DATA_PARALLEL) mode = Mode::DataParallel;
      if (c.mode == S24_MODE_SPLIT_K) mode = Mode::SplitK;
      if (c.mode == S24_MODE_STREAM_K) mode = Mode::StreamK;
      args.scheduler.splits = c.mode == S24_MODE_SPLIT_K ? (c.splits > 1 ? c.splits : 2) : 1;
      args.scheduler.decomposition_mode = mode;
    }
    return args;
  }

  static int64_t workspace_size(const GemmCall& c) {
    auto args = make_args(c);
    return static_cast<int64_t>(Gemm::get_workspace_size(args));
  }

  // cudaFuncSetAttribute(max dynamic smem) once per device instead of on every call.
  static int ensure_smem_attribute(int device) {
    static bool done[64] = {};
    constexpr int smem = GemmKernel::SharedStorageSize;
    if (smem < (48 << 10) || device < 0 || device >= 64 || done[device]) return 0;
    cudaError_t err = cudaFuncSetAttribute(cutlass::device_kernel<GemmKernel>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return set_error("cudaFuncSetAttribute(smem=%d) failed: %s", smem, cudaGetErrorString(err));
    }
    done[device] = true;
    return 0;
  }

  static int run(const GemmCall& c) {
    auto args = make_args(c);
    cutlass::Status st = Gemm::can_implement(args);
    if (st != cutlass::Status::kSuccess) {
      return set_error("CUTLASS can_implement failed (%s) for M=%d N=%d K=%d", cutlassGetStatusString(st), c.m,
                       c.n, c.k);
    }
    int64_t need = static_cast<int64_t>(Gemm::get_workspace_size(args));
    if (need > c.workspace_bytes) {
      return set_error("workspace too small: need %lld bytes, got %lld", (long long)need,
                       (long long)c.workspace_bytes);
    }
    auto stream = static_cast<cudaStream_t>(c.stream);
    if (ensure_smem_attribute(c.device)) return 1;
    st = GemmKernel::initialize_workspace(args, c.workspace, stream);
    if (st != cutlass::Status::kSuccess) return set_error("CUTLASS workspace init failed: %s", cutlassGetStatusString(st));
    auto params = GemmKernel::to_underlying_arguments(args, c.workspace);
    // PDL: the kernel's prologue overlaps the previous kernel on the stream. Only for configs built with
    // CUTLASS_ENABLE_GDC_FOR_SM90 (their producers wait for that kernel's results before reading operands);
    // CUTLASS 4.2's stream-K scheduler does not compile with it, so stream-K configs launch without PDL.
    st = Gemm::run(params, stream, nullptr, kGdcCompiled && c.pdl != 0);
    if (st != cutlass::Status::kSuccess) return set_error("CUTLASS run failed: %s", cutlassGetStatusString(st));
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return set_error("GEMM launch failed: %s", cudaGetErrorString(err));
    return 0;
  }
};

}  // namespace s24
