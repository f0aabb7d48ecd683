// codec_bench — encode and decode time per peer batch of the direct msgpack codec
// (raft/transport/codec.cpp) next to the nlohmann/json codec it replaced (the oracle in
// tests/transport/codec_oracle.h), for the batches a busy leader sends: an append of 20 entries
// of 120 bytes, a lone heartbeat, and both in one batch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "lockservice/commands.h"
#include "raft/transport/codec.h"
#include "tests/transport/codec_oracle.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace raftlock::raft;
using namespace raftlock::raft::transport;

// Keeps the optimiser from dropping work whose result is otherwise unused.
volatile size_t g_sink = 0;

Message append_message() {
  Message m;
  m.type = MessageType::kAppend;
  m.from = 1;
  m.to = 2;
  m.term = 7;
  m.log_term = 7;
  m.index = 123456;
  m.commit = 123450;
  for (uint64_t i = 0; i < 20; ++i) {
    m.entries.push_back(Entry{7, 123457 + i, EntryType::kNormal, std::string(120, 'x')});
  }
  return m;
}

Message heartbeat_message() {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.from = 1;
  m.to = 2;
  m.term = 7;
  m.commit = 123450;
  m.context = std::string(8, 'r');
  return m;
}

// Median ns per call over `rounds` rounds of `per_round` calls.
template <typename F>
double ns_per_call(F&& call, int rounds, int per_round) {
  std::vector<double> ns;
  for (int r = 0; r < rounds; ++r) {
    const auto t = Clock::now();
    for (int i = 0; i < per_round; ++i) call();
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t).count() / per_round);
  }
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}

void bench(const char* name, const std::vector<Message>& messages, int per_round) {
  const std::string cluster_id = "raftlock-bench";
  const std::string bytes = encode_batch(cluster_id, 1, messages);
  if (bytes != oracle::encode_batch(cluster_id, 1, messages)) {
    std::fprintf(stderr, "%s: the codecs encode differently\n", name);
    std::exit(1);
  }
  if (!decode_batch(bytes).ok() || !oracle::decode_batch(bytes).ok()) {
    std::fprintf(stderr, "%s: a codec cannot decode the batch\n", name);
    std::exit(1);
  }
  constexpr int kRounds = 15;
  const double enc = ns_per_call(
      [&] { g_sink = g_sink + encode_batch(cluster_id, 1, messages).size(); }, kRounds, per_round);
  const double enc_oracle =
      ns_per_call([&] { g_sink = g_sink + oracle::encode_batch(cluster_id, 1, messages).size(); },
                  kRounds, per_round);
  const double dec = ns_per_call([&] { g_sink = g_sink + decode_batch(bytes)->messages.size(); },
                                 kRounds, per_round);
  const double dec_oracle = ns_per_call(
      [&] { g_sink = g_sink + oracle::decode_batch(bytes)->messages.size(); }, kRounds, per_round);
  std::printf(
      "%-34s %6zu B  encode %8.0f ns (nlohmann %8.0f ns, %4.1fx)  decode %8.0f ns "
      "(nlohmann %8.0f ns, %4.1fx)\n",
      name, bytes.size(), enc, enc_oracle, enc_oracle / enc, dec, dec_oracle, dec_oracle / dec);
}

// A lock service command: encode_command and decode_command (canonical commands read straight
// from their bytes) next to the generic nlohmann codec (the encoder's oracle, the decoder's
// fallback).
void bench_command(const char* name, const raftlock::lockservice::Command& command) {
  namespace ls = raftlock::lockservice;
  const std::string bytes = ls::encode_command(command);
  auto direct = ls::decode_command(bytes);
  auto generic = ls::detail::decode_command_generic(bytes);
  if (!direct.ok() || !generic.ok() || !(*direct == command) || !(*generic == command) ||
      bytes != ls::detail::encode_command_generic(command)) {
    std::fprintf(stderr, "%s: the codecs disagree or do not give back the command\n", name);
    std::exit(1);
  }
  constexpr int kRounds = 15;
  const double enc =
      ns_per_call([&] { g_sink = g_sink + ls::encode_command(command).size(); }, kRounds, 20000);
  const double enc_generic =
      ns_per_call([&] { g_sink = g_sink + ls::detail::encode_command_generic(command).size(); },
                  kRounds, 20000);
  const double dec =
      ns_per_call([&] { g_sink = g_sink + ls::decode_command(bytes)->index(); }, kRounds, 20000);
  const double dec_generic =
      ns_per_call([&] { g_sink = g_sink + ls::detail::decode_command_generic(bytes)->index(); },
                  kRounds, 20000);
  std::printf(
      "%-34s %6zu B  encode %8.0f ns (generic %8.0f ns, %4.1fx)  decode %8.0f ns "
      "(generic %8.0f ns, %4.1fx)\n",
      name, bytes.size(), enc, enc_generic, enc_generic / enc, dec, dec_generic, dec_generic / dec);
}

}  // namespace

int main() {
  std::printf("ns per batch, median of 15 rounds (direct msgpack codec vs the nlohmann oracle)\n");
  bench("append 20 x 120 B entries", {append_message()}, 2000);
  bench("heartbeat", {heartbeat_message()}, 20000);
  bench("append 20 x 120 B + heartbeat", {append_message(), heartbeat_message()}, 2000);
  std::printf("\nns per lock service command, median of 15 rounds\n");
  raftlock::lockservice::Acquire acquire;
  acquire.name = "bench-lock-17";
  acquire.lease_id = 8123456789;
  acquire.owner = "client-42";
  bench_command("acquire", acquire);
  bench_command("release", raftlock::lockservice::Release{"bench-lock-17", 8123456789, 1234567});
  return 0;
}
