// Compiled once per GEMM configuration: nvcc -DS24_CFG_ID=<id> (see gemm_configs.def and build.py).
#include "s24_gemm.cuh"

#ifndef S24_CFG_ID
#error "compile with -DS24_CFG_ID=<id from gemm_configs.def>"
#endif

namespace s24 {
namespace {


template <int Id>
struct Cfg;
#define S24_CFG(ID, NAME, TM, TN, TK, CM, CN, SCHED, ST)                                                          \
  template <>                                                                                              \
  struct Cfg<ID> {                                                                                         \
    static constexpr const char* name = #NAME;                                                             \
    template <class D>                                                                                     \
    using G = SparseFp8Gemm<D, TM, TN, TK, CM, CN, Sched::SCHED, ST>;                                          \
    static constexpr int tm = TM, tn = TN, tk = TK, cm = CM, sk = (Sched::SCHED == Sched::COOP_SK);        \
  };
#include "gemm_configs.def"
#undef S24_CFG

using C = Cfg<S24_CFG_ID>;
using GBf16 = C::G<cutlass::bfloat16_t>;
using GFp16 = C::G<cutlass::half_t>;

const bool registered = [] {
  GemmEntry e;
  e.name = C::name;
  e.tile_m = C::tm;
  e.tile_n = C::tn;
  e.tile_k = C::tk;
  e.cluster_m = C::cm;
  e.stream_k = C::sk;
  e.run[S24_BF16] = &GBf16::run;
  e.run[S24_FP16] = &GFp16::run;
  e.workspace[S24_BF16] = &GBf16::workspace_size;
  e.workspace[S24_FP16] = &GFp16::workspace_size;
  return register_config(S24_CFG_ID, e);
}();

}  // namespace
}  // namespace s24
