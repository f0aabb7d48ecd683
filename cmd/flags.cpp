#include "cmd/flags.h"

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>

extern char** environ;

namespace raftlock::cmd {
namespace {

Error flag_error(const std::string& flag, const std::string& why) {
  return make_error(ErrorCode::kInvalidArgument, "invalid --" + flag + ": " + why);
}

template <typename Int>
bool parse_int(const std::string& text, Int& out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

std::string env_name(const std::string& flag) {
  std::string name = "RAFTLOCK_";
  for (char c : flag) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

}  // namespace

Result<HostPort> parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return make_error(ErrorCode::kInvalidArgument, "'" + text + "' is not HOST:PORT");
  }
  HostPort out;
  out.host = text.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  uint32_t port = 0;
  if (!parse_int(text.substr(colon + 1), port) || port == 0 || port > 65535) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + text + "' has no valid port (1-65535) after the colon");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

Result<std::map<uint64_t, HostPort>> parse_initial_cluster(const std::string& text) {
  std::map<uint64_t, HostPort> out;
  size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      return make_error(ErrorCode::kInvalidArgument, "'" + item + "' is not ID=HOST:PORT");
    }
    uint64_t id = 0;
    if (!parse_int(item.substr(0, eq), id) || id == 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "'" + item.substr(0, eq) + "' is not a positive node id");
    }
    auto addr = parse_host_port(item.substr(eq + 1));
    if (!addr) return addr.error();
    if (!out.emplace(id, *addr).second) {
      return make_error(ErrorCode::kInvalidArgument,
                        "node id " + std::to_string(id) + " appears twice");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<ServerFlags> parse_server_flags(const std::vector<std::string>& args,
                                       const std::map<std::string, std::string>& env) {
  ServerFlags flags;
  using Setter = std::function<Status(const std::string&)>;
  // A setter for an integer flag that must lie in [low, high].
  const auto int_in_range = [](const char* name, int& out, int low, int high) -> Setter {
    return [name, &out, low, high](const std::string& v) -> Status {
      if (!parse_int(v, out) || out < low || out > high) {
        return flag_error(name, "'" + v + "' is not an integer in " + std::to_string(low) + ".." +
                                    std::to_string(high));
      }
      return Ok{};
    };
  };
  const std::map<std::string, Setter> setters = {
      {"id",
       [&](const std::string& v) -> Status {
         if (!parse_int(v, flags.id) || flags.id == 0) {
           return flag_error("id", "'" + v + "' is not a positive integer");
         }
         return Ok{};
       }},
      {"data-dir",
       [&](const std::string& v) -> Status {
         if (v.empty()) return flag_error("data-dir", "the path is empty");
         flags.data_dir = v;
         return Ok{};
       }},
      {"client-addr",
       [&](const std::string& v) -> Status {
         auto hp = parse_host_port(v);
         if (!hp) return flag_error("client-addr", hp.error().message);
         flags.client_addr = *hp;
         return Ok{};
       }},
      {"peer-addr",
       [&](const std::string& v) -> Status {
         auto hp = parse_host_port(v);
         if (!hp) return flag_error("peer-addr", hp.error().message);
         flags.peer_addr = *hp;
         return Ok{};
       }},
      {"initial-cluster",
       [&](const std::string& v) -> Status {
         auto cluster = parse_initial_cluster(v);
         if (!cluster) return flag_error("initial-cluster", cluster.error().message);
         flags.initial_cluster = *cluster;
         return Ok{};
       }},
      {"heartbeat-ms", int_in_range("heartbeat-ms", flags.heartbeat_ms, 1, 60000)},
      {"election-timeout-ms",
       int_in_range("election-timeout-ms", flags.election_timeout_ms, 1, 600000)},
      {"log-level",
       [&](const std::string& v) -> Status {
         static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
         if (!levels.count(v)) {
           return flag_error("log-level",
                             "'" + v + "' is not one of trace, debug, info, warn, error");
         }
         flags.log_level = v;
         return Ok{};
       }},
      {"snapshot-every",
       [&](const std::string& v) -> Status {
         if (!parse_int(v, flags.snapshot_every) || flags.snapshot_every < 1) {
           return flag_error("snapshot-every", "'" + v + "' is not a positive integer");
         }
         return Ok{};
       }},
      {"loop-spin-us", int_in_range("loop-spin-us", flags.loop_spin_us, 0, 10000)},
  };

  // Flags first, collected by name; then the environment for every flag not given (a flag wins,
  // so a bad environment value is irrelevant when the flag overrides it).
  std::map<std::string, std::string> given;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h" || arg == "--help") {
      flags.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return make_error(ErrorCode::kInvalidArgument, "unexpected argument '" + arg + "'");
    }
    arg = arg.substr(2);
    std::string value;
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (!setters.count(arg)) {
      return make_error(ErrorCode::kInvalidArgument, "unknown flag --" + arg + " (see --help)");
    }
    if (eq == std::string::npos) {
      if (i + 1 >= args.size()) {
        return make_error(ErrorCode::kInvalidArgument, "flag --" + arg + " needs a value");
      }
      value = args[++i];
    }
    given[arg] = value;
  }
  for (const auto& [name, setter] : setters) {
    if (auto flag = given.find(name); flag != given.end()) {
      if (auto applied = setter(flag->second); !applied) return applied.error();
      continue;
    }
    auto it = env.find(env_name(name));
    if (it == env.end()) continue;
    if (auto applied = setter(it->second); !applied) {
      return make_error(ErrorCode::kInvalidArgument,
                        applied.error().message + " (from " + env_name(name) + ")");
    }
  }
  if (flags.heartbeat_ms >= flags.election_timeout_ms) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid --election-timeout-ms: it must be larger than --heartbeat-ms");
  }
  if (!flags.initial_cluster.empty()) {
    auto self = flags.initial_cluster.find(flags.id);
    if (self == flags.initial_cluster.end()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid --initial-cluster: it does not name this node (--id " +
                            std::to_string(flags.id) + ")");
    }
  }
  return flags;
}

std::map<std::string, std::string> raftlock_environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    std::string name(*e, static_cast<size_t>(eq - *e));
    if (name.rfind("RAFTLOCK_", 0) == 0) out.emplace(std::move(name), std::string(eq + 1));
  }
  return out;
}

std::string server_usage() {
  return R"(raftlockd — one node of a raftlock cluster (distributed locks, leases, leader election)

Usage: raftlockd [flags]

Flags (each also read from the environment, e.g. --client-addr <-> RAFTLOCK_CLIENT_ADDR; a flag wins):
  --id N                          this node's id, a positive integer unique in the cluster (default 1)
  --data-dir DIR                  SQLite database and snapshots; created if missing (default ./raftlock-data)
  --client-addr HOST:PORT         HTTP/JSON API, /metrics, /healthz, /readyz (default 127.0.0.1:7070)
  --peer-addr HOST:PORT           Raft traffic between nodes (default 127.0.0.1:7080)
  --initial-cluster ID=HOST:PORT,...
                                  peer addresses of the founding members; used only when the data
                                  dir is new (default: only this node)
  --heartbeat-ms N                leader heartbeat interval (default 100)
  --election-timeout-ms N         base election timeout, randomised in [N, 2N) (default 1000)
  --log-level LEVEL               trace, debug, info, warn, error (default info)
  --snapshot-every N              applied entries between snapshots (default 10000)
  --loop-spin-us N                microseconds the Raft loop keeps polling for work before it
                                  sleeps: lower latency for up to N us of CPU per idle moment;
                                  0 sleeps at once (default 300, at most 10000)
  -h, --help                      show this help

With no flags at all it is a working single-node cluster.
)";
}

}  // namespace raftlock::cmd
