// Test helpers that run Prometheus's own tools (promtool, the prometheus server) and find the
// repository's packaging files; shared by tests/metrics and tests/integration.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace raftlock::testing::prometheus_tools {

// The value of the sample `series` (metric name plus its exact label text, e.g. `x{peer="2"}`)
// in a text exposition, or nullopt.
inline std::optional<double> sample(const std::string& exposition, const std::string& series) {
  std::stringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

// Absolute path of `name` found on PATH, or nullopt when it is not installed.
inline std::optional<std::string> find_tool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct ToolOutcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv (argv[0] a path) with `stdin_text` on its standard input; waits for it to exit.
inline ToolOutcome run_tool(const std::vector<std::string>& argv,
                            const std::string& stdin_text = "") {
  char input_path[] = "/tmp/raftlock-tool-stdin-XXXXXX";
  const int fd = ::mkstemp(input_path);
  if (fd >= 0) {
    if (!stdin_text.empty()) {
      [[maybe_unused]] auto written = ::write(fd, stdin_text.data(), stdin_text.size());
    }
    ::close(fd);
  }
  std::string command;
  for (const auto& arg : argv) command += shell_quote(arg) + " ";
  command += "< " + shell_quote(input_path) + " 2>&1";
  ToolOutcome outcome;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) outcome.output.append(buffer, n);
    const int status = ::pclose(pipe);
    outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ::unlink(input_path);
  return outcome;
}

// The repository root (this header lives in <root>/tests/metrics/).
inline std::filesystem::path source_root() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// Names of the samples in a Prometheus text exposition (metric name of every non-comment line).
inline std::set<std::string> sample_names(const std::string& exposition) {
  std::set<std::string> names;
  std::stringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t end = line.find_first_of("{ ");
    names.insert(line.substr(0, end));
  }
  return names;
}

// `# TYPE name kind` lines: name -> kind.
inline std::map<std::string, std::string> family_types(const std::string& exposition) {
  std::map<std::string, std::string> types;
  std::stringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::stringstream fields(line.substr(7));
    std::string name, kind;
    fields >> name >> kind;
    types[name] = kind;
  }
  return types;
}

// Metric names a PromQL expression reads: identifiers that are not functions, keywords, label
// names (inside {...} or by/without/on/ignoring/group_left/group_right (...)), strings, durations
// or numbers.
inline std::set<std::string> promql_metric_names(const std::string& expr) {
  static const std::set<std::string> kKeywords = {
      "by",           "without", "on",     "ignoring", "group_left", "group_right", "and",
      "or",           "unless",  "bool",   "offset",   "sum",        "min",         "max",
      "avg",          "count",   "stddev", "stdvar",   "topk",       "bottomk",     "quantile",
      "count_values", "group",   "inf",    "nan",      "atan2"};
  static const std::set<std::string> kGrouping = {"by",       "without",    "on",
                                                  "ignoring", "group_left", "group_right"};
  std::set<std::string> names;
  size_t i = 0;
  auto skip_until = [&](char close) {
    while (i < expr.size() && expr[i] != close) {
      if (expr[i] == '"' || expr[i] == '\'') {
        const char quote = expr[i++];
        while (i < expr.size() && expr[i] != quote) i += expr[i] == '\\' ? 2 : 1;
      }
      ++i;
    }
    ++i;
  };
  while (i < expr.size()) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      ++i;
      while (i < expr.size() && expr[i] != c) i += expr[i] == '\\' ? 2 : 1;
      ++i;
    } else if (c == '{') {
      ++i;
      skip_until('}');
    } else if (c == '[') {
      ++i;
      skip_until(']');
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      while (i < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[i])) ||
                                 expr[i] == '.' || expr[i] == '_')) {
        ++i;
      }
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':') {
      const size_t start = i;
      while (i < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[i])) ||
                                 expr[i] == '_' || expr[i] == ':')) {
        ++i;
      }
      const std::string word = expr.substr(start, i - start);
      size_t next = i;
      while (next < expr.size() && expr[next] == ' ') ++next;
      const bool call = next < expr.size() && expr[next] == '(';
      if (kGrouping.count(word)) {
        if (call) {
          i = next + 1;
          skip_until(')');
        }
      } else if (!call && !kKeywords.count(word)) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

}  // namespace raftlock::testing::prometheus_tools
