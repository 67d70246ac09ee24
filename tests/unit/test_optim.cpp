// SGD against PyTorch's update rule written out by hand, in double.
#include <gtest/gtest.h>

#include "trainer/optim/sgd.h"

namespace {

struct Fixture {
  std::unique_ptr<rn::Backend> be = rn::make_cpu_backend(2);
  rn::ParamStore ps;
  rn::Param* w = ps.declare_param("conv.weight", rn::Shape{2, 1, 1, 2}, false);
  rn::Param* g = ps.declare_param("bn.weight", rn::Shape{3}, true);
  Fixture() {
    ps.allocate(*be);
    const float wv[] = {0.5f, -1.f, 2.f, 0.25f}, gv[] = {1.f, -0.5f, 3.f};
    be->from_host(wv, w->value);
    be->from_host(gv, g->value);
  }
  void set_grads(float scale) {
    const float dw[] = {0.1f * scale, 0.2f, -0.3f, 0.4f}, dg[] = {-0.2f, 0.05f * scale, 0.7f};
    be->from_host(dw, w->grad);
    be->from_host(dg, g->grad);
  }
  // conv.weight then bn.weight (each at its own aligned offset).
  std::vector<float> values() {
    std::vector<float> v(7);
    be->to_host(w->value, v.data());
    be->to_host(g->value, v.data() + 4);
    return v;
  }
};

void reference(std::vector<double>& p, std::vector<double>& v, const std::vector<double>& g,
               const std::vector<double>& wd, double lr, double mu, bool nesterov) {
  for (size_t i = 0; i < p.size(); ++i) {
    const double gi = g[i] + wd[i] * p[i];
    v[i] = mu * v[i] + gi;
    p[i] -= lr * (nesterov ? gi + mu * v[i] : v[i]);
  }
}

void run_case(bool nesterov, bool no_decay) {
  Fixture f;
  rn::Sgd opt(*f.be, f.ps, rn::SgdOptions{0.9f, nesterov, 0.01f, no_decay});
  std::vector<double> p = {0.5, -1, 2, 0.25, 1, -0.5, 3}, v(7, 0.0);
  const double d = no_decay ? 0.0 : 0.01;
  const std::vector<double> wd = {0.01, 0.01, 0.01, 0.01, d, d, d};
  for (int step = 0; step < 3; ++step) {
    const float s = 1.f + step;
    f.set_grads(s);
    const std::vector<double> g = {0.1 * s, 0.2, -0.3, 0.4, -0.2, 0.05 * s, 0.7};
    std::vector<double> gf(g.begin(), g.end());
    for (auto& x : gf) x = static_cast<float>(x);
    opt.step(0.1f);
    reference(p, v, gf, wd, static_cast<float>(0.1), static_cast<float>(0.9), nesterov);
  }
  const auto got = f.values();
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(got[i], p[i], 1e-6) << "element " << i;
}

TEST(Sgd, MomentumMatchesPyTorchRule) { run_case(false, false); }
TEST(Sgd, NesterovMatchesPyTorchRule) { run_case(true, false); }
TEST(Sgd, NoDecayExemptsBnAndBias) { run_case(false, true); }

TEST(Sgd, DecayExemptionChangesTheResult) {
  Fixture a, b;
  rn::Sgd oa(*a.be, a.ps, rn::SgdOptions{0.9f, false, 0.1f, false});
  rn::Sgd ob(*b.be, b.ps, rn::SgdOptions{0.9f, false, 0.1f, true});
  a.set_grads(1);
  b.set_grads(1);
  oa.step(0.1f);
  ob.step(0.1f);
  EXPECT_EQ(a.values()[0], b.values()[0]);  // conv weight decays in both
  EXPECT_NE(a.values()[4], b.values()[4]);  // bn weight only in a
}

}  // namespace
