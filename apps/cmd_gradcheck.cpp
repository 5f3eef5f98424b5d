// qkv gradcheck: finite-difference checks, in float64, of the attention op under every mask kind
// and of every parameter of small random models (W_Q, W_K, W_V, W_O, LayerNorms, FF, embeddings,
// head). Prints a table per check and exits 1 on any failure.
#include <fmt/core.h>

#include "apps/commands.h"
#include "apps/model_gradcheck.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace qkv::cli {
namespace {

struct GradcheckArgs {
  std::string arch = "all";
  std::string config;
  uint64_t seed = 0;
  double eps = 1e-6, atol = 1e-5, rtol = 1e-3;
};

Var<double> randn(const Shape& shape, Rng& rng) {
  Tensor<double> t = Tensor<double>::empty(shape);
  for (double& x : t) x = rng.normal();
  return Var<double>(t, true);
}

/// The attention op with each kind of mask: Q, K and V checked element by element.
bool check_attention(const GradcheckArgs& a, const GradcheckOptions& o) {
  const int64_t B = 2, H = 2, T = 4, S = 5, d = 3;
  struct Case {
    const char* name;
    int64_t s;
    AttnMask mask;
  };
  std::vector<Case> cases;
  cases.push_back({"no mask", S, {}});
  {
    AttnMask m;
    m.causal = true;
    cases.push_back({"causal", T, m});
  }
  {
    AttnMask m;
    m.key_padding = BoolTensor({B, S}, {1, 1, 1, 0, 0, 1, 1, 1, 1, 1});
    cases.push_back({"padding (keys 3, 4 of example 0 hidden)", S, m});
  }
  {
    AttnMask m;
    m.allowed = BoolTensor({T, S});
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < S; ++j) m.allowed[i * S + j] = (i + j) % 3 != 0;
    cases.push_back({"arbitrary boolean [T, S]", S, m});
  }
  {
    AttnMask m;
    m.allowed = BoolTensor({T, S}, 1);
    for (int64_t j = 0; j < S; ++j) m.allowed[1 * S + j] = 0;
    cases.push_back({"query row 1 fully masked (zeros, zero gradient)", S, m});
  }
  bool ok = true;
  Rng rng(a.seed);
  for (const Case& c : cases) {
    Var<double> Q = randn({B, H, T, d}, rng), K = randn({B, H, c.s, d}, rng),
                V = randn({B, H, c.s, d}, rng);
    GradcheckReport r = gradcheck([&] { return scaled_dot_product_attention(Q, K, V, c.mask); },
                                  {{"Q", Q}, {"K", K}, {"V", V}}, o);
    fmt::print("attention, {}:\n{}\n", c.name, r.table());
    ok = ok && r.ok;
  }
  return ok;
}

}  // namespace

void add_gradcheck(CLI::App& app) {
  auto args = std::make_shared<GradcheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "gradcheck",
      "Finite-difference check (float64, central differences) of the attention op with each mask "
      "kind and of every parameter of small random models; exits 1 on any failure.");
  cmd->add_option("--arch", args->arch, "Models to check: encoder, decoder, seq2seq, all or none")
      ->check(CLI::IsMember({"encoder", "decoder", "seq2seq", "all", "none"}))
      ->capture_default_str();
  cmd->add_option("--config", args->config,
                  "Model config JSON (the keys of docs/model.md) to check instead of the small default")
      ->check(CLI::ExistingFile);
  cmd->add_option("--seed", args->seed, "Seed for inputs and initial parameters")
      ->capture_default_str();
  cmd->add_option("--eps", args->eps, "Finite-difference step")->capture_default_str();
  cmd->add_option("--atol", args->atol, "Absolute tolerance")->capture_default_str();
  cmd->add_option("--rtol", args->rtol, "Relative tolerance")->capture_default_str();
  cmd->callback([args] {
    GradcheckOptions o;
    o.eps = args->eps;
    o.atol = args->atol;
    o.rtol = args->rtol;
    o.seed = args->seed;
    fmt::print(
        "gradcheck: float64, central differences, eps {:g}, pass when |analytic − "
        "numeric| ≤ {:g} + {:g}·|numeric|\n\n",
        o.eps, o.atol, o.rtol);
    bool ok = check_attention(*args, o);
    if (args->arch != "none") ok = check_models(args->arch, args->config, o) && ok;
    fmt::print("{}\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
    if (!ok) throw Exit{1};
  });
}

}  // namespace qkv::cli
