#include "bench/lockbench/report.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

namespace raftlock::bench {
namespace {

using nlohmann::json;

// The targets, as ratios raftlock/etcd of one metric (or an absolute bound).
struct Target {
  std::string scenario, metric, text;
  double bound;
  bool ratio_at_least;    // ratio >= bound (else ratio <= bound)
  bool absolute = false;  // compares raftlock's value, not the ratio (value <= bound)
};

const std::vector<Target>& targets() {
  static const std::vector<Target> t = {
      {"multi", "cycles_per_s", ">= 3x etcd", 3, true},
      {"multi", "acquire_p99_ms", "p99 no worse than etcd", 1, false},
      {"single", "acquire_p50_ms", "<= 0.5x etcd", 0.5, false},
      {"contended", "handoffs_per_s", ">= 5x etcd", 5, true},
      {"failover", "time_to_acquire_ms", "<= etcd", 1, false},
      {"leases", "premature_expiries", "0", 0, false, true},
      {"leases", "leases_lost", "0 (all kept alive)", 0, false, true},
      {"memory", "rss_max_mib", "<= etcd", 1, false},
  };
  return t;
}

int scenario_order(const std::string& s) {
  static const std::map<std::string, int> order = {{"single", 1}, {"multi", 2},    {"contended", 3},
                                                   {"leases", 4}, {"failover", 5}, {"reads", 6},
                                                   {"memory", 7}};
  auto it = order.find(s);
  return it == order.end() ? 99 : it->second;
}

std::string fmt(double v) {
  char buf[64];
  if (v == 0 || std::fabs(v) >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (std::fabs(v) >= 10)
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

json build_report(const std::vector<json>& results, std::ostream& out) {
  // scenario -> metric -> system -> value; plus metric order as first seen.
  struct Row {
    std::string unit, better;
    std::map<std::string, double> value;
  };
  std::map<int, std::pair<std::string, std::vector<std::string>>> order;
  std::map<std::string, std::map<std::string, Row>> rows;
  std::map<std::string, std::map<std::string, json>> extra;  // scenario -> system -> errors
  for (const auto& r : results) {
    std::string sc = r.value("scenario", "?"), sys = r.value("system", "?");
    auto& ord = order[scenario_order(sc)];
    ord.first = sc;
    extra[sc][sys] = {{"errors", r.value("errors", json::object())},
                      {"endpoints_policy", r.value("endpoints_policy", "")},
                      {"params", r.value("params", json::object())}};
    if (r.contains("error")) extra[sc][sys]["error"] = r["error"];
    extra[sc][sys]["failures"] = r.value("failures", json::object());
    for (const auto& m : r.value("metrics", json::array())) {
      std::string name = m["name"];
      Row& row = rows[sc][name];
      if (row.unit.empty()) {
        ord.second.push_back(name);
        row.unit = m.value("unit", "");
        row.better = m.value("better", "");
      }
      row.value[sys] = m["value"].get<double>();
    }
  }
  json doc{{"rows", json::array()}, {"targets", json::array()}, {"details", extra}};
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %-28s %12s %12s %8s  %s\n", "scenario", "metric",
                "raftlock", "etcd", "ratio", "better");
  out << line << std::string(84, '-') << "\n";
  for (auto& [n, entry] : order) {
    auto& [sc, metrics] = entry;
    for (const auto& name : metrics) {
      Row& row = rows[sc][name];
      std::optional<double> a, b, ratio;
      if (row.value.count("raftlock")) a = row.value["raftlock"];
      if (row.value.count("etcd")) b = row.value["etcd"];
      if (a && b && *b != 0) ratio = *a / *b;
      std::snprintf(line, sizeof line, "%-12s %-28s %12s %12s %8s  %s\n",
                    (std::to_string(n) + " " + sc).c_str(), (name + " [" + row.unit + "]").c_str(),
                    a ? fmt(*a).c_str() : "-", b ? fmt(*b).c_str() : "-",
                    ratio ? fmt(*ratio).c_str() : "-", row.better.c_str());
      out << line;
      doc["rows"].push_back({{"scenario", sc},
                             {"metric", name},
                             {"unit", row.unit},
                             {"better", row.better},
                             {"raftlock", a ? json(*a) : json(nullptr)},
                             {"etcd", b ? json(*b) : json(nullptr)},
                             {"ratio", ratio ? json(*ratio) : json(nullptr)}});
    }
  }
  out << "\nTargets (issue 7):\n";
  for (const auto& t : targets()) {
    if (!rows.count(t.scenario) || !rows[t.scenario].count(t.metric)) continue;
    Row& row = rows[t.scenario][t.metric];
    std::string verdict = "n/a";
    double shown = 0;
    if (t.absolute && row.value.count("raftlock")) {
      shown = row.value["raftlock"];
      verdict = shown <= t.bound ? "met" : "NOT met";
    } else if (row.value.count("raftlock") && row.value.count("etcd") && row.value["etcd"] != 0) {
      shown = row.value["raftlock"] / row.value["etcd"];
      // A failed measurement (-1) never meets a target.
      bool valid = row.value["raftlock"] >= 0 && row.value["etcd"] >= 0;
      bool met = valid && (t.ratio_at_least ? shown >= t.bound : shown <= t.bound);
      verdict = met ? "met" : "NOT met";
    }
    std::snprintf(line, sizeof line, "  %-10s %-22s %-24s %s: %s\n", t.scenario.c_str(),
                  t.metric.c_str(), t.text.c_str(), t.absolute ? "raftlock" : "ratio",
                  (fmt(shown) + " -> " + verdict).c_str());
    out << line;
    doc["targets"].push_back({{"scenario", t.scenario},
                              {"metric", t.metric},
                              {"target", t.text},
                              {t.absolute ? "raftlock" : "ratio", shown},
                              {"verdict", verdict}});
  }
  bool any_errors = false;
  for (auto& [sc, systems] : extra) {
    for (auto& [sys, info] : systems) {
      std::string errs;
      for (auto& [k, v] : info["errors"].items())
        if (v.get<int64_t>() != 0) errs += " " + k + "=" + std::to_string(v.get<int64_t>());
      if (info.contains("error")) errs += " ERROR: " + info["error"].get<std::string>();
      for (auto& [k, v] : info["failures"].items())
        errs += "\n      " + k + " x" + std::to_string(v["count"].get<int64_t>()) + ": " +
                v["sample"].get<std::string>().substr(0, 140);
      if (errs.empty()) continue;
      if (!any_errors) out << "\nErrors and refusals seen:\n";
      any_errors = true;
      out << "  " << sc << " " << sys << ":" << errs << "\n";
    }
  }
  return doc;
}

}  // namespace raftlock::bench
