// The oneDNN CPU backend: the reference backend, always built.
//
// Activations stay in oneDNN's blocked layout (nChw16c on AVX-512, nChw8c on
// AVX2) from the first convolution to the global pool, so no per-op
// reorders happen between layers. Weights live in PyTorch's OIHW order in
// the parameter buffers; a convolution reorders them into its preferred
// layout in forward (cheap next to the convolution itself).
//
// Every primitive runs with a user-managed scratchpad owned by the backend
// and memory objects built once per kernel, so executing a kernel allocates
// nothing.
#pragma once

#include <dnnl.hpp>
#include <initializer_list>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "trainer/backend/backend.h"
#include "trainer/core/error.h"

// Wraps oneDNN calls so a failure names the call, file:line, rank and device.
#define DNNL_CALL(expr)                                                            \
  [&]() -> decltype(auto) {                                                        \
    try {                                                                          \
      return (expr);                                                               \
    } catch (const dnnl::error& e_) {                                              \
      ::rn::throw_internal(#expr, __FILE__, __LINE__, std::string(e_.what()) + " (dnnl_status " + std::to_string(static_cast<int>(e_.status)) + ")");                  \
    }                                                                              \
  }()

namespace rn {

// A primitive with its argument memories, built once; run() only swaps data
// pointers in. c_args: the same memories as oneDNN's C API takes them, so
// that a run builds no argument list (the C++ execute() allocates one).
struct DnnlExec {
  dnnl::primitive prim;
  std::unordered_map<int, dnnl::memory> args;
  std::vector<dnnl_exec_arg_t> c_args;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);
  std::string name() const override { return "cpu-onednn"; }

  Tensor allocate(const Shape& shape, Layout layout, DType dtype = DType::kF32) override;
  Layout activation_layout(int64_t channels) const override;

  std::unique_ptr<ConvKernel> make_conv(const ConvGeom& g, Layout x, Layout y, bool need_dx) override;
  std::unique_ptr<BatchNormKernel> make_batchnorm(const Shape& s, Layout l, DType dtype, float eps, BnTail tail,
                                                  bool global_stats = false) override;
  std::unique_ptr<PoolKernel> make_pool(const PoolGeom& g, Layout x, Layout y) override;
  std::unique_ptr<LinearKernel> make_linear(int64_t n, int64_t in, int64_t out) override;

  void fill(Tensor& t, float value) override;
  void axpby(float a, Tensor& y, float b, const Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void shortcut_pad_forward(const Tensor& x, Tensor& y, int64_t stride) override;
  void shortcut_pad_backward(const Tensor& dy, Tensor& dx, int64_t stride) override;
  // Computed at once, on the calling thread.
  void softmax_cross_entropy(const Tensor& logits, const int32_t* labels, float smoothing, Tensor& dlogits,
                             float loss_scale = 1.f) override;
  LossResult loss_result() override;
  void sgd_step(Tensor& param, const Tensor& grad, Tensor& velocity, float lr, float momentum, float weight_decay,
                bool nesterov, float grad_scale = 1.f) override;
  bool all_finite(const Tensor& t) override;
  void to_host(const Tensor& t, float* host) override;
  const float* host_view(const Tensor& t) override {
    return t.layout() == Layout::kNCHW || t.layout() == Layout::kNC ? t.data() : nullptr;
  }
  void from_host(const float* host, Tensor& t) override;
  void synchronize() override { stream_.wait(); }

  // --- for the kernels in this folder ---
  const dnnl::engine& engine() const { return engine_; }
  dnnl::memory::desc md(const Shape& s, Layout l) const;
  // Attributes every primitive is created with (user scratchpad).
  dnnl::primitive_attr attr() const;
  // Builds an executable with memories for `arg -> desc` (data set at run).
  DnnlExec prepare(dnnl::primitive prim, std::initializer_list<std::pair<int, dnnl::memory::desc>> args,
                   const dnnl::memory::desc& scratchpad);
  // Points the memories at `ptrs` (and the shared scratchpad) and executes.
  void run(DnnlExec& e, std::initializer_list<std::pair<int, const void*>> ptrs);
  // An executable reorder between two descriptors.
  DnnlExec make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to);
  // Memory the backend owns for a kernel's lifetime (layout copies, workspaces).
  Tensor allocate_bytes(size_t bytes);
  // One buffer for data that lives only during one kernel call (a
  // convolution's weights in the layout one of its directions wants):
  // kernels run one at a time, so all of them share it. A kernel reserves
  // its size when it is built (never in the step loop) and asks for the
  // pointer at each call (a later reservation may have moved it), saying
  // how many bytes it will use (InternalError beyond the reservation).
  void reserve_call_buffer(size_t bytes);
  void* call_buffer(size_t bytes);

 private:
  void grow_scratchpad(size_t bytes);
  dnnl::engine engine_;
  dnnl::stream stream_;
  Tensor scratch_;
  size_t scratch_bytes_ = 0;
  Tensor call_buffer_;
  size_t call_buffer_bytes_ = 0;
  std::map<std::tuple<Shape, Layout, Layout>, DnnlExec> reorders_;
  std::optional<LossResult> loss_;  // the last softmax_cross_entropy's
};

}  // namespace rn
