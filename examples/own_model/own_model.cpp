// A model of your own: a two-layer perceptron built from qkv::Module and the autograd ops,
// trained with AdamW to tell points inside the unit circle from points outside, saved as a qkv
// checkpoint, loaded into a fresh model, and evaluated again.
#include <qkv/qkv.h>

#include <cstdio>

using namespace qkv;

// logits = W2·tanh(fc1(x)) + b2: x [N, 2] → [N, 2]. Parameters registered by name come back from
// named_parameters() as "fc1.weight", "fc1.bias", "W2", "b2", the names the checkpoint stores.
class CircleNet : public Module<float> {
 public:
  explicit CircleNet(int64_t hidden) {
    fc1 = &register_module("fc1", std::make_unique<Linear<float>>(2, hidden));
    W2 = register_parameter("W2", Tensor<float>::zeros({2, hidden}));
    b2 = register_parameter("b2", Tensor<float>::zeros({2}));
  }
  Var<float> forward(const Var<float>& x) const { return linear(tanh(fc1->forward(x)), W2, b2); }

  Linear<float>* fc1;
  Var<float> W2, b2;
};

// n points uniform in [-2, 2]², class 1 inside the unit circle (about 20 % of them).
void make_data(Rng& rng, int64_t n, Tensor<float>& x, IndexTensor& y) {
  x = Tensor<float>::zeros({n, 2});
  y = IndexTensor(Shape{n});
  for (int64_t i = 0; i < n; ++i) {
    const double a = rng.uniform(-2, 2), b = rng.uniform(-2, 2);
    x[2 * i] = float(a), x[2 * i + 1] = float(b), y[i] = a * a + b * b < 1.0;
  }
}

double accuracy(const CircleNet& model, const Tensor<float>& x, const IndexTensor& y) {
  NoGradGuard no_grad;  // evaluation records no graph
  const Tensor<float> logits = model.forward(Var<float>(x)).value();
  int64_t right = 0;
  for (int64_t i = 0; i < y.numel(); ++i) right += (logits[2 * i + 1] > logits[2 * i]) == y[i];
  return double(right) / double(y.numel());
}

int main() {
  Rng rng(0);
  Tensor<float> x_train, x_test;
  IndexTensor y_train, y_test;
  make_data(rng, 2000, x_train, y_train);
  make_data(rng, 1000, x_test, y_test);
  CircleNet model(16);
  // Layers start with all-zero weights (docs/model.md, "Initialisation"): draw our own.
  for (auto& [name, p] : model.named_parameters())
    if (p.dim() == 2)
      for (float& v : p.value()) v = float(rng.normal(0.0, 0.5));

  AdamWOptions options;
  options.lr = 0.02;  // weight decay: AdamW's default 0.01
  AdamW<float> opt(model.named_parameters(), options);
  const Var<float> x(x_train);
  for (int step = 1; step <= 400; ++step) {
    opt.zero_grad();
    Var<float> loss = cross_entropy(model.forward(x), y_train);
    loss.backward();
    opt.step();
    if (step % 100 == 0) std::printf("step %d  loss %.4f\n", step, double(loss.value().item()));
  }

  Checkpoint ckpt;  // any JSON object may stand in the model config of a model of your own
  ckpt.model_config = {{"model", "CircleNet"}, {"hidden", 16}};
  ckpt.params = model.export_parameters();
  save_checkpoint("circle.h5", ckpt);
  CircleNet loaded(16);  // all zeros until the checkpoint is loaded
  ParamShapes expected;
  for (const auto& [name, p] : loaded.named_parameters()) expected.emplace_back(name, p.shape());
  loaded.load_parameters(load_checkpoint("circle.h5", expected).params);

  const double trained = accuracy(model, x_test, y_test);
  const double reloaded = accuracy(loaded, x_test, y_test);
  std::printf("test accuracy: trained %.3f, reloaded from circle.h5 %.3f\n", trained, reloaded);
  return trained == reloaded && reloaded > 0.95 ? 0 : 1;
}
