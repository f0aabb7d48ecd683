#include "bench/lockbench/report.h"

#include <algorithm>
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

// A scenario repeated (compare.sh --repeat) is shown by its median run, metric by metric; a
// failed measurement (a negative value) in any run is shown instead, so it is never outvoted.
double aggregate(std::vector<double> runs) {
  for (double v : runs) {
    if (v < 0) return v;
  }
  std::sort(runs.begin(), runs.end());
  const size_t n = runs.size();
  return n % 2 == 1 ? runs[n / 2] : (runs[n / 2 - 1] + runs[n / 2]) / 2;
}

// Adds one run's error counts and failure samples to what earlier runs of the same scenario and
// system reported.
void merge_details(json& into, const json& run) {
  // Named first: a range-for over items() of a temporary would outlive the temporary.
  const json errors = run.value("errors", json::object());
  const json failures = run.value("failures", json::object());
  for (auto& [k, v] : errors.items()) {
    if (v.is_number_integer())
      into["errors"][k] = into["errors"].value(k, int64_t{0}) + v.get<int64_t>();
  }
  for (auto& [k, v] : failures.items()) {
    json& f = into["failures"][k];
    if (f.is_null()) {
      f = v;
    } else {
      f["count"] = f.value("count", int64_t{0}) + v.value("count", int64_t{0});
    }
  }
  if (run.contains("error") && !into.contains("error")) into["error"] = run["error"];
  into["runs"] = into.value("runs", 0) + 1;
}

// One metric of one scenario, every system's runs of it.
struct Row {
  std::string unit, better;
  std::map<std::string, std::vector<double>> runs;  // system -> one value per run, in order
  std::map<std::string, std::vector<int>> rounds;   // system -> each run's round number
  std::map<std::string, double> value;              // system -> aggregate(runs)
};

// The ratio a/b of each round both systems ran (round i of one against round i of the other;
// compare.sh runs them back to back), in a's order. A round that one of them lacks (its cluster
// did not start), or where b is 0, has no ratio.
std::vector<double> round_ratios(Row& row, const std::string& a, const std::string& b) {
  std::vector<double> ratios;
  const auto& mine = row.runs[a];
  const auto& theirs = row.runs[b];
  const auto& my_rounds = row.rounds[a];
  const auto& their_rounds = row.rounds[b];
  for (size_t i = 0; i < mine.size(); ++i) {
    for (size_t j = 0; j < theirs.size(); ++j) {
      if (their_rounds[j] != my_rounds[i] || theirs[j] == 0) continue;
      ratios.push_back(mine[i] / theirs[j]);
      break;
    }
  }
  return ratios;
}

std::string listed(const std::vector<double>& values) {
  std::string text;
  for (double v : values) text += " " + fmt(v);
  return text;
}

// bench/floor_bench's runs next to the contended rounds: this machine's least cost per handoff in
// that minute, and how close each system came to it.
void report_floor(Row& row, json& doc, std::ostream& out) {
  if (!row.value.count("floor")) return;
  const double floor = row.value["floor"];
  json f{{"handoffs_per_s", floor}, {"runs", row.runs["floor"]}};
  out << "\nFloor (bench/floor_bench, after both systems in each contended round): one commit\n"
         "on three processes' fdatasync()s and one client round trip, nothing else: the most\n"
         "handoffs/s a 3-node service that makes each one durable on two nodes could reach here:\n";
  std::string text = "  contended  floor " + fmt(floor) + " handoffs/s";
  for (const std::string& system : {std::string("etcd"), std::string("raftlock")}) {
    if (!row.value.count(system) || floor <= 0) continue;
    const double share = row.value[system] / floor;
    const std::vector<double> rounds = round_ratios(row, system, "floor");
    f[system + "_share"] = share;
    f[system + "_share_rounds"] = rounds;
    text += "; " + system + " at " + fmt(share) + " of it";
    if (rounds.size() > 1) text += " (rounds:" + listed(rounds) + ")";
  }
  if (row.value.count("etcd") && row.value["etcd"] > 0) {
    const std::vector<double> rounds = round_ratios(row, "floor", "etcd");
    f["floor_vs_etcd"] = floor / row.value["etcd"];
    f["floor_vs_etcd_rounds"] = rounds;
    text += "\n             the floor is " + fmt(floor / row.value["etcd"]) + "x etcd";
    if (rounds.size() > 1) text += " (rounds:" + listed(rounds) + ")";
  }
  out << text << "\n";
  doc["floor"] = std::move(f);
}

}  // namespace

json build_report(const std::vector<json>& results, std::ostream& out) {
  // scenario -> metric -> system -> value; plus metric order as first seen.
  std::map<int, std::pair<std::string, std::vector<std::string>>> order;
  std::map<std::string, std::map<std::string, Row>> rows;
  std::map<std::string, std::map<std::string, json>> extra;  // scenario -> system -> errors
  for (const auto& r : results) {
    std::string sc = r.value("scenario", "?"), sys = r.value("system", "?");
    auto& ord = order[scenario_order(sc)];
    ord.first = sc;
    json& details = extra[sc][sys];
    if (details.is_null()) {
      details = {{"errors", json::object()},
                 {"failures", json::object()},
                 {"endpoints_policy", r.value("endpoints_policy", "")},
                 {"params", r.value("params", json::object())}};
    }
    merge_details(details, r);
    for (const auto& m : r.value("metrics", json::array())) {
      std::string name = m["name"];
      Row& row = rows[sc][name];
      if (row.unit.empty()) {
        ord.second.push_back(name);
        row.unit = m.value("unit", "");
        row.better = m.value("better", "");
      }
      row.runs[sys].push_back(m["value"].get<double>());
      // compare.sh tags each run with its round; untagged runs count in the order they came.
      row.rounds[sys].push_back(r.value("round", static_cast<int>(row.runs[sys].size())));
    }
  }
  for (auto& [sc, metrics] : rows) {
    for (auto& [name, row] : metrics) {
      for (auto& [sys, runs] : row.runs) row.value[sys] = aggregate(runs);
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
      json json_row = {{"scenario", sc},
                       {"metric", name},
                       {"unit", row.unit},
                       {"better", row.better},
                       {"raftlock", a ? json(*a) : json(nullptr)},
                       {"etcd", b ? json(*b) : json(nullptr)},
                       {"ratio", ratio ? json(*ratio) : json(nullptr)}};
      for (const auto& [sys, runs] : row.runs) {
        if (runs.size() > 1) json_row[sys + "_runs"] = runs;
      }
      doc["rows"].push_back(std::move(json_row));
    }
  }
  out << "\nTargets (issue 7):\n";
  bool repeated = false;
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
    // A repeated scenario: the ratio of each round too, so no round hides behind the median.
    json rounds = json::array();
    std::string per_round;
    const auto& mine = row.runs["raftlock"];
    const auto& theirs = row.runs["etcd"];
    if (!t.absolute && (mine.size() > 1 || theirs.size() > 1)) {
      const std::vector<double> ratios = round_ratios(row, "raftlock", "etcd");
      rounds = ratios;
      per_round = listed(ratios);
      repeated = true;
    } else if (t.absolute && mine.size() > 1) {
      per_round = listed(mine);
      repeated = true;
    }
    std::string shown_text = fmt(shown) + " -> " + verdict;
    if (!per_round.empty()) shown_text += "  (rounds:" + per_round + ")";
    std::snprintf(line, sizeof line, "  %-10s %-22s %-24s %s: %s\n", t.scenario.c_str(),
                  t.metric.c_str(), t.text.c_str(), t.absolute ? "raftlock" : "ratio",
                  shown_text.c_str());
    out << line;
    json target = {{"scenario", t.scenario},
                   {"metric", t.metric},
                   {"target", t.text},
                   {t.absolute ? "raftlock" : "ratio", shown},
                   {"verdict", verdict}};
    if (!rounds.empty()) target["rounds"] = rounds;
    doc["targets"].push_back(std::move(target));
  }
  if (repeated) {
    out << "  (a scenario run in several rounds shows each system's median run, metric by metric;\n"
           "   the verdict is on the medians' ratio, and each round's own ratio follows it)\n";
  }
  if (rows.count("contended") && rows["contended"].count("handoffs_per_s")) {
    report_floor(rows["contended"]["handoffs_per_s"], doc, out);
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
