// qkv grads: one forward and backward pass of a checkpoint's model on a batch file, with dropout
// off, and everything it computed written to HDF5 for outside tools (h5py, numpy, PyTorch):
//
//   /loss                     scalar, in the run's dtype
//   /logits                   encoder [B, n_out]; decoder and seq2seq [B, T, V]
//   /grad/<name>              dL/d(parameter), canonical name and shape, every parameter
//   /attention/<module path>  P [B, H, T, S] of every attention module ("blocks.0.attn", …)
//   attrs                     format = "qkv-grads", dtype, checkpoint, batch, qkv_version
//
// Everything is validated before any arithmetic: the checkpoint (format, config, every parameter's
// presence, dtype, shape and finiteness) and the batch against the model config (shapes, ids in
// the vocabularies, positions inside the sequence). Any problem is one qkv::Error, exit status 2.
// The output is written to OUT.tmp and renamed over OUT, so a reader never sees half a file.
#include <memory>
#include <string>

#include <fmt/core.h>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/version.h"
#include "datasets/batch_io.h"
#include "nn/config.h"
#include "nn/model.h"
#include "train/load.h"

namespace qkv::cli {
namespace {

struct GradsArgs {
  std::string checkpoint, batch, out;
  std::string dtype = "float32";
};

/// What read_batch checks a batch file against: the model's vocabularies and lengths.
BatchSpec spec_of(const ModelConfig& c) {
  BatchSpec s;
  s.arch = arch_name(c.arch);
  s.vocab_size = c.vocab_size;
  s.n_out = c.n_out;
  s.max_len = c.max_len;
  s.src_vocab_size = c.src_vocab_size;
  s.src_max_len = c.src_max_len;
  return s;
}

/// Forward with dropout off and every attention map kept, backward from the loss, then the file:
/// replaced atomically (replace_file_atomic: OUT.tmp, synced, renamed over OUT).
template <typename T>
void run(Model<T>& model, const Batch& batch, const GradsArgs& a) {
  ForwardResult<T> r = model.forward(batch, /*keep_attention=*/true);
  QKV_CHECK(r.loss.defined(), "{}: the batch has no targets, so there is no loss", a.batch);
  r.loss.backward();

  replace_file_atomic(a.out, [&](const std::string& tmp) {
    h5::File f = h5::File::create(tmp);
    f.set_string_attr("format", "qkv-grads");
    f.set_string_attr("dtype", a.dtype);
    f.set_string_attr("checkpoint", a.checkpoint);
    f.set_string_attr("batch", a.batch);
    f.set_string_attr("qkv_version", QKV_VERSION);
    f.write("loss", Tensor<T>::scalar(r.loss.item()));
    f.write("logits", r.logits.value());
    for (const auto& [name, p] : model.named_parameters()) {
      // A parameter the loss does not reach (none in these models) has a zero gradient.
      f.write("grad/" + name, p.grad().defined() ? p.grad() : Tensor<T>::zeros(p.shape()));
    }
    for (const AttentionMap<T>& m : r.attention) f.write("attention/" + m.path, m.P);
    f.flush();
    f.close();
  });
}

void grads(const GradsArgs& a) {
  std::unique_ptr<Model<float>> model = load_model(a.checkpoint).model;
  const Batch batch = read_batch(a.batch, spec_of(model->config()));
  if (a.dtype == "float64") {
    Model<double> model64 = convert_model<double>(*model);
    run(model64, batch, a);
  } else {
    run(*model, batch, a);
  }
  fmt::print("wrote {} ({}): loss, logits, gradients of every parameter, attention maps\n", a.out,
             a.dtype);
}

}  // namespace

void add_grads(CLI::App& app) {
  auto args = std::make_shared<GradsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "grads",
      "One forward and backward pass of a checkpoint's model on a batch file (dropout off): "
      "writes the loss, logits, every parameter's gradient and every attention map to HDF5.");
  cmd->add_option("--checkpoint", args->checkpoint, "qkv checkpoint (HDF5)")->required();
  cmd->add_option("--batch", args->batch,
                  "Batch file (HDF5: /tokens, /targets, /positions, /mask, /src, /src_mask)")
      ->required();
  cmd->add_option("--out", args->out, "Output file (HDF5), written atomically")->required();
  cmd->add_option("--dtype", args->dtype,
                  "float32 (as trained) or float64 (the model converted, for comparisons)")
      ->check(CLI::IsMember({"float32", "float64"}))
      ->capture_default_str();
  cmd->callback([args] {
    try {
      grads(*args);
    } catch (const Error&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      // Anything else a library throws still becomes one line and exit status 2.
      fail("grads: {}", e.what());
    }
  });
}

}  // namespace qkv::cli
