#include "trainer/backend/cpu/cpu_backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>

namespace rn {

namespace {
void aligned_release(void* p) { std::free(p); }
}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

CpuBackend::CpuBackend(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
  engine_ = DNNL_CALL(dnnl::engine(dnnl::engine::kind::cpu, 0));
  stream_ = DNNL_CALL(dnnl::stream(engine_));
  grow_scratchpad(1 << 20);
}

Tensor CpuBackend::allocate(const Shape& shape, Layout layout, DType dtype) {
  RN_CHECK(dtype == DType::kF32, std::string("the CPU backend computes in fp32 only, not ") + dtype_name(dtype));
  const size_t bytes = std::max<size_t>(64, (static_cast<size_t>(shape.numel()) * sizeof(float) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  RN_CHECK(p != nullptr, "out of host memory allocating " + std::to_string(bytes) + " bytes for " + shape.str());
  return Tensor(shape, layout, std::make_shared<Buffer>(p, bytes, aligned_release));
}

Tensor CpuBackend::allocate_bytes(size_t bytes) {
  return allocate(Shape{static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, Layout::kNC);
}

Layout CpuBackend::activation_layout(int64_t channels) const {
  const auto isa = dnnl::get_effective_cpu_isa();
  if (isa >= dnnl::cpu_isa::avx512_core && channels % 16 == 0) return Layout::kNCHW16c;
  if (isa >= dnnl::cpu_isa::avx2 && channels % 8 == 0) return Layout::kNCHW8c;
  return Layout::kNCHW;
}

dnnl::memory::desc CpuBackend::md(const Shape& s, Layout l) const {
  using tag = dnnl::memory::format_tag;
  const dnnl::memory::dims dims(s.begin(), s.end());
  tag t = tag::undef;
  switch (s.rank()) {
    case 1:
      t = tag::a;
      break;
    case 2:
      t = tag::ab;
      break;
    case 4:
      t = l == Layout::kNCHW16c  ? tag::nChw16c
          : l == Layout::kNCHW8c ? tag::nChw8c
          : l == Layout::kNHWC   ? tag::nhwc
                                 : tag::nchw;
      break;
    default:
      RN_CHECK(false, "no oneDNN layout for shape " + s.str());
  }
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, t);
}

dnnl::primitive_attr CpuBackend::attr() const {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

void CpuBackend::grow_scratchpad(size_t bytes) {
  if (bytes <= scratch_bytes_) return;
  scratch_ = allocate_bytes(bytes);
  scratch_bytes_ = bytes;
}

void CpuBackend::reserve_call_buffer(size_t bytes) {
  if (bytes <= call_buffer_bytes_) return;
  call_buffer_ = allocate_bytes(bytes);
  call_buffer_bytes_ = bytes;
}

void* CpuBackend::call_buffer(size_t bytes) {
  RN_CHECK(bytes <= call_buffer_bytes_, "call buffer of " + std::to_string(call_buffer_bytes_) + " bytes asked for " +
                                            std::to_string(bytes) + ": a kernel did not reserve it");
  return call_buffer_.data();
}

DnnlExec CpuBackend::prepare(dnnl::primitive prim, std::initializer_list<std::pair<int, dnnl::memory::desc>> args,
                             const dnnl::memory::desc& scratchpad) {
  DnnlExec e;
  e.prim = std::move(prim);
  for (const auto& [arg, d] : args)  // an empty descriptor: the primitive has no such argument (no workspace)
    if (d != dnnl::memory::desc()) e.args.emplace(arg, DNNL_CALL(dnnl::memory(d, engine_, DNNL_MEMORY_NONE)));
  grow_scratchpad(scratchpad.get_size());
  e.args.emplace(DNNL_ARG_SCRATCHPAD, DNNL_CALL(dnnl::memory(scratchpad, engine_, DNNL_MEMORY_NONE)));
  for (const auto& [arg, m] : e.args) e.c_args.push_back(dnnl_exec_arg_t{arg, m.get()});
  return e;
}

void CpuBackend::run(DnnlExec& e, std::initializer_list<std::pair<int, const void*>> ptrs) {
  for (const auto& [arg, p] : ptrs) {
    auto it = e.args.find(arg);
    if (it == e.args.end() && p == nullptr) continue;  // optional argument this primitive lacks
    RN_CHECK(it != e.args.end(), "oneDNN argument " + std::to_string(arg) + " was not prepared");
    it->second.set_data_handle(const_cast<void*>(p));
  }
  e.args.at(DNNL_ARG_SCRATCHPAD).set_data_handle(scratch_.data());
  const dnnl_status_t st = dnnl_primitive_execute(e.prim.get(), stream_.get(), int(e.c_args.size()), e.c_args.data());
  if (st != dnnl_success)
    throw_internal("dnnl_primitive_execute", __FILE__, __LINE__, "dnnl_status " + std::to_string(int(st)));
}

DnnlExec CpuBackend::make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  auto pd = DNNL_CALL(dnnl::reorder::primitive_desc(engine_, from, engine_, to, attr()));
  return prepare(dnnl::reorder(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, pd.scratchpad_desc());
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  RN_CHECK(src.shape() == dst.shape(), "copy " + src.shape().str() + " -> " + dst.shape().str());
  if (src.layout() == dst.layout()) {
    std::memcpy(dst.data(), src.data(), src.bytes());
    return;
  }
  auto key = std::make_tuple(src.shape(), src.layout(), dst.layout());
  auto it = reorders_.find(key);
  if (it == reorders_.end())
    it = reorders_.emplace(key, make_reorder(md(src.shape(), src.layout()), md(dst.shape(), dst.layout()))).first;
  run(it->second, {{DNNL_ARG_FROM, src.data()}, {DNNL_ARG_TO, dst.data()}});
}

void CpuBackend::to_host(const Tensor& t, float* host) {
  if (t.layout() == Layout::kNCHW || t.layout() == Layout::kNC) {
    std::memcpy(host, t.data(), t.bytes());
    return;
  }
  Tensor plain(t.shape(), Layout::kNCHW, std::make_shared<Buffer>(host, t.bytes(), nullptr));
  copy(t, plain);
}

void CpuBackend::from_host(const float* host, Tensor& t) {
  if (t.layout() == Layout::kNCHW || t.layout() == Layout::kNC) {
    std::memcpy(t.data(), host, t.bytes());
    return;
  }
  Tensor plain(t.shape(), Layout::kNCHW,
               std::make_shared<Buffer>(const_cast<float*>(host), t.bytes(), nullptr));
  copy(plain, t);
}

}  // namespace rn
