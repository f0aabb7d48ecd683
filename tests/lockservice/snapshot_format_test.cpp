// Snapshot format 2 (binary): exact round trips, old MessagePack snapshots still restore, and
// truncated or corrupted binary snapshots are refused with a clear error, leaving the state intact.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lockservice/snapshot_codec.h"
#include "machine_harness.h"

namespace raftlock::lockservice {
namespace {

using namespace testing_support;
using nlohmann::json;
using snapshot_codec::ByteReader;
using snapshot_codec::ByteWriter;

const std::vector<std::string> kNames = {"a", "b", "c", "d", "e", "f", "g", "never"};

// build_rich_state (the harness's), plus what the binary format must also carry: a holder with a
// lock-delay ("d"), a 4096-byte candidate value ("g") and the largest lease id.
void build_richer_state(MachineHarness& h) {
  build_rich_state(h);
  ASSERT_EQ(h.run(acquire("d", 1, false, 250)).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(campaign("g", 2, std::string(4096, 'v'))).outcome, Outcome::kGranted);
  ASSERT_EQ(h.run(CreateLease{(LeaseId{1} << 53) - 1, 3'600'000}).outcome, Outcome::kOk);
}

// The harness's comparison, and the old (MessagePack) encoding of both agrees too.
void expect_same_answers(const LockStateMachine& x, const LockStateMachine& y) {
  testing_support::expect_same_answers(x, y, kNames);
  EXPECT_EQ(x.snapshot_v1_msgpack(), y.snapshot_v1_msgpack());
}

// A machine with lease 42 holding "mine": the state a refused restore must leave alone.
struct Target {
  Target() {
    EXPECT_EQ(h.run(lease(42)).outcome, Outcome::kOk);
    EXPECT_EQ(h.run(acquire("mine", 42)).outcome, Outcome::kGranted);
    before = h.machine.snapshot();
  }
  void expect_unchanged() {
    EXPECT_EQ(h.machine.snapshot(), before);
    ASSERT_TRUE(h.machine.get_lock("mine").holder.has_value());
    EXPECT_EQ(h.machine.get_lock("mine").holder->lease_id, 42u);
    EXPECT_TRUE(h.machine.check_invariants().ok());
  }
  MachineHarness h;
  std::string before;
};

TEST(SnapshotFormat, BinaryRoundTripOfARichStateKeepsEveryAnswerAndFuture) {
  MachineHarness original;
  build_richer_state(original);
  ASSERT_EQ(original.machine.locks_in_lock_delay().size(), 1u);
  const std::string snap = original.machine.snapshot();
  ASSERT_TRUE(snap.starts_with(std::string("RLSB\x02", 5))) << "format 2 magic and version";
  EXPECT_EQ(snap, original.machine.snapshot()) << "deterministic";

  MachineHarness restored;
  ASSERT_TRUE(restored.run(lease(77)).outcome == Outcome::kOk);  // replaced by the restore
  Status status = restored.machine.restore(snap);
  ASSERT_TRUE(status.ok()) << status.error().message;
  restored.next_index = original.next_index;
  EXPECT_FALSE(restored.machine.lease_exists(77));
  expect_same_answers(original.machine, restored.machine);
  ASSERT_TRUE(restored.machine.check_invariants().ok());

  // The back-references rebuilt from the snapshot drive later commands the same way.
  const raft::Index delay_start = original.machine.locks_in_lock_delay()[0].started_index;
  const std::vector<Command> follow_ups = {
      ExpireLease{1, 0},  // "a" enters lock-delay 250; lease 1 leaves "e"'s queue
      EndLockDelay{"b", delay_start},
      Release{"c", 5, 0},  // not the holder
      ExpireLease{2, 0},   // leaves "a"'s queue; "e" passes to lease 3
      acquire("c", 3),
      Proclaim{"e", 3, 0, "x"},
  };
  for (const Command& command : follow_ups) {
    SCOPED_TRACE(command_name(command));
    EXPECT_EQ(original.run(command), restored.run(command));
    expect_same_answers(original.machine, restored.machine);
  }
  EXPECT_EQ(original.machine.get_lock("b").holder->lease_id, 5u);
  EXPECT_EQ(original.machine.get_election("e").leader->lease_id, 3u);
}

TEST(SnapshotFormat, EmptyMachineRoundTrips) {
  LockStateMachine empty;
  MachineHarness target;
  build_richer_state(target);
  ASSERT_TRUE(target.machine.restore(empty.snapshot()).ok());
  EXPECT_TRUE(target.machine.all_lease_ids().empty());
  EXPECT_TRUE(target.machine.list_locks("").empty());
  EXPECT_EQ(target.machine.last_modified_index(), 0u);
  EXPECT_EQ(target.machine.snapshot(), empty.snapshot());
}

TEST(SnapshotFormat, ManyLeasesEachHoldingALockRoundTripAndAreFarSmallerThanFormat1) {
  MachineHarness original;
  for (LeaseId id = 1; id <= 2000; ++id) {
    ASSERT_EQ(original.run(lease(id * 7919)).outcome, Outcome::kOk);
    ASSERT_EQ(original.run(acquire("lock-" + std::to_string(id), id * 7919)).outcome,
              Outcome::kGranted);
  }
  ASSERT_EQ(original.run(acquire("lock-1", 7919 * 2, true)).outcome, Outcome::kQueued);
  const std::string binary = original.machine.snapshot();
  const std::string msgpack = original.machine.snapshot_v1_msgpack();
  EXPECT_LT(binary.size() * 2, msgpack.size()) << binary.size() << " vs " << msgpack.size();

  LockStateMachine restored;
  ASSERT_TRUE(restored.restore(binary).ok());
  EXPECT_EQ(restored.snapshot(), binary);
  EXPECT_EQ(restored.all_lease_ids(), original.machine.all_lease_ids());
  EXPECT_EQ(restored.list_locks(""), original.machine.list_locks(""));
  EXPECT_EQ(restored.lock_waiters("lock-1"), std::vector<LeaseId>{7919 * 2});
  EXPECT_EQ(restored.get_lease(7919 * 2), original.machine.get_lease(7919 * 2));
}

TEST(SnapshotFormat, Format1MessagePackSnapshotsStillRestore) {
  MachineHarness original;
  build_richer_state(original);
  LockStateMachine from_v1;
  Status status = from_v1.restore(original.machine.snapshot_v1_msgpack());
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(from_v1.snapshot(), original.machine.snapshot());
  expect_same_answers(original.machine, from_v1);

  // A format-1 document written out by hand (as older versions stored it), independent of the
  // encoder above.
  const json document = {
      {"format", 1},
      {"last_modified_index", 4},
      {"leases", {{{"lease_id", 7}, {"ttl_ms", 5000}, {"created_index", 1}, {"revision", 2}}}},
      {"locks",
       {{{"name", "x"},
         {"revision", 2},
         {"holder", {{"lease_id", 7}, {"owner", "me"}, {"fencing_token", 2}, {"lock_delay_ms", 0}}},
         {"waiters", json::array()},
         {"delay", nullptr},
         {"last_release_lease", 0},
         {"last_release_token", 0}}}},
      {"elections",
       {{{"name", "el"},
         {"revision", 4},
         {"leader", {{"lease_id", 7}, {"value", "v"}, {"fencing_token", 3}}},
         {"candidates", json::array()}}}},
  };
  const std::vector<uint8_t> bytes = json::to_msgpack(document);
  LockStateMachine old;
  status = old.restore(std::string(bytes.begin(), bytes.end()));
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(old.last_modified_index(), 4u);
  ASSERT_TRUE(old.get_lock("x").holder.has_value());
  EXPECT_EQ(old.get_lock("x").holder->lease_id, 7u);
  EXPECT_EQ(old.get_lock("x").holder->owner, "me");
  EXPECT_EQ(old.get_lock("x").fencing_token, 2u);
  EXPECT_EQ(old.get_election("el").leader->value, "v");
  EXPECT_EQ(old.get_lease(7)->locks, std::vector<std::string>{"x"});
  EXPECT_EQ(old.get_lease(7)->elections, std::vector<std::string>{"el"});
  // Taking a snapshot afterwards writes format 2, which restores to the same state.
  LockStateMachine again;
  ASSERT_TRUE(again.restore(old.snapshot()).ok());
  EXPECT_EQ(again.snapshot_v1_msgpack(), old.snapshot_v1_msgpack());
}

TEST(SnapshotFormat, EveryTruncationOfABinarySnapshotIsRefusedAndChangesNothing) {
  MachineHarness source;
  build_richer_state(source);
  const std::string snap = source.machine.snapshot();
  Target target;
  for (size_t length = 0; length < snap.size(); ++length) {
    SCOPED_TRACE(length);
    Status status = target.h.machine.restore(std::string_view(snap).substr(0, length));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code, ErrorCode::kCorrupt);
    EXPECT_TRUE(status.error().message.starts_with("snapshot rejected: "))
        << status.error().message;
    if (length >= snapshot_codec::kMagic.size()) {
      EXPECT_NE(status.error().message.find("truncated"), std::string::npos)
          << status.error().message;
    }
  }
  target.expect_unchanged();
}

// Hand-written format-2 snapshots: lease 7 holding lock "x", in the documented layout. Each
// `Edit` changes one part so a row can break exactly that part.
struct Layout {
  uint64_t version = 2;
  uint64_t lease_count = 1;
  LeaseId lease_id = 7;
  int64_t ttl_ms = 5000;
  std::string lock_name = "x";
  uint64_t lock_flags = 1;
  LeaseId holder = 7;
  uint64_t token = 2;
  std::string waiter_count_bytes;  // empty: the varint 0
  std::string trailing;
  bool second_lease = false;
};

std::string write_layout(const Layout& l) {
  std::string out;
  ByteWriter w(&out);
  w.raw("RLSB");
  w.byte(static_cast<uint8_t>(l.version));
  w.u64(3);  // last_modified_index
  w.u64(l.lease_count);
  w.u64(l.lease_id);
  w.i64(l.ttl_ms);
  w.u64(1);  // created_index
  w.u64(2);  // revision
  if (l.second_lease) {
    w.u64(l.lease_id);
    w.i64(5000);
    w.u64(1);
    w.u64(2);
  }
  w.u64(1);  // locks
  w.str(l.lock_name);
  w.u64(2);  // revision
  w.u64(0);  // last_release_lease
  w.u64(0);  // last_release_token
  w.byte(static_cast<uint8_t>(l.lock_flags));
  w.u64(l.holder);
  w.str("me");
  w.u64(l.token);
  w.i64(0);  // lock_delay_ms
  if (l.waiter_count_bytes.empty()) {
    w.u64(0);
  } else {
    w.raw(l.waiter_count_bytes);
  }
  w.u64(0);  // elections
  w.raw(l.trailing);
  return out;
}

TEST(SnapshotFormat, HandWrittenBinarySnapshotFollowsTheDocumentedLayout) {
  LockStateMachine machine;
  Status status = machine.restore(write_layout(Layout{}));
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(machine.last_modified_index(), 3u);
  ASSERT_TRUE(machine.get_lock("x").holder.has_value());
  EXPECT_EQ(machine.get_lock("x").holder->lease_id, 7u);
  EXPECT_EQ(machine.get_lock("x").holder->owner, "me");
  EXPECT_EQ(machine.get_lock("x").fencing_token, 2u);
  EXPECT_EQ(machine.get_lease(7)->ttl_ms, 5000);
  EXPECT_EQ(machine.snapshot(), write_layout(Layout{}));
}

TEST(SnapshotFormat, CorruptBinarySnapshotsAreRefusedWithAClearErrorTable) {
  struct Row {
    const char* what;
    std::function<void(Layout&)> corrupt;
    const char* message;  // a part of the expected error
  };
  const std::vector<Row> rows = {
      {"unknown version", [](Layout& l) { l.version = 3; }, "unsupported binary snapshot format"},
      {"trailing bytes", [](Layout& l) { l.trailing = "z"; }, "trailing bytes"},
      {"unknown lock flags", [](Layout& l) { l.lock_flags = 5; }, "unknown flags"},
      {"count beyond the data", [](Layout& l) { l.lease_count = uint64_t{1} << 40; },
       "exceeds the"},
      {"lock name over the limit", [](Layout& l) { l.lock_name = std::string(257, 'n'); },
       "exceeds the limit"},
      {"number over 64 bits", [](Layout& l) { l.waiter_count_bytes = std::string(10, '\xff'); },
       "overflows 64 bits"},
      {"number not minimally encoded",
       [](Layout& l) { l.waiter_count_bytes = std::string("\x80\x00", 2); },
       "not minimally encoded"},
      {"holder lease unknown", [](Layout& l) { l.holder = 8; }, "unknown lease"},
      {"duplicate lease",
       [](Layout& l) {
         l.lease_count = 2;
         l.second_lease = true;
       },
       "not strictly ascending"},
      {"invalid lock name", [](Layout& l) { l.lock_name = "bad name"; }, "invalid name"},
      {"ttl out of range", [](Layout& l) { l.ttl_ms = -1; }, "ttl_ms out of range"},
      {"lease id zero",
       [](Layout& l) {
         l.lease_id = 0;
         l.holder = 0;
       },
       "invalid id"},
      {"token above revision", [](Layout& l) { l.token = 3; }, "fencing token out of range"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    Layout layout;
    row.corrupt(layout);
    Target target;
    Status status = target.h.machine.restore(write_layout(layout));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(status.error().message.find(row.message), std::string::npos)
        << status.error().message;
    target.expect_unchanged();
  }
}

TEST(SnapshotFormat, VarintsRoundTripAtTheirEdges) {
  const std::vector<uint64_t> unsigned_values = {
      0, 1, 127, 128, 16383, 16384, (uint64_t{1} << 53) - 1, std::numeric_limits<uint64_t>::max()};
  const std::vector<int64_t> signed_values = {0,
                                              1,
                                              -1,
                                              63,
                                              -64,
                                              64,
                                              std::numeric_limits<int64_t>::min(),
                                              std::numeric_limits<int64_t>::max()};
  std::string bytes;
  ByteWriter w(&bytes);
  ByteWriter counter(nullptr);
  for (uint64_t v : unsigned_values) {
    w.u64(v);
    counter.u64(v);
  }
  for (int64_t v : signed_values) {
    w.i64(v);
    counter.i64(v);
  }
  w.str("hello");
  counter.str("hello");
  EXPECT_EQ(counter.size(), bytes.size());
  EXPECT_EQ(w.size(), bytes.size());
  ByteReader r(bytes);
  for (uint64_t v : unsigned_values) EXPECT_EQ(*r.u64("u"), v);
  for (int64_t v : signed_values) EXPECT_EQ(*r.i64("i"), v);
  EXPECT_EQ(*r.str("s", 5), "hello");
  EXPECT_TRUE(r.expect_end().ok());
  EXPECT_EQ(r.offset(), bytes.size());
  // Small values stay small: one byte up to 127 unsigned and -64..63 signed.
  ByteWriter one_byte(nullptr);
  one_byte.u64(127);
  one_byte.i64(-64);
  one_byte.i64(63);
  EXPECT_EQ(one_byte.size(), 3u);
}

}  // namespace
}  // namespace raftlock::lockservice
