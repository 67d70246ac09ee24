#include "trainer/optim/sgd.h"

namespace rn {

Sgd::Sgd(Backend& be, ParamStore& params, const SgdOptions& opt) : be_(be), opt_(opt) {
  velocity_ = be.allocate(params.flat_values().shape(), Layout::kNC);
  be.fill(velocity_, 0.f);
  // Merge neighbouring parameters with the same decay into one run.
  size_t start = 0, end = 0;
  float decay = -1.f;
  auto flush = [&] {
    if (end > start) {
      const Shape s{static_cast<int64_t>(end - start)};
      runs_.push_back({params.flat_values().slice(start, s, Layout::kNC), params.flat_grads().slice(start, s, Layout::kNC),
                       velocity_.slice(start, s, Layout::kNC), decay});
    }
  };
  for (const auto& p : params.params()) {
    const float d = (opt.no_decay_bn_bias && !p.decay) ? 0.f : opt.weight_decay;
    if (d != decay) {
      flush();
      start = p.offset;
      decay = d;
    }
    end = p.offset + static_cast<size_t>(p.shape.numel());
  }
  flush();
}

void Sgd::step(float lr, float grad_scale) {
  for (auto& r : runs_) be_.sgd_step(r.p, r.g, r.v, lr, opt_.momentum, r.decay, opt_.nesterov, grad_scale);
}

}  // namespace rn
