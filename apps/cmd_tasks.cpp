// qkv tasks: every registered task on one line: its name, architecture, default model and what it
// is, then its options with their defaults.
#include <fmt/core.h>

#include "apps/commands.h"
#include "datasets/task.h"

namespace qkv::cli {
namespace {

/// An option's value as a person reads it: strings bare, null as "none".
std::string shown(const nlohmann::json& v) {
  if (v.is_null()) return "none";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

/// "key=value, …" of an options object.
std::string options_text(const nlohmann::json& options) {
  std::string out;
  for (auto it = options.begin(); it != options.end(); ++it)
    out += fmt::format("{}{}={}", out.empty() ? "" : ", ", it.key(), shown(*it));
  return out;
}

}  // namespace

/// One line per task (the format of `qkv tasks`).
std::string task_lines() {
  std::string out;
  for (const TaskInfo& info : registered_tasks()) {
    nlohmann::json model, options;
    std::string arch;
    if (info.describe.is_null()) {
      const std::unique_ptr<Task> task = make_task(info.name);
      arch = arch_name(task->arch());
      model = task->default_model_config();
      options = task->options();
    } else {
      arch = info.describe.at("arch").get<std::string>();
      model = info.describe.at("model");
      options = info.describe.at("options");
    }
    if (options.contains("data") && options["data"].is_null() && !info.describe.is_null())
      options["data"] = "FILE (required)";
    const int64_t layers = model.at("n_layers").get<int64_t>();
    const std::string sizes =
        fmt::format("d_model {}, {} layer{}, {} heads", model.at("d_model").dump(), layers,
                    layers == 1 ? "" : "s", model.at("n_heads").dump());
    out += fmt::format("{:<9} {:<8} {:<31} {} | options: {}\n", info.name, arch, sizes,
                       info.summary, options_text(options));
  }
  return out;
}

void add_tasks(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "tasks",
      "List every task: its architecture, its default model, what it learns, and its options "
      "with their defaults (give them in a --config file's \"task\" object; --data sets "
      "\"data\").");
  cmd->callback([] { fmt::print("{}", task_lines()); });
}

}  // namespace qkv::cli
