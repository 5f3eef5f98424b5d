#include "datasets/options.h"

#include <algorithm>

#include "core/error.h"
#include "core/json_reader.h"

namespace qkv {

TaskOptions::TaskOptions(std::string task, const nlohmann::json& j) : task_(std::move(task)) {
  QKV_CHECK(j.is_null() || j.is_object(), "{}: options must be a JSON object, got {}", task_,
            j.dump());
  given_ = j.is_null() ? nlohmann::json::object() : j;
}

const nlohmann::json* TaskOptions::find(const std::string& key) {
  asked_.push_back(key);
  auto it = given_.find(key);
  if (it == given_.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t TaskOptions::integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  int64_t v = def;
  if (find(key)) JsonReader(task_, given_, "option").integer(key, v);
  QKV_CHECK(v >= lo && v <= hi, "{}: option '{}' = {} is out of range [{}, {}]", task_, key, v, lo,
            hi);
  resolved_[key] = v;
  return v;
}

double TaskOptions::number(const std::string& key, double def, double lo, double hi) {
  double v = def;
  if (find(key)) JsonReader(task_, given_, "option").number(key, v);
  QKV_CHECK(v >= lo && v <= hi, "{}: option '{}' = {} is out of range [{}, {}]", task_, key, v, lo,
            hi);
  resolved_[key] = v;
  return v;
}

std::string TaskOptions::string(const std::string& key, const std::string& def) {
  std::string v = def;
  if (find(key)) JsonReader(task_, given_, "option").string(key, v);
  resolved_[key] = v.empty() ? nlohmann::json(nullptr) : nlohmann::json(v);
  return v;
}

std::vector<std::string> TaskOptions::strings(const std::string& key) {
  std::vector<std::string> v;
  if (const nlohmann::json* j = find(key)) {
    bool ok = j->is_array();
    for (size_t i = 0; ok && i < j->size(); ++i) ok = (*j)[i].is_string();
    QKV_CHECK(ok, "{}: option '{}' must be a list of strings, got {}", task_, key, j->dump());
    v = j->get<std::vector<std::string>>();
  }
  resolved_[key] = v.empty() ? nlohmann::json(nullptr) : nlohmann::json(v);
  return v;
}

void TaskOptions::finish() const {
  for (auto it = given_.begin(); it != given_.end(); ++it) {
    if (std::find(asked_.begin(), asked_.end(), it.key()) != asked_.end()) continue;
    std::vector<std::string> known = asked_;
    std::sort(known.begin(), known.end());
    known.erase(std::unique(known.begin(), known.end()), known.end());
    std::string list;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    fail("{}: unknown option '{}' (known options: {})", task_, it.key(), list);
  }
}

}  // namespace qkv
