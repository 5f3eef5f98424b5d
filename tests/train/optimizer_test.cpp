// Optimizers against their update formulas written out as plain scalar loops (independently of
// train/optimizer.cpp), and, when /usr/bin/python3 has torch, against torch.optim itself.
#include "train/optimizer.h"

#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_files.h"
#include "test_threads.h"

namespace qkv {
namespace {

constexpr int kSteps = 5;

/// A parameter with values 0.5 + 0.25·sin(1 + 0.9 i) (kept away from zero).
Var<float> param(const Shape& shape, float offset = 0.f) {
  Tensor<float> t = Tensor<float>::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t[i] = 0.5f + offset + 0.25f * static_cast<float>(std::sin(1.0 + 0.9 * static_cast<double>(i)));
  return Var<float>(t, /*requires_grad=*/true);
}

/// The fixed gradient of step t (1-based) for element i.
float grad_value(int t, int64_t i, int salt = 0) {
  return static_cast<float>(std::sin(0.7 * static_cast<double>(i + salt) + 1.3 * t) *
                            (1.0 + 0.1 * t));
}

void set_grads(OptimParams<float>& params, int t) {
  for (size_t k = 0; k < params.size(); ++k) {
    Var<float>& v = params[k].second;
    Tensor<float> g = Tensor<float>::empty(v.shape());
    for (int64_t i = 0; i < g.numel(); ++i) g[i] = grad_value(t, i, static_cast<int>(k) * 5);
    v.grad() = g;
  }
}

std::vector<double> values(const Var<float>& v) {
  std::vector<double> out;
  for (float x : v.value()) out.push_back(x);
  return out;
}

/// |a − b| <= rtol·|b| elementwise (the parameters stay far from zero).
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rtol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(std::abs(got[i] - want[i]), rtol * std::abs(want[i]))
        << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
}

// ---- reference formulas, one scalar at a time, in double ------------------------------------

struct RefSgd {
  double lr, mu, wd;
  bool nesterov;
  std::vector<double> p, buf;
  void step(const std::vector<double>& g) {
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (mu != 0) {
        buf[i] = mu * buf[i] + d;  // buf starts at 0: the first step gives buf = d
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

struct RefAdam {
  RefAdam(double lr, double b1, double b2, double eps, double wd, bool decoupled,
          std::vector<double> p)
      : lr(lr),
        b1(b1),
        b2(b2),
        eps(eps),
        wd(wd),
        decoupled(decoupled),
        p(std::move(p)),
        m(this->p.size(), 0.0),
        v(this->p.size(), 0.0) {}

  double lr, b1, b2, eps, wd;
  bool decoupled;
  std::vector<double> p, m, v;  // parameters and the two moments, which start at 0
  int t = 0;
  void step(const std::vector<double>& g) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      double gi = g[i];
      if (decoupled) {
        p[i] *= 1 - lr * wd;
      } else {
        gi += wd * p[i];
      }
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

std::vector<double> grads_of(int t, int64_t n, int salt = 0) {
  std::vector<double> g;
  for (int64_t i = 0; i < n; ++i) g.push_back(grad_value(t, i, salt));
  return g;
}

TEST(Sgd, PlainMatchesHandFormula) {
  OptimParams<float> ps{{"w", param({3, 4})}};
  Sgd<float> opt(ps, {/*lr=*/0.1, /*momentum=*/0, /*nesterov=*/false, /*weight_decay=*/0.05});
  RefSgd ref{0.1, 0, 0.05, false, values(ps[0].second), std::vector<double>(12, 0.0)};
  for (int t = 1; t <= kSteps; ++t) {
    set_grads(ps, t);
    opt.step();
    ref.step(grads_of(t, 12));
  }
  expect_close(values(ps[0].second), ref.p, 1e-6, "w");
  EXPECT_TRUE(opt.slot_names().empty());
  EXPECT_EQ(opt.steps(), kSteps);
}

TEST(Sgd, MomentumAndNesterovMatchHandFormula) {
  for (bool nesterov : {false, true}) {
    OptimParams<float> ps{{"w", param({2, 5})}};
    Sgd<float> opt(ps, {0.05, 0.9, nesterov, 0.01});
    RefSgd ref{0.05, 0.9, 0.01, nesterov, values(ps[0].second), std::vector<double>(10, 0.0)};
    for (int t = 1; t <= kSteps; ++t) {
      set_grads(ps, t);
      opt.step();
      ref.step(grads_of(t, 10));
    }
    expect_close(values(ps[0].second), ref.p, 1e-6, nesterov ? "nesterov" : "momentum");
    std::vector<double> buf;
    for (float x : opt.slot("momentum", "w")) buf.push_back(x);
    expect_close(buf, ref.buf, 1e-5, "momentum buffer");
  }
}

TEST(Adam, MatchesHandFormulaWithAndWithoutL2) {
  for (double wd : {0.0, 0.1}) {
    OptimParams<float> ps{{"w", param({4, 3})}};
    Adam<float> opt(ps, {/*lr=*/0.01, 0.9, 0.999, 1e-8, wd});
    RefAdam ref(0.01, 0.9, 0.999, 1e-8, wd, /*decoupled=*/false, values(ps[0].second));
    for (int t = 1; t <= kSteps; ++t) {
      set_grads(ps, t);
      opt.step();
      ref.step(grads_of(t, 12));
    }
    expect_close(values(ps[0].second), ref.p, 1e-6, "adam wd=" + std::to_string(wd));
  }
}

TEST(AdamW, MatchesHandFormulaWithDecoupledDecay) {
  OptimParams<float> ps{{"blocks.0.attn.W_Q.weight", param({4, 3})}};
  AdamW<float> opt(ps, {/*lr=*/0.02, 0.8, 0.99, 1e-6, /*weight_decay=*/0.5, {}});
  RefAdam ref(0.02, 0.8, 0.99, 1e-6, 0.5, /*decoupled=*/true, values(ps[0].second));
  for (int t = 1; t <= kSteps; ++t) {
    set_grads(ps, t);
    opt.step();
    ref.step(grads_of(t, 12));
  }
  expect_close(values(ps[0].second), ref.p, 1e-6, "adamw");
  std::vector<double> m, v;
  for (float x : opt.slot("m", "blocks.0.attn.W_Q.weight")) m.push_back(x);
  for (float x : opt.slot("v", "blocks.0.attn.W_Q.weight")) v.push_back(x);
  expect_close(m, ref.m, 1e-5, "m");
  expect_close(v, ref.v, 1e-5, "v");
}

// A parameter of several chunks (AdamW runs in chunks of 65 536 elements on all threads): every
// element against the hand formula, and 1 thread against 2 bit for bit.
TEST(AdamW, LargeParameterInChunksMatchesHandFormulaAtAnyThreadCount) {
  const int64_t n = 3 * 65536 + 77;
  auto run = [&](int threads) {
    test::ScopedThreads scoped(threads);
    OptimParams<float> ps{{"blocks.0.ff.fc1.weight", param({n})}};
    AdamW<float> opt(ps, {/*lr=*/0.02, 0.8, 0.99, 1e-6, /*weight_decay=*/0.5, {}});
    for (int t = 1; t <= 3; ++t) {
      set_grads(ps, t);
      opt.step();
    }
    return values(ps[0].second);
  };
  const std::vector<double> one = run(1), two = run(2);
  EXPECT_EQ(one, two);
  OptimParams<float> init{{"w", param({n})}};
  RefAdam ref(0.02, 0.8, 0.99, 1e-6, 0.5, /*decoupled=*/true, values(init[0].second));
  for (int t = 1; t <= 3; ++t) ref.step(grads_of(t, n));
  expect_close(two, ref.p, 1e-6, "adamw in chunks");
}

TEST(AdamW, DefaultNoDecayRuleByName) {
  for (const char* name : {"blocks.0.attn.W_Q.bias", "blocks.1.ln1.weight", "blocks.1.ln2.bias",
                           "ln_f.weight", "dec.blocks.0.ln_x.weight", "tok_emb.weight",
                           "enc.pos_emb.weight", "dec.tok_emb.weight", "ln.weight", "bias"})
    EXPECT_FALSE(adamw_default_decays(name)) << name;
  for (const char* name :
       {"blocks.0.attn.W_Q.weight", "blocks.0.ff.fc1.weight", "head.weight", "dec.head.weight",
        "blocks.0.xattn.W_O.weight", "kiln1.weight", "lnx.weight", "ln_.weight", "biased"})
    EXPECT_TRUE(adamw_default_decays(name)) << name;
}

TEST(AdamW, ZeroGradientStepOnlyDecaysTheDecayedParameters) {
  // With g = 0, m = v = 0 and the Adam part moves nothing: only p ← p(1 − lr·wd) remains.
  const std::vector<std::string> names = {"tok_emb.weight", "blocks.0.ln1.weight",
                                          "blocks.0.attn.W_Q.weight", "blocks.0.attn.W_Q.bias",
                                          "head.weight"};
  auto run = [&](const AdamWOptions& o) {
    OptimParams<float> ps;
    for (const std::string& n : names) ps.emplace_back(n, param({3}));
    for (auto& p : ps) p.second.grad() = Tensor<float>::zeros({3});
    AdamW<float> opt(ps, o);
    opt.step();
    std::vector<bool> changed;
    for (auto& p : ps) changed.push_back(p.second.value()[0] != param({3}).value()[0]);
    return std::make_pair(changed, opt.decays("head.weight"));
  };
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.1;
  auto [changed, head] = run(o);
  EXPECT_EQ(changed, (std::vector<bool>{false, false, true, false, true}));
  EXPECT_TRUE(head);
  o.decays = [](const std::string&) { return true; };  // override: decay everything
  auto [all, head2] = run(o);
  EXPECT_EQ(all, (std::vector<bool>{true, true, true, true, true}));
  EXPECT_TRUE(head2);
}

TEST(Optimizer, SkipsUndefinedGradientsAndRecordsNoGraph) {
  OptimParams<float> ps{{"a", param({2})}, {"b", param({2})}};
  ps[0].second.grad() = Tensor<float>::full({2}, 1.f);
  const std::vector<double> b0 = values(ps[1].second);
  Adam<float> opt(ps);
  opt.step();
  EXPECT_EQ(values(ps[1].second), b0);
  EXPECT_NE(values(ps[0].second), values(param({2})));
  EXPECT_TRUE(ps[0].second.is_leaf());
  EXPECT_TRUE(grad_enabled());
  EXPECT_EQ(opt.steps(), 1);
}

TEST(Optimizer, SetLrAppliesToTheNextStep) {
  OptimParams<float> ps{{"w", param({1})}};
  Sgd<float> opt(ps, {0.1, 0, false, 0});
  ps[0].second.grad() = Tensor<float>::full({1}, 1.f);
  const float p0 = ps[0].second.value()[0];
  opt.set_lr(0.25);
  EXPECT_EQ(opt.lr(), 0.25);
  opt.step();
  EXPECT_FLOAT_EQ(ps[0].second.value()[0], p0 - 0.25f);
  EXPECT_THROW(opt.set_lr(-1), Error);
}

TEST(Optimizer, ZeroGradKeepsBuffers) {
  OptimParams<float> ps{{"w", param({2})}};
  ps[0].second.grad() = Tensor<float>::full({2}, 3.f);
  Sgd<float> opt(ps);
  opt.zero_grad();
  ASSERT_TRUE(ps[0].second.grad().defined());
  EXPECT_EQ(ps[0].second.grad()[1], 0.f);
}

TEST(Optimizer, RejectsDuplicateNamesAndBadHyperParameters) {
  OptimParams<float> ps{{"w", param({2})}, {"w", param({2})}};
  try {
    Adam<float> opt(ps);
    FAIL() << "duplicate names accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "optimizer: parameter name 'w' appears twice");
  }
  OptimParams<float> one{{"w", param({2})}};
  EXPECT_THROW(Adam<float>(one, {0.1, 1.0, 0.999, 1e-8, 0}), Error);
  EXPECT_THROW(Sgd<float>(one, {0.1, 0.0, /*nesterov=*/true, 0}), Error);
  EXPECT_THROW(Sgd<float>(one, {-0.1, 0.0, false, 0}), Error);
}

/// Runs `first` steps on one optimizer, exports, imports into a fresh one over copies of the
/// parameters, then runs both on: they must agree bit for bit.
template <typename Make>
void check_resume(Make make) {
  OptimParams<float> a{{"blocks.0.attn.W_Q.weight", param({3, 2})}, {"head.bias", param({2})}};
  auto opt_a = make(a);
  for (int t = 1; t <= 2; ++t) {
    set_grads(a, t);
    opt_a->step();
  }
  OptimizerState<float> st = opt_a->export_state();
  OptimParams<float> b;
  for (auto& [n, v] : a) b.emplace_back(n, Var<float>(v.value().clone(), true));
  auto opt_b = make(b);
  opt_b->import_state(st);
  EXPECT_EQ(opt_b->steps(), 2);
  EXPECT_EQ(opt_b->hparams(), opt_a->hparams());
  for (auto& [slot, list] : st.slots)
    for (auto& entry : list) entry.second.fill_(123.f);  // the import copied, not aliased
  for (int t = 3; t <= kSteps; ++t) {
    set_grads(a, t);
    set_grads(b, t);
    opt_a->step();
    opt_b->step();
  }
  for (size_t k = 0; k < a.size(); ++k)
    EXPECT_EQ(values(a[k].second), values(b[k].second)) << opt_a->type() << " " << a[k].first;
}

TEST(Optimizer, ExportImportResumesExactly) {
  check_resume([](OptimParams<float> p) {
    return std::make_unique<Sgd<float>>(p, SgdOptions{0.1, 0.9, true, 0.01});
  });
  check_resume([](OptimParams<float> p) {
    return std::make_unique<Adam<float>>(p, AdamOptions{0.01, 0.9, 0.99, 1e-8, 0.0});
  });
  check_resume([](OptimParams<float> p) {
    AdamWOptions o;
    o.weight_decay = 0.3;
    return std::make_unique<AdamW<float>>(p, o);
  });
}

TEST(Optimizer, ExportedStateLayout) {
  OptimParams<float> ps{{"w", param({2, 3})}, {"b.bias", param({3})}};
  AdamW<float> opt(ps);
  OptimizerState<float> st = opt.export_state();
  EXPECT_EQ(st.type, "adamw");
  EXPECT_EQ(st.step, 0);
  EXPECT_EQ(st.hparams["lr"], 1e-3);
  EXPECT_EQ(st.hparams["beta1"], 0.9);
  EXPECT_EQ(st.hparams["beta2"], 0.999);
  EXPECT_EQ(st.hparams["eps"], 1e-8);
  EXPECT_EQ(st.hparams["weight_decay"], 1e-2);
  ASSERT_EQ(st.slots.size(), 2u);
  ASSERT_EQ(st.slots["m"].size(), 2u);
  EXPECT_EQ(st.slots["m"][0].first, "w");
  EXPECT_EQ(st.slots["v"][1].first, "b.bias");
  EXPECT_EQ(st.slots["v"][1].second.shape(), (Shape{3}));
  Sgd<float> sgd(ps, {0.1, 0.9, false, 0});
  EXPECT_EQ(sgd.export_state().slots.count("momentum"), 1u);
  EXPECT_EQ(sgd.export_state().hparams["nesterov"], false);
}

std::string import_error(Optimizer<float>& opt, const OptimizerState<float>& st) {
  try {
    opt.import_state(st);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Optimizer, ImportValidatesWithClearMessages) {
  OptimParams<float> ps{{"w", param({2, 3})}, {"b", param({3})}};
  Adam<float> opt(ps);
  const OptimizerState<float> good = opt.export_state();

  OptimizerState<float> st = good;
  st.type = "sgd";
  EXPECT_EQ(import_error(opt, st), "optimizer state is for 'sgd', but this optimizer is 'adam'");

  st = good;
  st.slots["momentum"] = st.slots["m"];
  EXPECT_EQ(import_error(opt, st),
            "adam optimizer state: unexpected slot 'momentum' (expected: m, v)");

  st = good;
  st.slots.erase("v");
  EXPECT_EQ(import_error(opt, st), "adam optimizer state: slot 'v' is missing");

  st = good;
  st.slots["m"].pop_back();
  EXPECT_EQ(import_error(opt, st), "adam optimizer state: slot 'm' has no entry for parameter 'b'");

  st = good;
  st.slots["m"][0].first = "blocks.9.w";
  EXPECT_EQ(import_error(opt, st),
            "adam optimizer state: slot 'm' holds parameter 'blocks.9.w', which the model does "
            "not have");

  st = good;
  st.slots["v"][0].second = Tensor<float>::zeros({3, 2});
  EXPECT_EQ(import_error(opt, st),
            "adam optimizer state: slot 'v' of 'w' has shape [3, 2], the parameter has [2, 3]");

  st = good;
  st.slots["v"][1].second = Tensor<float>::full({3}, NAN);
  EXPECT_EQ(import_error(opt, st), "adam optimizer state: slot 'v' of 'b' has non-finite values");

  st = good;
  st.hparams["beta2"] = "high";
  EXPECT_EQ(import_error(opt, st), "adam optimizer: 'beta2' must be a number, got \"high\"");

  // A failed import changes nothing.
  st = good;
  st.hparams["lr"] = 0.5;
  st.slots["v"][1].second = Tensor<float>::zeros({4});
  EXPECT_NE(import_error(opt, st), "(no error)");
  EXPECT_EQ(opt.lr(), 1e-3);

  // Unknown extra hyper-parameters are ignored; known ones are restored.
  st = good;
  st.hparams["lr"] = 0.5;
  st.hparams["foreach"] = true;
  st.step = 7;
  EXPECT_EQ(import_error(opt, st), "(no error)");
  EXPECT_EQ(opt.lr(), 0.5);
  EXPECT_EQ(opt.steps(), 7);
}

TEST(Optimizer, SgdImportCanSwitchMomentumOn) {
  OptimParams<float> ps{{"w", param({2})}};
  Sgd<float> src(ps, {0.1, 0.5, false, 0});
  OptimizerState<float> st = src.export_state();
  st.slots["momentum"][0].second.fill_(2.f);
  Sgd<float> dst(ps);  // momentum 0: no slots yet
  dst.import_state(st);
  EXPECT_EQ(dst.options().momentum, 0.5);
  EXPECT_EQ(dst.slot("momentum", "w")[1], 2.f);
}

TEST(MakeOptimizer, BuildsByTypeAndRejectsTypos) {
  OptimParams<float> ps{{"w", param({2})}};
  auto opt = make_optimizer<float>("adamw", ps, {{"lr", 3e-4}, {"betas", {0.8, 0.95}}});
  EXPECT_EQ(opt->type(), "adamw");
  EXPECT_EQ(opt->lr(), 3e-4);
  EXPECT_EQ(opt->hparams()["beta2"], 0.95);
  EXPECT_EQ(opt->hparams()["weight_decay"], 1e-2);
  auto sgd = make_optimizer<float>("sgd", ps, {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}});
  EXPECT_EQ(sgd->hparams()["nesterov"], true);
  // Booleans are true or false, never 0/1 (core/json_reader.h's rule for every config).
  EXPECT_EQ(test::error_of([&] {
              make_optimizer<float>("sgd", ps, {{"nesterov", 1}});
            }),
            "sgd optimizer: 'nesterov' must be true or false, got 1");
  EXPECT_EQ(sgd->slot_names(), std::vector<std::string>{"momentum"});
  try {
    make_optimizer<float>("adamw", ps, {{"weight_decy", 0.1}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "adamw optimizer: unknown hyper-parameter 'weight_decy' (known: amsgrad, beta1, "
                 "beta2, betas, eps, lr, weight_decay)");
  }
  try {
    make_optimizer<float>("rmsprop", ps);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown optimizer 'rmsprop' (valid: sgd, adam, adamw)");
  }
  EXPECT_THROW(make_optimizer<float>("sgd", ps, {{"dampening", 0.1}}), Error);
}

TEST(Optimizer, WorksInFloat64) {
  Tensor<double> t = Tensor<double>::full({2}, 1.0);
  OptimParams<double> ps{{"w", Var<double>(t, true)}};
  ps[0].second.grad() = Tensor<double>::full({2}, 0.5);
  Sgd<double> opt(ps, {0.1, 0, false, 0});
  opt.step();
  EXPECT_DOUBLE_EQ(ps[0].second.value()[0], 0.95);
}

// ---- torch.optim, when /usr/bin/python3 has torch ------------------------------------------

std::string floats(const std::vector<float>& v) {
  std::string s = "[";
  for (float x : v) s += fmt::format("{:.9g},", x);
  return s + "]";
}

TEST(TorchParity, FiveStepsOfSgdNesterovAdamAdamW) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const Shape ws{3, 4}, bs{4};
  const std::string dir = ::testing::TempDir();
  const std::string stem = dir + "qkv_torch_parity_" + std::to_string(getpid());
  // The script: the same initial values and gradients, torch.optim, the final values out.
  std::string py = "import torch\n";
  py += "w0 = " + floats(param(ws).value().to_vector()) + "\n";
  py += "b0 = " + floats(param(bs, 0.3f).value().to_vector()) + "\n";
  py += "gw = []\ngb = []\n";
  for (int t = 1; t <= kSteps; ++t) {
    std::vector<float> gw, gb;
    for (int64_t i = 0; i < ws.numel(); ++i) gw.push_back(grad_value(t, i, 0));
    for (int64_t i = 0; i < bs.numel(); ++i) gb.push_back(grad_value(t, i, 5));
    py += "gw.append(" + floats(gw) + ")\ngb.append(" + floats(gb) + ")\n";
  }
  py += R"(
def run(make):
    w = torch.tensor(w0, dtype=torch.float32).reshape(3, 4).requires_grad_()
    b = torch.tensor(b0, dtype=torch.float32).requires_grad_()
    opt = make(w, b)
    for t in range(5):
        w.grad = torch.tensor(gw[t], dtype=torch.float32).reshape(3, 4)
        b.grad = torch.tensor(gb[t], dtype=torch.float32)
        opt.step()
    return w.detach().flatten().tolist() + b.detach().tolist()
out = []
out += run(lambda w, b: torch.optim.SGD([w, b], lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=0.01))
out += run(lambda w, b: torch.optim.Adam([w, b], lr=0.01, betas=(0.9, 0.99), eps=1e-8,
                                         weight_decay=0.1))
out += run(lambda w, b: torch.optim.AdamW([{'params': [w]}, {'params': [b], 'weight_decay': 0.0}],
                                          lr=0.02, betas=(0.85, 0.995), eps=1e-6,
                                          weight_decay=0.3))
import sys
with open(sys.argv[1], 'w') as f:
    f.write(' '.join(repr(x) for x in out))
)";
  {
    std::ofstream f(stem + ".py");
    f << py;
  }
  const std::string cmd = fmt::format("/usr/bin/python3 {0}.py {0}.out > {0}.log 2>&1", stem);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "python failed; see " << stem << ".log";
  std::vector<double> torch_out;
  {
    std::ifstream f(stem + ".out");
    double x;
    while (f >> x) torch_out.push_back(x);
  }
  ASSERT_EQ(torch_out.size(), 3u * 16u);

  auto run = [&](auto make) {
    OptimParams<float> ps{{"layer.weight", param(ws)}, {"layer.bias", param(bs, 0.3f)}};
    auto opt = make(ps);
    for (int t = 1; t <= kSteps; ++t) {
      set_grads(ps, t);
      opt->step();
    }
    std::vector<double> out = values(ps[0].second), b = values(ps[1].second);
    out.insert(out.end(), b.begin(), b.end());
    return out;
  };
  auto slice = [&](int k) {
    return std::vector<double>(torch_out.begin() + 16 * k, torch_out.begin() + 16 * (k + 1));
  };
  expect_close(run([](OptimParams<float> p) {
                 return std::make_unique<Sgd<float>>(p, SgdOptions{0.05, 0.9, true, 0.01});
               }),
               slice(0), 1e-6, "sgd nesterov vs torch");
  expect_close(run([](OptimParams<float> p) {
                 return std::make_unique<Adam<float>>(p, AdamOptions{0.01, 0.9, 0.99, 1e-8, 0.1});
               }),
               slice(1), 1e-6, "adam vs torch");
  expect_close(run([](OptimParams<float> p) {
                 AdamWOptions o;
                 o.lr = 0.02;
                 o.beta1 = 0.85;
                 o.beta2 = 0.995;
                 o.eps = 1e-6;
                 o.weight_decay = 0.3;  // layer.bias is not decayed by the default rule
                 return std::make_unique<AdamW<float>>(p, o);
               }),
               slice(2), 1e-6, "adamw vs torch");
  std::remove((stem + ".py").c_str());
  std::remove((stem + ".out").c_str());
  std::remove((stem + ".log").c_str());
}

}  // namespace
}  // namespace qkv
