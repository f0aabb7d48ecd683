// ConfChange codec, malformed-message rejection, and the log / progress / read-queue pieces.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "raft/core.h"
#include "raft/membership.h"
#include "raft/progress.h"
#include "raft/raft_log.h"
#include "raft/read_only.h"
#include "raft_test_util.h"

namespace raftlock::raft::testing {
namespace {

std::string msgpack(const nlohmann::json& j) {
  auto bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

// ---------------------------------------------------------------- codec

TEST(ConfChangeCodec, RoundTrip) {
  for (ConfChange cc : {ConfChange{ConfChangeType::kAddLearner, 7, "10.0.0.7:7000"},
                        ConfChange{ConfChangeType::kPromote, 7, ""},
                        ConfChange{ConfChangeType::kRemove, 1ull << 60, std::string("\0x", 2)}}) {
    auto decoded = decode_conf_change(encode_conf_change(cc));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(*decoded, cc);
  }
}

TEST(ConfChangeCodec, DecodeErrorsAreCorruptNotExceptions) {
  const std::string good = encode_conf_change(ConfChange{ConfChangeType::kRemove, 3, ""});
  std::vector<std::string> bad = {
      "",
      "not msgpack at all",
      good.substr(0, good.size() - 1),  // truncated
      good + "x",                       // trailing bytes
      msgpack(nlohmann::json::array({1, 2, 3})),
      msgpack({{"type", 9}, {"node", 3}, {"context", ""}}),      // unknown type
      msgpack({{"type", 0}, {"node", 0}, {"context", ""}}),      // node 0
      msgpack({{"type", "add"}, {"node", 3}, {"context", ""}}),  // mistyped
      msgpack({{"type", 0}, {"node", -3}, {"context", ""}}),     // negative
      msgpack({{"type", 0}, {"node", 3}}),                       // missing context
      msgpack({{"type", 0}, {"node", 3}, {"context", 5}}),       // mistyped context
  };
  for (const std::string& data : bad) {
    auto r = decode_conf_change(data);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
    EXPECT_FALSE(r.error().message.empty());
  }
}

TEST(ConfChangeCodec, UndecodableEntryInLogIsIgnoredEverywhere) {
  InitialState init;
  init.bootstrap_config = voters({1, 2});
  Core follower(test_config(2), init);
  Message a = msg(MessageType::kAppend, 1, 2, 1);
  a.entries = {Entry{1, 1, EntryType::kConfChange, "garbage"}};
  ASSERT_TRUE(follower.step(a).ok());
  EXPECT_EQ(follower.config(), voters({1, 2}));
}

TEST(Membership, ApplyConfChangeKeepsMembersSorted) {
  Configuration c = voters({2, 5});
  EXPECT_TRUE(apply_conf_change(c, {ConfChangeType::kAddLearner, 3, "x"}));
  EXPECT_TRUE(apply_conf_change(c, {ConfChangeType::kAddLearner, 1, "y"}));
  EXPECT_FALSE(apply_conf_change(c, {ConfChangeType::kAddLearner, 1, "z"}));
  EXPECT_EQ(c.ids(), (std::vector<NodeId>{1, 2, 3, 5}));
  EXPECT_TRUE(apply_conf_change(c, {ConfChangeType::kPromote, 3, ""}));
  EXPECT_FALSE(apply_conf_change(c, {ConfChangeType::kPromote, 3, ""}));
  EXPECT_EQ(c.voter_ids(), (std::vector<NodeId>{2, 3, 5}));
  EXPECT_TRUE(apply_conf_change(c, {ConfChangeType::kRemove, 2, ""}));
  EXPECT_FALSE(apply_conf_change(c, {ConfChangeType::kRemove, 2, ""}));
  EXPECT_EQ(c.ids(), (std::vector<NodeId>{1, 3, 5}));
}

// ---------------------------------------------------------------- malformed input

struct Snapshotted {
  CoreStatus status;
  bool has_ready;
};

Snapshotted observe(const Core& core) {
  return {core.status(), core.has_ready()};
}

void expect_unchanged(const Snapshotted& before, const Core& core) {
  CoreStatus now = core.status();
  EXPECT_EQ(now.term, before.status.term);
  EXPECT_EQ(now.role, before.status.role);
  EXPECT_EQ(now.vote, before.status.vote);
  EXPECT_EQ(now.leader_id, before.status.leader_id);
  EXPECT_EQ(now.commit_index, before.status.commit_index);
  EXPECT_EQ(now.last_index, before.status.last_index);
  EXPECT_EQ(now.config, before.status.config);
  EXPECT_EQ(core.has_ready(), before.has_ready);
}

TEST(Validation, MalformedMessagesAreRejectedAndChangeNothing) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  Core& f = c.core(2);
  std::vector<std::pair<std::string, Message>> cases;
  auto base = [](MessageType t) { return msg(t, 1, 2, 5); };
  {
    Message m = base(MessageType::kAppend);
    m.to = 3;
    cases.push_back({"wrong recipient", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.from = 0;
    cases.push_back({"sender zero", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.from = 2;
    cases.push_back({"from self", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.type = static_cast<MessageType>(42);
    cases.push_back({"unknown type", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.index = 1;
    m.log_term = 1;
    m.entries = {entry(2, 5), entry(4, 5)};
    cases.push_back({"gap in entries", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.index = 1;
    m.log_term = 1;
    m.entries = {entry(3, 5)};
    cases.push_back({"entries not after prev", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.index = 1;
    m.log_term = 1;
    m.entries = {entry(2, 6)};
    cases.push_back({"entry term above message term", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.index = 1;
    m.log_term = 3;
    m.entries = {entry(2, 4), entry(3, 2)};
    cases.push_back({"entry terms decreasing", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.index = 1;
    m.log_term = 1;
    m.entries = {Entry{5, 2, static_cast<EntryType>(9), ""}};
    cases.push_back({"unknown entry type", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.index = 0;
    m.log_term = 2;
    cases.push_back({"index 0 with a term", m});
  }
  {
    Message m = base(MessageType::kAppend);
    m.term = 0;
    cases.push_back({"append term 0", m});
  }
  {
    Message m = base(MessageType::kHeartbeat);
    m.entries = {entry(2, 1)};
    cases.push_back({"entries on heartbeat", m});
  }
  {
    Message m = base(MessageType::kSnapshot);
    cases.push_back({"snapshot without snapshot", m});
  }
  {
    Message m = base(MessageType::kSnapshot);
    m.snapshot =
        Snapshot{SnapshotMeta{5, 9, voters({1, 2, 3})}, std::make_shared<const std::string>("x")};
    cases.push_back({"snapshot term above message term", m});
  }
  {
    Message m = base(MessageType::kSnapshot);
    m.snapshot = Snapshot{SnapshotMeta{5, 2, voters({1, 2, 3})}, nullptr};
    cases.push_back({"snapshot without data", m});
  }
  {
    Message m = base(MessageType::kVote);
    m.log_term = 9;
    cases.push_back({"vote with last term above its term", m});
  }
  {
    Message m = base(MessageType::kPreVote);
    m.term = 0;
    cases.push_back({"pre-vote term 0", m});
  }
  {
    Message m = base(MessageType::kHeartbeatResponse);
    m.from = 9;
    cases.push_back({"response from non-member", m});
  }
  {
    Message m = base(MessageType::kReadIndex);
    m.from = 9;
    cases.push_back({"read index from non-member", m});
  }
  for (auto& [name, m] : cases) {
    Snapshotted before = observe(f);
    Status st = f.step(m);
    ASSERT_FALSE(st.ok()) << name;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << name;
    EXPECT_FALSE(st.error().message.empty()) << name;
    expect_unchanged(before, f);
  }
  // The leader also refuses an acknowledgement for entries it never had.
  Message beyond = msg(MessageType::kAppendResponse, 2, 1, 1);
  beyond.index = 99;
  Snapshotted before = observe(c.core(1));
  Status st = c.core(1).step(beyond);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  expect_unchanged(before, c.core(1));
  EXPECT_EQ(c.core(1).status().progress.at(2).match, 1u);
}

TEST(Validation, LeaderMessagesFromNonMembersAreAccepted) {
  // A joining node knows nobody yet; it must accept the leader's appends.
  InitialState init;
  Core joiner(test_config(4), init);
  Message a = msg(MessageType::kAppend, 1, 4, 1);
  a.entries = {entry(1, 1)};
  ASSERT_TRUE(joiner.step(a).ok());
  EXPECT_EQ(joiner.last_index(), 1u);
  EXPECT_EQ(joiner.leader_id(), 1u);
}

TEST(Validation, RandomGarbageNeverCrashes) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.tick_all();
  std::mt19937_64 rng(7);
  for (int i = 0; i < 5000; ++i) {
    NodeId to = 1 + rng() % 3;
    Message m = msg(static_cast<MessageType>(rng() % 13), 1 + rng() % 4, to, rng() % 4);
    m.index = rng() % 8;
    m.log_term = rng() % 4;
    m.commit = rng() % 8;
    m.reject = rng() % 2;
    m.reject_term = rng() % 4;
    m.reject_hint = rng() % 8;
    if (rng() % 3 == 0)
      m.context = (rng() % 2) ? "transfer" : "read-round:" + std::to_string(rng() % 5);
    if (m.type == MessageType::kAppend && rng() % 2) {
      Term t = std::max<Term>(m.log_term, 1);
      for (Index k = 0; k < rng() % 3; ++k)
        m.entries.push_back(entry(m.index + 1 + k, std::min(t, m.term)));
    }
    if (m.type == MessageType::kSnapshot) {
      m.snapshot = Snapshot{SnapshotMeta{1 + rng() % 6, 1 + rng() % 3, voters({1, 2, 3})},
                            std::make_shared<const std::string>("s")};
    }
    (void)c.core(to).step(m);
    if (rng() % 4 == 0) c.core(to).tick();
    if (rng() % 10 == 0) (void)c.core(to).propose("p");
    if (rng() % 20 == 0) (void)c.core(to).read_index("r");
    c.drop_all();
  }
  // Every node still has a consistent view of itself.
  for (NodeId id : {1, 2, 3}) {
    EXPECT_LE(c.core(id).commit_index(), c.core(id).last_index());
    EXPECT_LE(c.core(id).applied_index(), c.core(id).commit_index());
  }
}

// ---------------------------------------------------------------- pieces

TEST(RaftLog, TermLookupsAroundTheSnapshot) {
  RaftLog log;
  log.reset(5, 2);
  log.append(entry(6, 2, "xx"));
  log.append(entry(7, 3, "xx"));
  log.append(entry(8, 3, "xx"));
  EXPECT_FALSE(log.term(4).has_value());  // compacted
  EXPECT_EQ(log.term(5), 2u);
  EXPECT_EQ(log.term(8), 3u);
  EXPECT_FALSE(log.term(9).has_value());
  EXPECT_EQ(log.last_index_of_term(3), 8u);
  EXPECT_EQ(log.last_index_of_term(2), 6u);
  EXPECT_FALSE(log.last_index_of_term(1).has_value());
  EXPECT_FALSE(log.last_index_of_term(4).has_value());
  EXPECT_EQ(log.first_index_of_term_run(8), 7u);
  EXPECT_EQ(log.first_index_of_term_run(6), 6u);  // not into the compacted prefix
  RaftLog only_snapshot;
  only_snapshot.reset(5, 2);
  EXPECT_EQ(only_snapshot.last_index_of_term(2), 5u);
  EXPECT_EQ(log.slice(6, 9, 0).size(), 1u);  // at least one entry
  EXPECT_EQ(log.slice(6, 9, 4).size(), 2u);
  EXPECT_EQ(log.slice(6, 99, 100).size(), 3u);
  log.compact(7);
  EXPECT_EQ(log.first_index(), 8u);
  EXPECT_EQ(log.snapshot_term(), 3u);
  log.compact(99);  // out of range: ignored
  EXPECT_EQ(log.first_index(), 8u);
}

TEST(Progress, InflightsWindow) {
  Inflights in(3);
  in.add(2);
  in.add(4);
  in.add(6);
  EXPECT_TRUE(in.full());
  in.free_up_to(4);
  EXPECT_EQ(in.count(), 1u);
  in.free_first();
  in.free_first();
  EXPECT_EQ(in.count(), 0u);
  Inflights zero(0);  // treated as 1
  zero.add(1);
  EXPECT_TRUE(zero.full());
}

TEST(Progress, ProbeIgnoresRejectionsOfOtherAppends) {
  PeerProgress pr(4);
  pr.match = 3;
  pr.next = 8;
  EXPECT_FALSE(pr.maybe_decrease_to(5, 4));  // we last sent prev 7, not 5
  EXPECT_TRUE(pr.maybe_decrease_to(7, 2));
  EXPECT_EQ(pr.next, 4u);  // never below match + 1
  pr.become_snapshot(10);
  EXPECT_TRUE(pr.is_paused());
  pr.become_probe();
  EXPECT_EQ(pr.next, 11u);  // after the snapshot
}

TEST(ReadOnly, ReleasesInOrderOnQuorum) {
  ReadOnlyQueue q;
  Configuration conf = voters({1, 2, 3});
  q.add({"a", 1});
  ASSERT_TRUE(q.should_send_now());
  auto ctx1 = q.heartbeat_context(5);
  ASSERT_TRUE(ctx1.has_value());
  q.add({"b", 2});
  EXPECT_FALSE(q.should_send_now());
  EXPECT_TRUE(q.release(conf, 1).empty());
  q.record_ack(2, *ctx1);
  auto out = q.release(conf, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].index, 5u);
  EXPECT_EQ(q.pending_reads(), 1u);
  EXPECT_TRUE(q.should_send_now());
  q.clear();
  EXPECT_EQ(q.pending_reads(), 0u);
  EXPECT_FALSE(q.heartbeat_context(1).has_value());
}

}  // namespace
}  // namespace raftlock::raft::testing
