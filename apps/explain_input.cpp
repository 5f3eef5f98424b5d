// qkv explain's input: the built-in example, or a --vectors file read by its JSON schema.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/explain.h"
#include "core/error.h"
#include "core/json_reader.h"

namespace qkv::cli {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using json = nlohmann::json;

MatrixXd rows_of(std::initializer_list<std::initializer_list<double>> rows) {
  MatrixXd m(static_cast<Eigen::Index>(rows.size()),
             static_cast<Eigen::Index>(rows.begin()->size()));
  Eigen::Index i = 0;
  for (const auto& r : rows) {
    Eigen::Index j = 0;
    for (double v : r) m(i, j++) = v;
    ++i;
  }
  return m;
}

VectorXd vec_of(std::initializer_list<double> values) {
  VectorXd v(static_cast<Eigen::Index>(values.size()));
  Eigen::Index i = 0;
  for (double x : values) v(i++) = x;
  return v;
}

// ---- the --vectors schema ---------------------------------------------------------------------

struct Parser {
  const std::string& source;

  [[noreturn]] void bad(const std::string& what) const { fail("{}: {}", source, what); }

  VectorXd numbers(const json& j, const std::string& what) const {
    if (!j.is_array() || j.empty()) bad(what + " must be a non-empty array of numbers");
    VectorXd v(static_cast<Eigen::Index>(j.size()));
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_number()) bad(fmt::format("{}[{}] is not a number", what, i));
      v(static_cast<Eigen::Index>(i)) = j[i].get<double>();
      if (!std::isfinite(v(static_cast<Eigen::Index>(i))))
        bad(fmt::format("{}[{}] is not finite", what, i));
    }
    return v;
  }

  MatrixXd matrix(const json& doc, const char* key, Eigen::Index d) const {
    if (!doc.contains(key))
      bad(fmt::format("missing '{}' (a list of rows, each {} numbers: {} · x)", key, d, key));
    const json& j = doc[key];
    if (!j.is_array() || j.empty()) bad(fmt::format("'{}' must be a non-empty list of rows", key));
    MatrixXd m(static_cast<Eigen::Index>(j.size()), d);
    for (size_t i = 0; i < j.size(); ++i) {
      const VectorXd r = numbers(j[i], fmt::format("'{}' row {}", key, i));
      if (r.size() != d)
        bad(
            fmt::format("'{}' row {} has {} numbers but the x vectors have {} ({} is [rows, d] "
                        "and multiplies x)",
                        key, i, r.size(), d, key));
      m.row(static_cast<Eigen::Index>(i)) = r;
    }
    return m;
  }

  ExplainWord word(const json& j, const std::string& what, Eigen::Index d) const {
    if (!j.is_object() || !j.contains("word") || !j["word"].is_string() || !j.contains("x"))
      bad(what + " must be an object {\"word\": \"...\", \"x\": [numbers]}");
    ExplainWord w{j["word"].get<std::string>(), numbers(j["x"], what + " x")};
    if (w.word.empty()) bad(what + " has an empty \"word\"");
    if (d > 0 && w.x.size() != d)
      bad(fmt::format("{} ('{}') has {} numbers in x but the first word has {}", what, w.word,
                      w.x.size(), d));
    return w;
  }

  std::vector<ExplainWord> words(const json& j, const std::string& what, Eigen::Index d) const {
    if (!j.is_array() || j.empty()) bad(what + " must be a non-empty list of {word, x} objects");
    QKV_CHECK(j.size() <= 32, "{}: {} has {} words; explain shows at most 32", source, what,
              j.size());
    std::vector<ExplainWord> out;
    for (size_t i = 0; i < j.size(); ++i)
      out.push_back(word(j[i], fmt::format("{}[{}]", what, i), d));
    for (const auto& w : out)
      if (w.x.size() != out.front().x.size())
        bad(
            fmt::format("{}: word '{}' has {} numbers in x but '{}' has {}; every x must have "
                        "the same length d",
                        what, w.word, w.x.size(), out.front().word, out.front().x.size()));
    return out;
  }
};

}  // namespace

ExplainInput default_explain_input() {
  // Made up so that the raw dot products q·k are exactly (1, −1, 0) for (animal, street, it): the
  // scores are (½, −½, 0), and P = (e^½, e^−½, 1) / (e^½ + e^−½ + 1) = (50.6 %, 18.6 %, 30.7 %),
  // which rounds to the classic 51 / 19 / 31 %. Found by a small exhaustive search over
  // entries in {0, ±½, ±1}.
  ExplainInput in;
  in.sentence = "The animal didn't cross the street because it was too tired";
  in.words = {{"animal", vec_of({1.0, 0.0, 0.5, 0.5})},
              {"street", vec_of({0.0, 1.0, 0.5, 0.0})},
              {"it", vec_of({0.0, 0.0, 1.0, 0.5})}};
  in.query = 2;
  in.W_Q = rows_of({{1, 1, 1, -1}, {-1, 0.5, -0.5, -1}, {-0.5, 1, 1, 0}, {1, 0, 0, -1}});
  in.W_K = rows_of({{0.5, -1, 0, 1}, {-1, 0, 1, 0}, {-1, -0.5, 0, 1}, {-1, -0.5, -1, 1}});
  in.W_V = rows_of({{1, 0, 0, 0}, {0, 1, 0.5, 0}, {0, 0, 0.5, 1}, {1, -1, 0, 0}});
  in.target = vec_of({1.0, 0.25, 0.75, 1.0});  // v_animal's numbers, held fixed
  in.cross_sentence = "It was too tired.";
  in.cross_query = in.words[2];
  in.cross_words = {in.words[0], in.words[1]};
  return in;
}

ExplainInput parse_explain_input(const std::string& json_text, const std::string& source) {
  const Parser p{source};
  const json doc = parse_json(json_text, source);
  if (!doc.is_object()) p.bad("expected a JSON object with 'words', 'query', 'W_Q', 'W_K', 'W_V'");
  static const std::set<std::string> known = {"sentence", "words", "query",  "W_Q",
                                              "W_K",      "W_V",   "target", "cross"};
  for (const auto& [key, value] : doc.items())
    if (!known.count(key))
      p.bad("unknown key '" + key +
            "' (expected sentence, words, query, W_Q, W_K, W_V, target, cross)");

  ExplainInput in;
  in.source = source;
  const JsonReader r(source, doc);
  r.string("sentence", in.sentence);
  if (!doc.contains("words")) p.bad("missing 'words' (a list of {\"word\": ..., \"x\": [...]})");
  in.words = p.words(doc["words"], "'words'", 0);
  if (in.words.size() < 2) p.bad("'words' needs at least two words to attend over");
  const Eigen::Index d = in.words.front().x.size();

  if (!r.find("query")) p.bad("missing 'query' (the word, from 'words', that attends)");
  std::string query;
  r.string("query", query);
  int found = 0;
  for (size_t i = 0; i < in.words.size(); ++i)
    if (in.words[i].word == query) in.query = static_cast<int>(i), ++found;
  if (found == 0) p.bad("'query' is '" + query + "', which is not one of the words");
  if (found > 1) p.bad("'query' is '" + query + "', which appears twice in 'words'");

  in.W_Q = p.matrix(doc, "W_Q", d);
  in.W_K = p.matrix(doc, "W_K", d);
  in.W_V = p.matrix(doc, "W_V", d);
  if (in.W_Q.rows() != in.W_K.rows())
    p.bad(fmt::format("'W_Q' has {} rows but 'W_K' has {}; q·k needs both of length d_k",
                      in.W_Q.rows(), in.W_K.rows()));

  in.target = VectorXd::Zero(in.W_V.rows());
  if (doc.contains("target")) {
    in.target = p.numbers(doc["target"], "'target'");
    if (in.target.size() != in.W_V.rows())
      p.bad(fmt::format("'target' has {} numbers but the values have {} (one per row of W_V)",
                        in.target.size(), in.W_V.rows()));
  }

  if (doc.contains("cross")) {
    const json& c = doc["cross"];
    if (!c.is_object() || !c.contains("query") || !c.contains("words"))
      p.bad("'cross' must be an object with 'query' ({word, x}) and 'words' (list of {word, x})");
    for (const auto& [key, value] : c.items())
      if (key != "sentence" && key != "query" && key != "words")
        p.bad("unknown key 'cross." + key + "' (expected sentence, query, words)");
    JsonReader(source, c, "cross").string("sentence", in.cross_sentence);
    in.cross_query = p.word(c["query"], "'cross.query'", d);
    in.cross_words = p.words(c["words"], "'cross.words'", d);
  } else {
    // By default: the query word alone in a second sentence, over the other words.
    in.cross_query = in.words[static_cast<size_t>(in.query)];
    for (size_t i = 0; i < in.words.size(); ++i)
      if (static_cast<int>(i) != in.query) in.cross_words.push_back(in.words[i]);
  }
  return in;
}

ExplainInput load_explain_input(const std::string& path) {
  QKV_CHECK(!std::filesystem::is_directory(path),
            "--vectors {}: is a folder; give a JSON file (see qkv explain --help)", path);
  std::ifstream f(path);
  QKV_CHECK(f.good(),
            "--vectors {}: cannot open the file; give a JSON file (see qkv explain "
            "--help)",
            path);
  std::stringstream s;
  s << f.rdbuf();
  return parse_explain_input(s.str(), "--vectors " + path);
}

}  // namespace qkv::cli
