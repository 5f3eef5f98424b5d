// Module: registration, dotted names, modes, loading and exporting parameters.
#include <memory>

#include "nn/layers.h"
#include "nn/module.h"
#include "nn_test_util.h"

namespace qkv {
namespace {

using testing::error_of;

/// root { w [2]; blocks { 0 { lin: Linear(3 → 2) }, 1 { lin } }; v [1] }
std::unique_ptr<Module<double>> small_tree() {
  auto root = std::make_unique<Module<double>>();
  root->register_parameter("w", Tensor<double>::from({2}, {1, 2}));
  auto& blocks = root->register_module("blocks", std::make_unique<Module<double>>());
  for (const char* i : {"0", "1"}) {
    auto& b = blocks.register_module(i, std::make_unique<Module<double>>());
    b.register_module("lin", std::make_unique<Linear<double>>(3, 2));
  }
  root->register_parameter("v", Tensor<double>::from({1}, {5}));
  return root;
}

TEST(Module, NamedParametersAreDottedInRegistrationOrder) {
  auto root = small_tree();
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (auto& [name, p] : root->named_parameters()) {
    names.push_back(name);
    shapes.push_back(p.shape());
    EXPECT_TRUE(p.requires_grad()) << name;
    EXPECT_TRUE(p.is_leaf()) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"w", "blocks.0.lin.weight", "blocks.0.lin.bias",
                                             "blocks.1.lin.weight", "blocks.1.lin.bias", "v"}));
  EXPECT_EQ(shapes[1], (Shape{2, 3}));
  EXPECT_EQ(shapes[2], (Shape{2}));
  EXPECT_EQ(root->num_parameters(), 2 + 2 * (6 + 2) + 1);
}

TEST(Module, PathsFollowTheTree) {
  auto root = small_tree();
  std::vector<std::string> paths;
  for (auto& [rel, m] : root->named_modules()) {
    paths.push_back(rel);
    EXPECT_EQ(m->path(), rel);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"blocks", "blocks.0", "blocks.0.lin", "blocks.1",
                                             "blocks.1.lin"}));
  EXPECT_EQ(root->path(), "");
}

TEST(Module, ParameterLookupByName) {
  auto root = small_tree();
  EXPECT_EQ(root->parameter("blocks.1.lin.weight").shape(), (Shape{2, 3}));
  EXPECT_EQ(root->parameter("v").item(), 5.0);
  EXPECT_EQ(error_of([&] { root->parameter("blocks.2.lin.weight"); }),
            "Module '(root)': no parameter named 'blocks.2.lin.weight'");
}

TEST(Module, RegisteredValueIsCopied) {
  Tensor<double> t = Tensor<double>::from({2}, {1, 2});
  Module<double> m;
  Var<double> p = m.register_parameter("p", t);
  t[0] = 100;
  EXPECT_EQ(p.value()[0], 1.0);
}

TEST(Module, RegistrationErrorsNameModuleAndName) {
  auto root = small_tree();
  EXPECT_EQ(error_of([&] { root->register_parameter("w", Tensor<double>({1})); }),
            "Module '(root)': cannot register parameter 'w': the name is already taken by a "
            "parameter");
  EXPECT_EQ(error_of([&] { root->register_module("w", std::make_unique<Module<double>>()); }),
            "Module '(root)': cannot register submodule 'w': the name is already taken by a "
            "parameter");
  EXPECT_EQ(error_of([&] { root->register_parameter("blocks", Tensor<double>({1})); }),
            "Module '(root)': cannot register parameter 'blocks': the name is already taken by a "
            "submodule");
  Module<double>& b0 = *root->named_modules()[1].second;  // blocks.0
  EXPECT_EQ(error_of([&] { b0.register_parameter("a.b", Tensor<double>({1})); }),
            "Module 'blocks.0': cannot register parameter 'a.b': names must not contain '.'");
  EXPECT_EQ(error_of([&] { b0.register_parameter("", Tensor<double>({1})); }),
            "Module 'blocks.0': cannot register a parameter with an empty name");
  EXPECT_EQ(error_of([&] { b0.register_module("lin", std::make_unique<Module<double>>()); }),
            "Module 'blocks.0': cannot register submodule 'lin': the name is already taken by a "
            "submodule");
  EXPECT_EQ(error_of([&] { b0.register_module("x.y", std::make_unique<Module<double>>()); }),
            "Module 'blocks.0': cannot register submodule 'x.y': names must not contain '.'");
}

TEST(Module, TrainAndEvalAreRecursive) {
  auto root = small_tree();
  EXPECT_TRUE(root->training());
  root->eval();
  EXPECT_FALSE(root->training());
  for (auto& [rel, m] : root->named_modules()) EXPECT_FALSE(m->training()) << rel;
  root->train();
  for (auto& [rel, m] : root->named_modules()) EXPECT_TRUE(m->training()) << rel;
  // A module registered into an evaluating parent evaluates too.
  root->eval();
  auto& late = root->register_module("late", std::make_unique<Module<double>>());
  EXPECT_FALSE(late.training());
}

TEST(Module, ZeroGradZeroesEveryGradient) {
  auto root = small_tree();
  Var<double> loss = sum(root->parameter("w") * root->parameter("w"));
  loss.backward();
  EXPECT_EQ(root->parameter("w").grad()[1], 4.0);
  root->zero_grad();
  EXPECT_EQ(root->parameter("w").grad()[0], 0.0);
  EXPECT_EQ(root->parameter("w").grad()[1], 0.0);
}

TEST(Module, ExportThenLoadRoundTrips) {
  auto a = small_tree();
  auto b = small_tree();
  Rng rng(1);
  for (auto& [name, p] : a->named_parameters())
    for (double& x : p.value()) x = rng.normal();
  const Var<double> held = b->parameter("blocks.0.lin.weight");  // as an optimizer would hold it
  b->load_parameters(a->export_parameters());
  for (auto& [name, p] : b->named_parameters()) {
    const Tensor<double>& src = a->parameter(name).value();
    for (int64_t i = 0; i < p.numel(); ++i)
      EXPECT_EQ(p.value()[i], static_cast<double>(static_cast<float>(src[i]))) << name;
  }
  EXPECT_EQ(held.value()[0], b->parameter("blocks.0.lin.weight").value()[0]);  // loaded in place
}

TEST(Module, LoadRefusesMismatchesBeforeChangingAnything) {
  auto m = small_tree();
  auto params = m->export_parameters();
  const double before = m->parameter("w").value()[0];
  params[0].second = Tensor<float>::full({2}, 9.0f);

  auto missing = params;
  missing.erase(missing.begin() + 2);
  EXPECT_EQ(error_of([&] { m->load_parameters(missing); }),
            "load_parameters: missing parameter 'blocks.0.lin.bias' (shape [2])");

  auto unexpected = params;
  unexpected.emplace_back("blocks.0.lin.scale", Tensor<float>({2}));
  EXPECT_EQ(error_of([&] { m->load_parameters(unexpected); }),
            "load_parameters: unexpected parameter 'blocks.0.lin.scale' (the model has no "
            "parameter of that name)");

  auto wrong = params;
  wrong[1].second = Tensor<float>({3, 2});
  EXPECT_EQ(error_of([&] { m->load_parameters(wrong); }),
            "load_parameters: parameter 'blocks.0.lin.weight' has shape [3, 2], the model "
            "expects [2, 3]");

  auto twice = params;
  twice.push_back(params[5]);
  EXPECT_EQ(error_of([&] { m->load_parameters(twice); }),
            "load_parameters: parameter 'v' is given twice");

  EXPECT_EQ(m->parameter("w").value()[0], before);  // nothing was loaded
}

TEST(Module, CopyParametersFromFloatToDouble) {
  Module<float> f;
  f.register_module("lin", std::make_unique<Linear<float>>(2, 2));
  f.parameter("lin.weight").value()[3] = 0.1f;
  Module<double> d;
  d.register_module("lin", std::make_unique<Linear<double>>(2, 2));
  d.copy_parameters_from(f);
  EXPECT_EQ(d.parameter("lin.weight").value()[3], static_cast<double>(0.1f));
  Module<double> other;
  other.register_module("lin", std::make_unique<Linear<double>>(2, 3));
  EXPECT_EQ(error_of([&] { other.copy_parameters_from(f); }),
            "load_parameters: parameter 'lin.weight' has shape [2, 2], the model expects [3, 2]");
}

}  // namespace
}  // namespace qkv
