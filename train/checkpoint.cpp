#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/version.h"

namespace qkv {
namespace {

using nlohmann::json;

// ---- shared helpers -------------------------------------------------------------------------

/// "nan at index 5" for the first non-finite value, or "" when all are finite.
std::string first_non_finite(const Tensor<float>& t) {
  if (t.all_finite()) return "";
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = t[i];
    if (!std::isfinite(v))
      return fmt::format("{} at index {}", std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf", i);
  }
  return "";
}

/// Shortens nlohmann's "[json.exception.parse_error.101] parse error at …" to "parse error at …";
/// the bytes it quotes from the file reach a message, which escapes them (Error).
std::string json_reason(const std::exception& e) {
  std::string s = e.what();
  size_t close = s.find("] ");
  return s.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? s.substr(close + 2)
                                                                           : s;
}

/// Lists up to five quoted names, then how many in all.
std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 5) s += fmt::format(", … ({} in all)", names.size());
  return s;
}

std::string folder_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// ---- saving ---------------------------------------------------------------------------------

/// Checks a (name, tensor) list before anything is written; `what` is "parameter" or
/// "optimizer state m of".
void check_tensors(const std::vector<std::pair<std::string, Tensor<float>>>& list,
                   const std::string& what) {
  std::set<std::string> seen;
  for (const auto& [name, t] : list) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      fail("{} name '{}' is not valid (names are dotted paths without '/')", what, name);
    if (!seen.insert(name).second) fail("{} '{}' appears twice", what, name);
    if (!t.defined()) fail("{} '{}' is undefined", what, name);
    std::string bad = first_non_finite(t);
    if (!bad.empty()) fail("{} '{}' holds a non-finite value ({})", what, name, bad);
  }
}

/// One hyper-parameter as an attribute of /optimizer: numbers, bools, strings, arrays of numbers.
void write_hparam(h5::Group& g, const std::string& key, const json& v) {
  if (v.is_boolean()) {
    g.set_bool_attr(key, v.get<bool>());
  } else if (v.is_number_unsigned() || v.is_number_integer()) {
    g.set_int_attr(key, v.get<int64_t>());
  } else if (v.is_number_float()) {
    g.set_float_attr(key, v.get<double>());
  } else if (v.is_string()) {
    g.set_string_attr(key, v.get<std::string>());
  } else if (v.is_array()) {
    bool all_int = true;
    for (const json& x : v) all_int = all_int && (x.is_number_integer() || x.is_number_unsigned());
    if (all_int) {
      g.set_ints_attr(key, v.get<std::vector<int64_t>>());
    } else {
      g.set_floats_attr(key, v.get<std::vector<double>>());
    }
  }
}

/// The JSON texts of a checkpoint, made before anything is written (dump() throws on bad UTF-8).
struct Texts {
  std::string model, train, task, state;
};

void check_hparams(const json& h) {
  if (!h.is_object() && !h.is_null()) fail("optimizer hyper-parameters must be a JSON object");
  if (h.is_null()) return;
  for (const auto& [key, v] : h.items()) {
    if (key == "type" || key == "step")
      fail("optimizer hyper-parameter '{}' clashes with the /optimizer attribute of that name",
           key);
    bool numbers = v.is_array();
    if (numbers)
      for (const json& x : v) numbers = numbers && x.is_number();
    if (!(v.is_boolean() || v.is_number() || v.is_string() || numbers))
      fail(
          "optimizer hyper-parameter '{}' is {}; only numbers, bools, strings and arrays of "
          "numbers can be HDF5 attributes",
          key, v.dump());
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})
      fail("optimizer hyper-parameter '{}' = {} does not fit in int64", key, v.dump());
  }
}

void write_file(h5::File& f, const Checkpoint& c, const Texts& text) {
  f.set_string_attr("format", kCheckpointFormat);
  f.set_int_attr("format_version", kCheckpointFormatVersion);
  f.set_string_attr("qkv_version", QKV_VERSION);

  h5::Group config = f.create_group("config");
  config.set_string_attr("model", text.model);
  config.set_string_attr("train", text.train);
  config.set_string_attr("task", text.task);

  h5::Group model = f.create_group("model");
  for (const auto& [name, t] : c.params) model.write(name, t);

  if (c.optimizer) {
    const OptimizerState<float>& o = *c.optimizer;
    h5::Group g = f.create_group("optimizer");
    g.set_string_attr("type", o.type);
    g.set_int_attr("step", o.step);
    if (o.hparams.is_object())
      for (const auto& [key, v] : o.hparams.items()) write_hparam(g, key, v);
    for (const auto& [slot, list] : o.slots) {
      h5::Group s = g.create_group(slot);
      for (const auto& [name, t] : list) s.write(name, t);
    }
  }

  h5::Group train = f.create_group("train");
  train.set_int_attr("step", c.train.step);
  train.set_int_attr("epoch", c.train.epoch);
  train.set_string_attr("state", text.state);
  if (!c.train.rng.empty()) {
    std::vector<uint64_t> words;
    std::vector<std::string> names;
    for (const auto& [name, state] : c.train.rng) {
      names.push_back(name);
      words.insert(words.end(), state.begin(), state.end());
    }
    train.write_u64("rng", Shape{static_cast<int64_t>(names.size()), 4}, words);
    train.write_strings("rng_names", names);
  }

  if (!c.vocab.empty()) f.write_strings("vocab", c.vocab);
  if (!c.src_vocab.empty()) f.write_strings("src_vocab", c.src_vocab);
}

// ---- loading --------------------------------------------------------------------------------

struct Reader {
  const std::string& path;
  const h5::File& file;

  void check_format() const {
    if (!file.has_attr("format"))
      fail("{}: not a qkv checkpoint (missing attribute 'format')", path);
    h5::Info fi = file.attr_info("format");
    std::string format = fi.dtype == h5::DType::kString && fi.numel() == 1
                             ? "\"" + file.string_attr("format") + "\""
                             : fi.dtype_name + " " + h5::dims_str(fi.dims);
    if (format != fmt::format("\"{}\"", kCheckpointFormat))
      fail("{}: not a qkv checkpoint (attribute 'format' is {}, expected \"{}\")", path, format,
           kCheckpointFormat);
    if (!file.has_attr("format_version"))
      fail("{}: not a qkv checkpoint (missing attribute 'format_version')", path);
    int64_t version = file.int_attr("format_version");
    if (version > kCheckpointFormatVersion)
      fail("{}: written by a newer qkv (format_version {}); this qkv reads version {}", path,
           version, kCheckpointFormatVersion);
    if (version < 1)
      fail("{}: format_version {} is not valid; this qkv reads version {}", path, version,
           kCheckpointFormatVersion);
  }

  /// A JSON-object attribute; absent → {} unless required.
  json json_attr(const h5::Group& g, const std::string& name, bool required) const {
    if (!required && !g.has_attr(name)) return json::object();
    std::string text = g.string_attr(name);
    json j;
    try {
      j = json::parse(text);
    } catch (const std::exception& e) {
      fail("{}: {} attribute '{}' is not valid JSON ({})", path, g.path(), name, json_reason(e));
    }
    if (!j.is_object())
      fail("{}: {} attribute '{}' is not a JSON object (it is {})", path, g.path(), name,
           j.type_name());
    return j;
  }

  /// Reads a float32 dataset of `g`, checking dtype, shape (when given) and finiteness; `what`
  /// names it in messages ("parameter 'x'", "optimizer state /optimizer/m/x").
  Tensor<float> read_checked(const h5::Group& g, const std::string& name, const std::string& what,
                             const Shape* shape, const char* shape_owner) const {
    h5::Info info = g.info(name);
    if (info.dtype != h5::DType::kFloat32)
      fail("{}: {} is {}; qkv checkpoints store float32", path, what, info.dtype_name);
    if (shape && (info.rank() != shape->nd ||
                  !std::equal(info.dims.begin(), info.dims.end(), shape->d.begin())))
      fail("{}: {} has shape {}; {} {}", path, what, h5::dims_str(info.dims), shape_owner,
           shape->str());
    Tensor<float> t = g.read<float>(name);
    std::string bad = first_non_finite(t);
    if (!bad.empty()) fail("{}: {} holds a non-finite value ({})", path, what, bad);
    return t;
  }

  /// The datasets of a group (subgroups are an error: names are dotted, never nested).
  std::vector<std::string> datasets(const h5::Group& g) const {
    std::vector<std::string> names = g.members();
    for (const std::string& n : names)
      if (g.kind(n) != h5::Kind::kDataset)
        fail("{}: {} is not a dataset; parameters are datasets named with dots (e.g. {})", path,
             g.where(n), g.where("blocks.0.ln1.weight"));
    return names;
  }

  void read_model(Checkpoint& c, const ParamShapes* expected) const {
    h5::Group model = file.group("model");
    std::vector<std::string> names = datasets(model);
    if (!expected) {
      for (const std::string& n : names)
        c.params.emplace_back(
            n, read_checked(model, n, "parameter '" + n + "'", nullptr, "the model expects"));
      return;
    }
    std::set<std::string> present(names.begin(), names.end()), wanted;
    std::vector<std::string> missing, unexpected;
    for (const auto& [n, shape] : *expected) {
      wanted.insert(n);
      if (!present.count(n)) missing.push_back("'" + n + "' " + shape.str());
    }
    for (const std::string& n : names)
      if (!wanted.count(n)) unexpected.push_back("'" + n + "'");
    if (missing.size() == 1)
      fail("{}: missing parameter {} in /model", path, missing[0]);
    else if (!missing.empty())
      fail("{}: missing parameters in /model: {}", path, name_list(missing));
    if (unexpected.size() == 1)
      fail("{}: unexpected parameter {} in /model (the model has no such parameter)", path,
           unexpected[0]);
    else if (!unexpected.empty())
      fail("{}: unexpected parameters in /model: {} (the model has no such parameters)", path,
           name_list(unexpected));
    for (const auto& [n, shape] : *expected)
      c.params.emplace_back(
          n, read_checked(model, n, "parameter '" + n + "'", &shape, "the model expects"));
  }

  /// /optimizer attrs other than type and step, back to JSON; unreadable kinds are skipped.
  json read_hparams(const h5::Group& g) const {
    json h = json::object();
    for (const std::string& key : g.attr_names()) {
      if (key == "type" || key == "step") continue;
      h5::Info info = g.attr_info(key);
      bool scalar = info.rank() == 0, vector = info.rank() == 1;
      if (info.dtype == h5::DType::kBool && scalar) {
        h[key] = g.bool_attr(key);
      } else if (info.is_integer() && scalar) {
        h[key] = g.int_attr(key);
      } else if (info.is_float() && scalar) {
        h[key] = g.float_attr(key);
      } else if (info.dtype == h5::DType::kString && info.numel() == 1) {
        h[key] = g.string_attr(key);
      } else if (info.is_integer() && vector) {
        h[key] = g.ints_attr(key);
      } else if (info.is_float() && vector) {
        h[key] = g.floats_attr(key);
      }
    }
    return h;
  }

  void read_optimizer(Checkpoint& c, const ParamShapes* expected) const {
    if (!file.exists("optimizer")) return;
    h5::Group g = file.group("optimizer");
    OptimizerState<float> o;
    o.type = g.string_attr("type");
    o.step = g.int_attr("step");
    o.hparams = read_hparams(g);
    for (const std::string& slot : g.members()) {
      if (g.kind(slot) != h5::Kind::kGroup) continue;  // unknown extras are ignored
      h5::Group s = g.group(slot);
      auto& list = o.slots[slot];
      for (const std::string& n : datasets(s)) {
        std::string what = "optimizer state " + s.where(n);
        const Shape* shape = nullptr;
        if (expected) {
          auto it = std::find_if(expected->begin(), expected->end(),
                                 [&](const auto& e) { return e.first == n; });
          if (it == expected->end())
            fail("{}: {} belongs to no parameter of the model ('{}')", path, what, n);
          shape = &it->second;
        }
        list.emplace_back(n,
                          read_checked(s, n, what, shape, ("parameter '" + n + "' has").c_str()));
      }
    }
    c.optimizer = std::move(o);
  }

  void read_train(Checkpoint& c) const {
    if (!file.exists("train")) return;
    h5::Group g = file.group("train");
    if (g.has_attr("step")) c.train.step = g.int_attr("step");
    if (g.has_attr("epoch")) c.train.epoch = g.int_attr("epoch");
    c.train.extra = json_attr(g, "state", /*required=*/false);
    if (!g.exists("rng")) return;
    Shape shape;
    std::vector<uint64_t> words = g.read_u64("rng", &shape);
    if (shape.nd != 2 || shape[1] != 4)
      fail("{}: /train/rng has shape {}; expected [n, 4] (one xoshiro256** state per row)", path,
           shape);
    std::vector<std::string> names = g.read_strings("rng_names");
    if (static_cast<int64_t>(names.size()) != shape[0])
      fail("{}: /train/rng_names has {} names for the {} states of /train/rng", path, names.size(),
           shape[0]);
    for (size_t i = 0; i < names.size(); ++i) {
      Rng::State s;
      std::copy(words.begin() + static_cast<int64_t>(4 * i),
                words.begin() + static_cast<int64_t>(4 * i + 4), s.begin());
      c.train.rng.emplace_back(names[i], s);
    }
  }
};

/// `model` non-null: the expected parameters are those of the file's own model config, parsed
/// into *model.
Checkpoint load(const std::string& path, const ParamShapes* expected, ModelConfig* model) {
  h5::File file = h5::File::open(path);
  Reader r{path, file};
  r.check_format();
  Checkpoint c;
  c.qkv_version = file.has_attr("qkv_version") ? file.string_attr("qkv_version") : "";
  h5::Group config = file.group("config");
  c.model_config = r.json_attr(config, "model", /*required=*/true);
  c.train_config = r.json_attr(config, "train", /*required=*/false);
  c.task_config = r.json_attr(config, "task", /*required=*/false);
  ParamShapes own;
  if (model) {
    try {
      *model = ModelConfig::from_json(c.model_config);
    } catch (const std::exception& e) {
      fail("{}: /config attribute 'model' does not describe a model ({})", path, e.what());
    }
    own = param_shapes(*model);
    expected = &own;
  }
  r.read_model(c, expected);
  r.read_optimizer(c, expected);
  r.read_train(c);
  if (file.exists("vocab")) c.vocab = file.read_strings("vocab");
  if (file.exists("src_vocab")) c.src_vocab = file.read_strings("src_vocab");
  return c;
}

}  // namespace

const Tensor<float>& Checkpoint::param(const std::string& name) const {
  for (const auto& [n, t] : params)
    if (n == name) return t;
  fail("checkpoint has no parameter '{}'", name);
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const std::string tmp = path + ".tmp";
  const std::string folder = folder_of(path);
  Texts text;
  try {
    check_tensors(ckpt.params, "parameter");
    if (ckpt.optimizer) {
      if (ckpt.optimizer->type.empty()) fail("the optimizer state has no type");
      check_hparams(ckpt.optimizer->hparams);
      for (const auto& [slot, list] : ckpt.optimizer->slots) {
        if (slot.empty() || slot.find('/') != std::string::npos)
          fail("optimizer slot name '{}' is not valid", slot);
        check_tensors(list, "optimizer state " + slot + " of");
      }
    }
    for (const auto& [name, state] : ckpt.train.rng)
      if (name.empty()) fail("an RNG state has an empty name");
    for (auto [name, j] :
         {std::pair{"model", &ckpt.model_config}, std::pair{"train", &ckpt.train_config},
          std::pair{"task", &ckpt.task_config}})
      if (!j->is_object())
        fail("the {} config must be a JSON object, not {}", name, j->type_name());
    if (!ckpt.train.extra.is_object()) fail("the extra train state must be a JSON object");
    text = {ckpt.model_config.dump(), ckpt.train_config.dump(), ckpt.task_config.dump(),
            ckpt.train.extra.dump()};
    struct stat st;
    if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      fail("folder {} does not exist", folder);
  } catch (const std::exception& e) {
    fail("cannot save checkpoint {}: {}", path, e.what());
  }

  try {
    {
      h5::File f = h5::File::create(tmp);
      write_file(f, ckpt, text);
      f.flush();
      f.close();
    }
    commit_file_atomic(tmp, path);  // fsync, rename over path, fsync the folder
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    fail("cannot save checkpoint {}: {}", path, e.what());
  }
}

Checkpoint load_checkpoint(const std::string& path) {
  return load(path, nullptr, nullptr);
}

Checkpoint load_checkpoint(const std::string& path, const ParamShapes& expected) {
  return load(path, &expected, nullptr);
}

Checkpoint load_model_checkpoint(const std::string& path, ModelConfig& config) {
  return load(path, nullptr, &config);
}

}  // namespace qkv
