// SGD with momentum (PyTorch's formulation), Nesterov option, and weight
// decay that can skip BN and bias parameters. The parameters are updated in
// a few contiguous runs of the flat buffer (runs of equal decay setting),
// not parameter by parameter.
#pragma once

#include <vector>

#include "trainer/nn/param_store.h"

namespace rn {

struct SgdOptions {
  float momentum = 0.9f;
  bool nesterov = false;
  float weight_decay = 1e-4f;
  bool no_decay_bn_bias = false;  // BN gamma/beta and fc.bias get no decay
};

class Sgd {
 public:
  Sgd(Backend& be, ParamStore& params, const SgdOptions& opt);
  // One update with learning rate lr (per step; schedules live elsewhere),
  // on the gradients times grad_scale (1 / the loss scale).
  void step(float lr, float grad_scale = 1.f);
  // The momentum buffers, flat in ParamStore layout (PyTorch's
  // momentum_buffer of each parameter at its offset); checkpoints save it.
  Tensor& velocity() { return velocity_; }

 private:
  struct Run {
    Tensor p, g, v;
    float decay;
  };
  Backend& be_;
  SgdOptions opt_;
  Tensor velocity_;
  std::vector<Run> runs_;
};

}  // namespace rn
