// A small XML well-formedness checker for the tests that write SVG and HTML (plot_test,
// charts_test, explain_test, pictures_test): no dependency, one message naming the first problem.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_files.h"

namespace qkv::test {

/// A small well-formedness check: an optional XML declaration and DOCTYPE, then one root;
/// balanced and properly nested tags, quoted attributes, no '<' or raw '&' in text or attribute
/// values. Returns "" or the problem.
inline std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  int roots = 0;
  size_t i = 0;
  auto check_text = [&](size_t from, size_t to) -> std::string {
    for (size_t k = from; k < to; ++k) {
      if (s[k] == '<') return "'<' in text at " + std::to_string(k);
      if (s[k] != '&') continue;
      size_t semi = s.find(';', k);
      if (semi == std::string::npos) return "unterminated entity at " + std::to_string(k);
      const std::string ent = s.substr(k + 1, semi - k - 1);
      if (ent != "amp" && ent != "lt" && ent != "gt" && ent != "quot" && ent != "apos" &&
          (ent.empty() || ent[0] != '#'))
        return "bad entity &" + ent + "; at " + std::to_string(k);
    }
    return "";
  };
  while (i < s.size()) {
    size_t lt = s.find('<', i);
    if (lt == std::string::npos) lt = s.size();
    if (std::string e = check_text(i, lt); !e.empty()) return e;
    if (lt == s.size()) break;
    if (stack.empty() && s.find_first_not_of(" \n\t\r", i) < lt && roots > 0)
      return "text after the root element";
    if (s.compare(lt, 5, "<?xml") == 0) {
      if (lt != 0) return "XML declaration not at the start";
      i = s.find("?>", lt) + 2;
      continue;
    }
    if (s.compare(lt, 9, "<!DOCTYPE") == 0) {
      if (roots > 0) return "DOCTYPE after the root element";
      i = s.find('>', lt) + 1;
      continue;
    }
    if (s.compare(lt, 4, "<!--") == 0) {
      i = s.find("-->", lt) + 3;
      continue;
    }
    const bool closing = s[lt + 1] == '/';
    size_t k = lt + (closing ? 2 : 1);
    size_t name_end = s.find_first_of(" \t\n/>", k);
    const std::string name = s.substr(k, name_end - k);
    if (name.empty()) return "empty tag name at " + std::to_string(lt);
    k = name_end;
    // Attributes: name="value" pairs.
    while (true) {
      k = s.find_first_not_of(" \t\n", k);
      if (k == std::string::npos) return "unterminated tag " + name;
      if (s[k] == '>' || s[k] == '/') break;
      size_t eq = s.find('=', k);
      if (eq == std::string::npos || eq + 1 >= s.size() || (s[eq + 1] != '"' && s[eq + 1] != '\''))
        return "unquoted attribute in <" + name + ">";
      const char q = s[eq + 1];
      size_t end = s.find(q, eq + 2);
      if (end == std::string::npos) return "unterminated attribute in <" + name + ">";
      if (std::string e = check_text(eq + 2, end); !e.empty()) return e + " (attribute)";
      k = end + 1;
    }
    const bool self_closing = s[k] == '/';
    if (self_closing && (k + 1 >= s.size() || s[k + 1] != '>')) return "bad '/' in <" + name + ">";
    i = k + (self_closing ? 2 : 1);
    if (closing) {
      if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
      stack.pop_back();
    } else if (!self_closing) {
      if (stack.empty() && roots++ > 0) return "two root elements";
      stack.push_back(name);
    } else if (stack.empty()) {
      return "self-closing root";
    }
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "no root element";
  return "";
}

/// Expects `xml` well-formed by xml_problem, and by xmllint when it is installed; `what` names
/// the document in failure messages.
inline void expect_well_formed(const std::string& xml, const std::string& what) {
  EXPECT_EQ(xml_problem(xml), "") << what;
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0) return;
  const std::string path = temp_path("well_formed.xml");
  std::ofstream(path, std::ios::binary) << xml;
  EXPECT_EQ(std::system(("xmllint --noout '" + path + "'").c_str()), 0) << what;
  std::remove(path.c_str());
}

}  // namespace qkv::test
