// check_fencing, check_elections, check_durability and write_failure_report on hand-made records:
// good ones pass, each kind of bad one is caught with a message naming it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "checkers.h"
#include "history_builder.h"

namespace raftlock::chaos {
namespace {

std::string explain(const Verdict& v) {
  std::string s;
  for (const auto& a : v.anomalies) s += a + "\n";
  return s;
}

bool mentions(const Verdict& v, const std::string& text) {
  for (const auto& a : v.anomalies) {
    if (a.find(text) != std::string::npos) return true;
  }
  return false;
}

// ---- Fencing ----------------------------------------------------------------------------------

FencingRecord good_fencing() {
  FencingRecord r;
  r.grants = {{1, 5, 11, 0, 10}, {2, 9, 12, 5, 30}, {3, 14, 13, 40, 50}};
  // Client 1 was paused and wrote its token late: rejected, as it must be.
  r.writes = {
      {1, 5, true, 12}, {2, 9, true, 32}, {1, 5, false, 35}, {2, 9, true, 36}, {3, 14, true, 52}};
  return r;
}

TEST(Fencing, GoodRecordPasses) {
  const Verdict v = check_fencing(good_fencing(), 3);
  EXPECT_TRUE(v.ok) << explain(v);
}

TEST(Fencing, ConcurrentGrantsMayBeInEitherTokenOrder) {
  FencingRecord r;
  r.grants = {{1, 9, 11, 0, 20}, {2, 5, 12, 10, 30}};  // overlapping: either order is fine
  const Verdict v = check_fencing(r, 2);
  EXPECT_TRUE(v.ok) << explain(v);
}

TEST(FencingCatches, DuplicateToken) {
  FencingRecord r = good_fencing();
  r.grants.push_back({4, 9, 14, 60, 70});
  const Verdict v = check_fencing(r, 1);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "two grants with token 9")) << explain(v);
}

TEST(FencingCatches, RealTimeOrderViolation) {
  FencingRecord r;
  r.grants = {{1, 20, 11, 0, 10}, {2, 15, 12, 30, 40}};  // the later grant has the smaller token
  const Verdict v = check_fencing(r, 1);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "completed before")) << explain(v);
}

TEST(FencingCatches, RegisterAcceptingASmallerToken) {
  FencingRecord r = good_fencing();
  r.writes[2].accepted = true;  // token 5 accepted after 9
  const Verdict v = check_fencing(r, 1);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "after accepting the larger token 9")) << explain(v);
}

TEST(FencingCatches, RegisterRejectingAValidToken) {
  FencingRecord r = good_fencing();
  r.writes[4].accepted = false;  // 14 is the largest yet: must be accepted
  const Verdict v = check_fencing(r, 1);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "rejected")) << explain(v);
}

TEST(FencingCatches, WriteWithATokenNeverGranted) {
  FencingRecord r = good_fencing();
  r.writes.push_back({3, 99, true, 60});
  const Verdict v = check_fencing(r, 1);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "never granted")) << explain(v);
}

TEST(FencingCatches, TooFewGrants) {
  const Verdict v = check_fencing(good_fencing(), 4);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "too little progress: 3 grants, at least 4")) << explain(v);
}

// ---- Elections --------------------------------------------------------------------------------

ElectionRecord good_election() {
  ElectionRecord r;
  r.observations = {
      {1, 1, 3, std::nullopt, "", 10},     {1, 2, 7, Holder{11, 7}, "a", 20},
      {2, 3, 7, Holder{11, 7}, "a", 25},   {2, 1, 9, std::nullopt, "", 40},
      {1, 3, 12, Holder{12, 12}, "b", 50},
  };
  r.wins = {{1, 11, 7, 5, 21}, {2, 12, 12, 8, 49}};
  return r;
}

TEST(Elections, GoodRecordPasses) {
  const Verdict v = check_elections(good_election(), true);
  EXPECT_TRUE(v.ok) << explain(v);
}

TEST(ElectionsCatches, TwoLeadersAtOneRevision) {
  ElectionRecord r = good_election();
  r.observations.push_back({3, 2, 7, Holder{12, 7}, "b", 26});
  const Verdict v = check_elections(r, false);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "two states at revision 7")) << explain(v);
}

TEST(ElectionsCatches, RevisionGoingBackwardsForAnObserver) {
  ElectionRecord r = good_election();
  r.observations.push_back({1, 1, 9, std::nullopt, "", 60});  // observer 1 saw 12 before
  const Verdict v = check_elections(r, false);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "observer 1 saw the revision go backwards")) << explain(v);
}

TEST(ElectionsCatches, MissingNoLeaderTransitionWhenRequired) {
  ElectionRecord r = good_election();
  r.observations.erase(r.observations.begin() + 3);  // the only "no leader" after a leader
  EXPECT_TRUE(check_elections(r, false).ok);
  const Verdict v = check_elections(r, true);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "no leader")) << explain(v);
}

TEST(ElectionsCatches, TwoWinsWithOneToken) {
  ElectionRecord r = good_election();
  r.wins.push_back({3, 13, 12, 45, 55});
  const Verdict v = check_elections(r, false);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "two wins with token 12")) << explain(v);
}

TEST(ElectionsCatches, WinsOutOfRealTimeOrder) {
  ElectionRecord r = good_election();
  r.wins.push_back({3, 13, 10, 60, 70});  // after the win with token 12, yet smaller
  const Verdict v = check_elections(r, false);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "completed before")) << explain(v);
}

TEST(ElectionsCatches, OneTokenHeldByTwoLeases) {
  ElectionRecord r = good_election();
  r.observations.push_back({3, 1, 8, Holder{13, 7}, "c", 30});
  const Verdict v = check_elections(r, false);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "token 7 held by two leases")) << explain(v);
}

// ---- Durability -------------------------------------------------------------------------------

ObservedState good_state() {
  ObservedState s;
  s.locks = {{"a", Holder{11, 20}, 20}, {"b", std::nullopt, 31}};
  s.live_leases = {11, 12};
  s.applied_index = 40;
  return s;
}

std::vector<AckedWrite> good_acks() {
  using K = AckedWrite::Kind;
  return {
      {K::kLeaseGranted, 11, "", 0, 1},    {K::kLeaseGranted, 12, "", 0, 2},
      {K::kLeaseGranted, 13, "", 0, 3},    {K::kLeaseRevoked, 13, "", 0, 9},
      {K::kLockGranted, 11, "a", 20, 10},  {K::kLockGranted, 12, "b", 25, 11},
      {K::kLockReleased, 12, "b", 25, 12}, {K::kLeaseGranted, 14, "", 0, 4},  // 14 expired
  };
}

TEST(Durability, GoodRestartPasses) {
  ObservedState after = good_state();
  after.applied_index = 42;  // the new leader's first entry
  const Verdict v = check_durability(good_acks(), good_state(), after);
  EXPECT_TRUE(v.ok) << explain(v);
}

TEST(DurabilityCatches, LostLockGrant) {
  ObservedState before = good_state();
  before.locks[0] = {"a", Holder{11, 18}, 18};
  ObservedState after = before;
  const Verdict v = check_durability(good_acks(), before, after);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "grant of lock a to lease 11 with token 20 is lost")) << explain(v);
}

TEST(DurabilityCatches, LostRelease) {
  ObservedState before = good_state();
  before.locks[1] = {"b", Holder{12, 25}, 25};
  const Verdict v = check_durability(good_acks(), before, before);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "release of lock b to lease 12 with token 25 is lost")) << explain(v);
}

TEST(DurabilityCatches, StateChangedAcrossRestart) {
  ObservedState after = good_state();
  after.locks[0].holder.reset();
  const Verdict v = check_durability(good_acks(), good_state(), after);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "lock a changed across the restart")) << explain(v);
}

TEST(DurabilityCatches, AckedLeaseMissing) {
  ObservedState after = good_state();
  after.live_leases = {11};
  const Verdict v = check_durability(good_acks(), good_state(), after);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "acknowledged grant of lease 12 is missing")) << explain(v);
}

TEST(DurabilityCatches, RevokedLeaseComesBack) {
  ObservedState after = good_state();
  after.live_leases = {11, 12, 13};
  const Verdict v = check_durability(good_acks(), good_state(), after);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "acknowledged revoke of lease 13 is undone")) << explain(v);
}

TEST(DurabilityCatches, AckedLockNotReadBack) {
  ObservedState before = good_state();
  before.locks.pop_back();
  const Verdict v = check_durability(good_acks(), before, before);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(mentions(v, "lock b to lease 12 with token 25: the lock was not read back"))
      << explain(v);
}

// ---- Failure report ---------------------------------------------------------------------------

TEST(FailureReport, WritesSeedVerdictAndEveryOperationField) {
  testing::HistoryBuilder b;
  b.grant(1, 11, 0, 10, 3000);
  testing::HistoryBuilder::error(b.acquire(2, "a", 12, 20, 30, 0), "lock_held", testing::H(11, 5));
  testing::HistoryBuilder::unknown(b.release(1, "a", 11, 5, 40, 50));
  Verdict verdict;
  verdict.ok = false;
  verdict.anomalies = {"lock a: something"};
  verdict.operation_ids = {2};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("chaos_report_" + std::to_string(::getpid()) + ".json"))
                               .string();
  ASSERT_TRUE(write_failure_report(path, 424242, b.history(), verdict));
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in);
  std::remove(path.c_str());
  EXPECT_EQ(j["seed"], 424242);
  EXPECT_EQ(j["verdict"]["ok"], false);
  EXPECT_EQ(j["verdict"]["anomalies"][0], "lock a: something");
  EXPECT_EQ(j["verdict"]["operation_ids"][0], 2);
  ASSERT_EQ(j["history"].size(), 3u);
  const auto& grant = j["history"][0];
  EXPECT_EQ(grant["kind"], "lease_grant");
  EXPECT_EQ(grant["ttl_ms"], 3000);
  EXPECT_EQ(grant["status"], "ok");
  const auto& held = j["history"][1];
  EXPECT_EQ(held["error_code"], "lock_held");
  EXPECT_EQ(held["holder"]["lease_id"], 11);
  EXPECT_EQ(held["holder"]["fencing_token"], 5);
  EXPECT_EQ(held["lock"], "a");
  EXPECT_EQ(held["client"], 2);
  const auto& rel = j["history"][2];
  EXPECT_EQ(rel["status"], "unknown");
  EXPECT_TRUE(rel["complete_ns"].is_null());
  EXPECT_EQ(rel["token"], 5);
  EXPECT_EQ(rel["invoke_ns"], 40);
  for (const char* field : {"id", "node", "wait_ms", "granted_token", "remaining_ms"}) {
    EXPECT_TRUE(rel.contains(field)) << field;
  }
}

TEST(FailureReport, UnwritablePathReturnsFalse) {
  EXPECT_FALSE(write_failure_report("/nonexistent-dir/x/report.json", 1, History{}, Verdict{}));
}

}  // namespace
}  // namespace raftlock::chaos
