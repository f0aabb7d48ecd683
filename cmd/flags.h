// raftlockd's command-line flags: parsing, environment fallbacks (RAFTLOCK_*) and validation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace raftlock::cmd {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

struct ServerFlags {
  uint64_t id = 1;
  std::string data_dir = "./raftlock-data";
  HostPort client_addr{"127.0.0.1", 7070};
  HostPort peer_addr{"127.0.0.1", 7080};
  std::map<uint64_t, HostPort> initial_cluster;  // empty = only this node
  int heartbeat_ms = 100;
  int election_timeout_ms = 1000;
  std::string log_level = "info";
  uint64_t snapshot_every = 10000;
  // How long the Raft loop keeps polling for work before it sleeps (raft::NodeOptions::idle_spin).
  int loop_spin_us = 300;
  bool help = false;
};

Result<HostPort> parse_host_port(const std::string& text);
Result<std::map<uint64_t, HostPort>> parse_initial_cluster(const std::string& text);

// Parses argv (argv[0] skipped) with environment fallbacks from `env` (flag wins). Errors name
// the offending flag in one sentence.
Result<ServerFlags> parse_server_flags(const std::vector<std::string>& args,
                                       const std::map<std::string, std::string>& env);

// Reads RAFTLOCK_* variables from the process environment.
std::map<std::string, std::string> raftlock_environment();

std::string server_usage();

}  // namespace raftlock::cmd
