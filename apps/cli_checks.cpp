#include "apps/cli_checks.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>

#include <fmt/core.h>

#include "datasets/vocab.h"

namespace qkv::cli {
namespace {

/// `s` as a whole integer (no trailing characters, within int64), or false.
bool parse_integer(const std::string& s, long long& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  v = std::strtoll(s.c_str(), &end, 10);
  return errno == 0 && end == s.c_str() + s.size();
}

/// `s` as a whole finite number, or false.
bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  v = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size() && std::isfinite(v);
}

/// The value as the user typed it: numbers bare, anything else quoted.
std::string shown(const std::string& s) {
  double v = 0;
  return parse_number(s, v) ? s : "'" + s + "'";
}

/// A validator whose message is "must be <what>, got <value>" ("--steps" is put in front by
/// parse_error_message()).
CLI::Validator integer_check(const std::string& help, const std::string& what,
                             std::function<bool(long long)> ok) {
  return CLI::Validator(
      [what, ok](std::string& s) {
        long long v = 0;
        return parse_integer(s, v) && ok(v) ? std::string()
                                            : fmt::format("must be {}, got {}", what, shown(s));
      },
      help);
}

CLI::Validator number_check(const std::string& help, const std::string& what,
                            std::function<bool(double)> ok) {
  return CLI::Validator(
      [what, ok](std::string& s) {
        double v = 0;
        return parse_number(s, v) && ok(v) ? std::string()
                                           : fmt::format("must be {}, got {}", what, shown(s));
      },
      help);
}

}  // namespace

CLI::Validator positive_integer() {
  return integer_check("POSITIVE", "a positive integer", [](long long v) { return v > 0; });
}

CLI::Validator non_negative_integer() {
  return integer_check("NON-NEGATIVE", "an integer >= 0", [](long long v) { return v >= 0; });
}

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return integer_check(fmt::format("{} TO {}", lo, hi),
                       fmt::format("an integer from {} to {}", lo, hi),
                       [lo, hi](long long v) { return v >= lo && v <= hi; });
}

CLI::Validator positive_number() {
  return number_check("POSITIVE", "a positive number", [](double v) { return v > 0; });
}

CLI::Validator non_negative_number() {
  return number_check("NON-NEGATIVE", "a number >= 0", [](double v) { return v >= 0; });
}

CLI::Validator number_in(double lo, double hi, bool open_hi) {
  const std::string range = fmt::format("[{}, {}{}", lo, hi, open_hi ? ")" : "]");
  return number_check(range, "a number in " + range, [lo, hi, open_hi](double v) {
    return v >= lo && (open_hi ? v < hi : v <= hi);
  });
}

void check_numbers(CLI::App& app) {
  for (CLI::Option* o : app.get_options()) {
    const std::string type = o->get_type_name();
    if (type.rfind("INT", 0) == 0)
      o->check(integer_check("", "an integer", [](long long) { return true; }));
    else if (type.rfind("UINT", 0) == 0)
      o->check(non_negative_integer().description(""));
    else if (type.rfind("FLOAT", 0) == 0)
      o->check(number_check("", "a number", [](double) { return true; }));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) check_numbers(*sub);
}

std::string closest(const std::string& given, const std::vector<std::string>& candidates) {
  std::string best;
  int best_d = 0;
  for (const std::string& c : candidates) {
    const int d = edit_distance(given, c);
    if (best.empty() || d < best_d) best = c, best_d = d;
  }
  const size_t longer = std::max(given.size(), best.size());
  return !best.empty() && best_d > 0 && 3 * static_cast<size_t>(best_d) <= longer ? best : "";
}

namespace {

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

std::vector<std::string> flag_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const std::string& l : o->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : o->get_snames()) names.push_back("-" + s);
  }
  return names;
}

/// "; did you mean 'X'?" or, with nothing close, "; expected one of: a, b, c".
std::string hint(const std::string& given, const std::vector<std::string>& known, bool list) {
  const std::string c = closest(given, known);
  if (!c.empty()) return fmt::format("; did you mean '{}'?", c);
  if (!list) return "";
  std::string all;
  for (const std::string& k : known) all += (all.empty() ? "" : ", ") + k;
  return "; the commands are: " + all;
}

/// The first --flag in `args` that `scope` does not know, or "". Values that are numbers
/// ("-5") and everything after "--" are not flags.
std::string unknown_flag(const CLI::App& scope, const std::vector<std::string>& args, size_t from) {
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    double v = 0;
    if (a.size() < 2 || a[0] != '-' || parse_number(a, v)) continue;
    const std::string name = a.substr(0, a.find('='));
    if (name == "--help" || name == "-h") continue;
    if (scope.get_option_no_throw(name) == nullptr) return name;
  }
  return "";
}

}  // namespace

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e,
                                const std::vector<std::string>& args) {
  const std::string prog = app.get_name();
  if (args.empty() || args[0].empty())
    return fmt::format("a command is required{}", hint("", command_names(app), true));
  if (args[0][0] != '-') {
    const CLI::App* sub = nullptr;
    for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; }))
      if (s->check_name(args[0])) sub = s;
    if (sub == nullptr)
      return fmt::format("unknown command '{}'{}", args[0],
                         hint(args[0], command_names(app), true));
    const std::string flag = unknown_flag(*sub, args, 1);
    if (!flag.empty())
      return fmt::format("unknown option '{}' for '{} {}'{}", flag, prog, sub->get_name(),
                         hint(flag, flag_names(*sub), false));
  } else {
    const std::string flag = unknown_flag(app, args, 0);
    if (!flag.empty())
      return fmt::format("unknown option '{}'{}", flag, hint(flag, flag_names(app), false));
  }
  // A validator's "NAME: must be …" reads as one sentence.
  std::string msg = e.what();
  const size_t at = msg.find(": must be ");
  if (at != std::string::npos) msg.erase(at, 1);
  return msg;
}

}  // namespace qkv::cli
