// Snapshot and restore: exact round trips, determinism afterwards, and corrupt data rejected whole.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "machine_harness.h"

namespace raftlock::lockservice {
namespace {

using namespace testing_support;
using nlohmann::json;

const std::vector<std::string> kNames = {"a", "b", "c", "d", "e", "f", "never"};

std::vector<Command> follow_up_commands(raft::Index delay_start) {
  return {
      Release{"a", 1, 6},  // hand "a" to lease 2
      EndLockDelay{"b", delay_start},
      acquire("c", 6),
      acquire("c", 1, true),
      ExpireLease{2, 0},  // "a" to 3 with its lock-delay 0; "e" to lease 3
      Resign{"e", 3, 0},  // wrong token
      campaign("f", 6, "six"),
      RevokeLease{6},  // "c" passes to 1
      acquire("a", 9),
      Proclaim{"e", 3, 0, "x"},
  };
}

TEST(Snapshot, RestoreGivesIdenticalAnswersAndIdenticalFutures) {
  MachineHarness original;
  build_rich_state(original);
  ASSERT_EQ(original.machine.locks_in_lock_delay().size(), 1u);
  raft::Index delay_start = original.machine.locks_in_lock_delay()[0].started_index;
  std::string snap = original.machine.snapshot();
  EXPECT_EQ(snap, original.machine.snapshot()) << "snapshot is deterministic";

  MachineHarness restored;
  ASSERT_TRUE(restored.machine.restore(snap).ok());
  restored.next_index = original.next_index;
  expect_same_answers(original.machine, restored.machine, kNames);
  ASSERT_TRUE(restored.machine.check_invariants().ok());

  for (const Command& command : follow_up_commands(delay_start)) {
    SCOPED_TRACE(command_name(command));
    CommandResult a = original.run(command);
    CommandResult b = restored.run(command);
    EXPECT_EQ(a, b);
    expect_same_answers(original.machine, restored.machine, kNames);
  }
  // The follow-ups did real work (the comparison is not between two idle machines).
  EXPECT_EQ(original.machine.get_lock("a").holder->lease_id, 3u);
  EXPECT_EQ(original.machine.get_lock("c").holder->lease_id, 1u);
  EXPECT_EQ(original.machine.get_lock("b").holder->lease_id, 5u);
}

TEST(Snapshot, RestoreReplacesTheWholeState) {
  MachineHarness source;
  ASSERT_EQ(source.run(lease(1)).outcome, Outcome::kOk);
  ASSERT_EQ(source.run(acquire("x", 1)).outcome, Outcome::kGranted);

  MachineHarness target;
  build_rich_state(target);
  ASSERT_TRUE(target.machine.restore(source.machine.snapshot()).ok());
  expect_same_answers(source.machine, target.machine, kNames);
  EXPECT_FALSE(target.machine.get_lock("a").held);

  LockStateMachine empty;
  ASSERT_TRUE(target.machine.restore(empty.snapshot()).ok());
  EXPECT_TRUE(target.machine.all_lease_ids().empty());
  EXPECT_EQ(target.machine.last_modified_index(), 0u);
}

std::string msgpack(const json& j) {
  auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

json& find_named(json& array, const std::string& name) {
  for (json& item : array) {
    if (item["name"] == name) return item;
  }
  throw std::runtime_error("no " + name);
}

// The gauges' counts, taken in place, agree with the listings (waiters behind a lock-delay count
// too).
TEST(Counts, MatchTheListingsOfARichState) {
  MachineHarness h;
  build_rich_state(h);
  const auto counts = h.machine.counts();
  const auto held = h.machine.list_locks("");
  // Waiters queue behind a holder or behind a lock-delay ("b" here: its holder's lease expired).
  uint64_t waiters = 0;
  for (const auto& view : held) waiters += h.machine.lock_waiters(view.name).size();
  for (const auto& delayed : h.machine.locks_in_lock_delay()) {
    if (!h.machine.get_lock(delayed.name).held) {
      waiters += h.machine.lock_waiters(delayed.name).size();
    }
  }
  ASSERT_EQ(h.machine.lock_waiters("b").size(), 1u);
  ASSERT_FALSE(h.machine.get_lock("b").held);
  EXPECT_EQ(counts.locks_held, held.size());
  EXPECT_EQ(counts.lock_waiters, waiters);
  EXPECT_EQ(counts.leases, h.machine.all_lease_ids().size());
  EXPECT_GE(counts.locks_held, 1u);
  EXPECT_GE(counts.lock_waiters, 1u);
  EXPECT_EQ(LockStateMachine().counts().leases, 0u);
}

TEST(Snapshot, CorruptSnapshotsAreRejectedAndChangeNothingTable) {
  MachineHarness source;
  build_rich_state(source);
  const json good = json::from_msgpack(source.machine.snapshot_v1_msgpack());
  struct Row {
    const char* what;
    std::function<void(json&)> corrupt;
  };
  const std::vector<Row> rows = {
      {"not a map", [](json& j) { j = json::array(); }},
      {"unknown format", [](json& j) { j["format"] = 2; }},
      {"format missing", [](json& j) { j.erase("format"); }},
      {"leases not an array", [](json& j) { j["leases"] = "x"; }},
      {"locks missing", [](json& j) { j.erase("locks"); }},
      {"lease id zero", [](json& j) { j["leases"][0]["lease_id"] = 0; }},
      {"lease ids not ascending", [](json& j) { std::swap(j["leases"][0], j["leases"][1]); }},
      {"duplicate lease", [](json& j) { j["leases"][1]["lease_id"] = j["leases"][0]["lease_id"]; }},
      {"ttl out of range", [](json& j) { j["leases"][0]["ttl_ms"] = 5; }},
      {"ttl wrong type", [](json& j) { j["leases"][0]["ttl_ms"] = "1000"; }},
      {"lease revision beyond last index",
       [](json& j) { j["leases"][0]["revision"] = j["last_modified_index"].get<uint64_t>() + 1; }},
      {"holder lease unknown",
       [](json& j) { find_named(j["locks"], "a")["holder"]["lease_id"] = 99; }},
      {"waiter lease unknown",
       [](json& j) { find_named(j["locks"], "a")["waiters"][0]["lease_id"] = 99; }},
      {"lease queued twice",
       [](json& j) {
         json& w = find_named(j["locks"], "a")["waiters"];
         w[1]["lease_id"] = w[0]["lease_id"];
       }},
      {"holder also queued",
       [](json& j) {
         json& lock = find_named(j["locks"], "a");
         lock["waiters"][0]["lease_id"] = lock["holder"]["lease_id"];
       }},
      {"token above revision",
       [](json& j) {
         json& lock = find_named(j["locks"], "a");
         lock["holder"]["fencing_token"] = lock["revision"].get<uint64_t>() + 1;
       }},
      {"free grantable lock with waiters",
       [](json& j) { find_named(j["locks"], "b")["delay"] = nullptr; }},
      {"held and in delay",
       [](json& j) {
         find_named(j["locks"], "a")["delay"] = {{"delay_ms", 10}, {"started_index", 1}};
       }},
      {"delay too long",
       [](json& j) { find_named(j["locks"], "b")["delay"]["delay_ms"] = 60'001; }},
      {"invalid lock name", [](json& j) { find_named(j["locks"], "c")["name"] = "bad name"; }},
      {"lock names not ascending", [](json& j) { std::swap(j["locks"][0], j["locks"][1]); }},
      {"lock owner too long",
       [](json& j) { find_named(j["locks"], "a")["holder"]["owner"] = std::string(300, 'o'); }},
      {"holder not an object", [](json& j) { find_named(j["locks"], "a")["holder"] = 5; }},
      {"election leader unknown",
       [](json& j) { find_named(j["elections"], "e")["leader"]["lease_id"] = 99; }},
      {"candidates without leader",
       [](json& j) { find_named(j["elections"], "e")["leader"] = nullptr; }},
      {"leader value too long",
       [](json& j) {
         find_named(j["elections"], "e")["leader"]["value"] = std::string(5000, 'v');
       }},
      {"candidate is the leader",
       [](json& j) {
         json& e = find_named(j["elections"], "e");
         e["candidates"][0]["lease_id"] = e["leader"]["lease_id"];
       }},
      {"negative last index", [](json& j) { j["last_modified_index"] = -1; }},
  };

  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    json bad = good;
    row.corrupt(bad);
    MachineHarness target;
    ASSERT_EQ(target.run(lease(42)).outcome, Outcome::kOk);
    ASSERT_EQ(target.run(acquire("mine", 42)).outcome, Outcome::kGranted);
    std::string before = target.machine.snapshot();
    Status status = target.machine.restore(msgpack(bad));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code, ErrorCode::kCorrupt);
    EXPECT_FALSE(status.error().message.empty());
    EXPECT_EQ(target.machine.snapshot(), before);
    EXPECT_EQ(target.machine.get_lock("mine").holder->lease_id, 42u);
  }
  // The unmodified document is accepted (the rows fail for their corruption, not the re-encoding).
  LockStateMachine check;
  EXPECT_TRUE(check.restore(msgpack(good)).ok());
}

TEST(Snapshot, TruncatedAndGarbageBytesAreRejected) {
  MachineHarness source;
  build_rich_state(source);
  const std::string snap = source.machine.snapshot();
  MachineHarness target;
  ASSERT_EQ(target.run(lease(42)).outcome, Outcome::kOk);
  const std::string before = target.machine.snapshot();
  for (size_t length = 0; length < snap.size(); ++length) {
    ASSERT_FALSE(target.machine.restore(std::string_view(snap).substr(0, length)).ok()) << length;
  }
  for (const std::string& garbage :
       {std::string("garbage"), std::string(64, '\xff'), snap + "x", std::string("\xc1")}) {
    EXPECT_FALSE(target.machine.restore(garbage).ok());
  }
  EXPECT_EQ(target.machine.snapshot(), before);
}

TEST(Snapshot, RandomByteFlipsEitherFailCleanlyOrYieldAValidState) {
  MachineHarness source;
  build_rich_state(source);
  const std::string snap = source.machine.snapshot();
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string mutated = snap;
    size_t at = rng() % mutated.size();
    mutated[at] = static_cast<char>(mutated[at] ^ static_cast<char>(1 + rng() % 255));
    MachineHarness target;
    ASSERT_EQ(target.run(lease(42)).outcome, Outcome::kOk);
    const std::string before = target.machine.snapshot();
    Status status = target.machine.restore(mutated);
    if (status.ok()) {
      ASSERT_TRUE(target.machine.check_invariants().ok()) << "accepted an inconsistent snapshot";
    } else {
      ++rejected;
      ASSERT_EQ(target.machine.snapshot(), before);
    }
  }
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace raftlock::lockservice
