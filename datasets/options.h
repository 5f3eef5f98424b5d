// TaskOptions: reads a task's options JSON with defaults, range checks and core/json_reader.h's
// type rule, refusing keys the task does not know. Used by the task constructors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qkv {

class TaskOptions {
 public:
  /// `task` names the task in messages; j must be an object or null.
  TaskOptions(std::string task, const nlohmann::json& j);

  /// An integer option in [lo, hi] (default when absent or null).
  int64_t integer(const std::string& key, int64_t def, int64_t lo, int64_t hi);
  /// A number option in [lo, hi].
  double number(const std::string& key, double def, double lo, double hi);
  /// A string option ("" = absent when def is "").
  std::string string(const std::string& key, const std::string& def);
  /// A list-of-strings option (empty when absent or null; resolved as null when empty).
  std::vector<std::string> strings(const std::string& key);
  /// The "seed" option (a non-negative integer, default 0).
  uint64_t seed() { return static_cast<uint64_t>(integer("seed", 0, 0, INT64_MAX)); }

  /// Throws qkv::Error when j has a key none of the calls above asked for, listing the accepted
  /// keys.
  void finish() const;
  /// Every key asked for, with the value used: make_task(task, resolved()) builds the same task.
  const nlohmann::json& resolved() const { return resolved_; }

 private:
  const nlohmann::json* find(const std::string& key);

  std::string task_;
  nlohmann::json given_;
  nlohmann::json resolved_ = nlohmann::json::object();
  std::vector<std::string> asked_;
};

}  // namespace qkv
