// check_linearizable on hand-made histories: good ones (reordering, unknowns, expiry, retries)
// pass; bad ones (stale reads, overlapping holders, tokens backwards, lost writes) are caught.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "checkers.h"
#include "history_builder.h"

namespace raftlock::chaos {
namespace {

using testing::H;
using testing::HistoryBuilder;

std::string explain(const Verdict& v) {
  std::string s;
  for (const auto& a : v.anomalies) s += a + "\n";
  return s;
}

void expect_linearizable(const History& h) {
  const Verdict v = check_linearizable(h, std::chrono::seconds(10));
  EXPECT_TRUE(v.ok) << explain(v);
  EXPECT_FALSE(v.inconclusive);
  EXPECT_TRUE(v.anomalies.empty());
}

// Not linearizable, decided (not a budget exhaustion), and the anomaly names `culprit`.
void expect_caught(const History& h, uint64_t culprit) {
  const Verdict v = check_linearizable(h, std::chrono::seconds(10));
  EXPECT_FALSE(v.ok);
  EXPECT_FALSE(v.inconclusive) << explain(v);
  ASSERT_FALSE(v.anomalies.empty());
  EXPECT_NE(std::find(v.operation_ids.begin(), v.operation_ids.end(), culprit),
            v.operation_ids.end())
      << "operation " << culprit << " not named in:\n"
      << explain(v);
}

// ---- Good histories ---------------------------------------------------------------------------

TEST(Linearizable, EmptyHistoryIsLinearizable) {
  expect_linearizable(History{});
}

TEST(Linearizable, SequentialAcquireReadReleaseRead) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.read(2, "a", 40, 50, H(11, 5));
  b.release(1, "a", 11, 5, 60, 70);
  b.read(2, "a", 80, 90, std::nullopt);
  b.acquire(1, "a", 11, 100, 110, 9);
  b.read(2, "a", 120, 130, H(11, 9));
  expect_linearizable(b.history());
}

TEST(Linearizable, ConcurrentOperationsAreReordered) {
  // The acquire completes after both reads, yet one read saw it and the other did not; and the
  // reads are listed in the opposite order of their linearization.
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.read(2, "a", 25, 60, H(11, 5));
  b.acquire(1, "a", 11, 20, 100, 5);
  b.read(3, "a", 30, 90, std::nullopt);
  b.release(1, "a", 11, 5, 110, 120);
  expect_linearizable(b.history());
}

TEST(Linearizable, TouchingIntervalsCountAsConcurrent) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.read(2, "a", 20, 50, H(11, 5));  // completes exactly when the acquire is invoked
  b.acquire(1, "a", 11, 50, 60, 5);
  expect_linearizable(b.history());
}

TEST(Linearizable, ContendedAcquiresOneWinsOthersSeeIt) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.grant(3, 13, 0, 10);
  HistoryBuilder::error(b.acquire(1, "a", 11, 20, 60, 0), "lock_held", H(12, 7));
  b.acquire(2, "a", 12, 20, 70, 7);
  HistoryBuilder::error(b.acquire(3, "a", 13, 20, 80, 0), "lock_held", H(12, 7));
  b.release(2, "a", 12, 7, 90, 100);
  b.acquire(3, "a", 13, 110, 120, 15);
  HistoryBuilder::error(b.release(1, "a", 11, 7, 130, 140), "not_holder", H(13, 15));
  expect_linearizable(b.history());
}

TEST(Linearizable, UnknownAcquireThatTookEffectIsPinnedByLaterObservations) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  HistoryBuilder::unknown(b.acquire(1, "a", 11, 20, 30, 0));
  b.read(2, "a", 100, 110, H(11, 7));
  HistoryBuilder::error(b.acquire(2, "a", 12, 120, 130, 0), "lock_held", H(11, 7));
  b.release(1, "a", 11, 7, 140, 150);
  b.read(2, "a", 160, 170, std::nullopt);
  b.grant(2, 12, 105, 115);
  expect_linearizable(b.history());
}

TEST(Linearizable, UnknownAcquireThatDidNotTakeEffect) {
  // Had the unknown acquire granted lease 11, lease 12's grant would need 11 to have ended, but
  // 11 keeps answering ok: so it never took effect.
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  HistoryBuilder::unknown(b.acquire(1, "a", 11, 20, 30, 0));
  b.acquire(2, "a", 12, 40, 50, 8);
  b.keepalive(1, 11, 60, 70);
  b.read(3, "a", 80, 90, H(12, 8));
  expect_linearizable(b.history());
}

TEST(Linearizable, UnknownReleaseThatTookEffect) {
  // The lock reads free while its holder's lease is provably alive: only the unknown release
  // explains it.
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  HistoryBuilder::unknown(b.release(1, "a", 11, 5, 40, 50));
  b.read(2, "a", 60, 70, std::nullopt);
  b.keepalive(1, 11, 80, 90);
  expect_linearizable(b.history());
}

TEST(Linearizable, UnknownGrantThatTookEffect) {
  HistoryBuilder b;
  HistoryBuilder::unknown(b.grant(1, 11, 0, 10));
  b.acquire(1, "a", 11, 20, 30, 5);
  b.keepalive(1, 11, 40, 50);
  expect_linearizable(b.history());
}

TEST(Linearizable, LeaseExpiryFreesTheLockForAnother) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.read(3, "a", 40, 50, std::nullopt);  // 11 expired
  b.acquire(2, "a", 12, 60, 70, 9);
  HistoryBuilder::error(b.keepalive(1, 11, 80, 90), "lease_not_found");
  HistoryBuilder::error(b.release(1, "a", 11, 5, 100, 110), "not_holder", H(12, 9));
  HistoryBuilder::error(b.acquire(1, "a", 11, 120, 130, 0), "lease_not_found");
  expect_linearizable(b.history());
}

TEST(Linearizable, IdempotentRetries) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(1, 11, 20, 30);  // same ttl: the same lease
  b.acquire(1, "a", 11, 40, 50, 5);
  b.acquire(1, "a", 11, 60, 70, 5);  // already holds it: the same token
  b.release(1, "a", 11, 5, 80, 90);
  b.release(1, "a", 11, 5, 100, 110);  // retry of the release
  b.grant(2, 12, 0, 10);
  b.acquire(2, "a", 12, 120, 130, 20);
  b.release(1, "a", 11, 5, 140, 150);  // still the last release: still ok
  b.keepalive(1, 11, 160, 170);
  HistoryBuilder::error(b.grant(1, 11, 180, 190, 5000), "lease_exists");
  expect_linearizable(b.history());
}

TEST(Linearizable, RevokeReleasesAndLeaseIdMayBeReusedAfterwards) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.revoke(1, 11, 40, 50);
  b.read(2, "a", 60, 70, std::nullopt);
  HistoryBuilder::error(b.revoke(1, 11, 80, 90), "lease_not_found");
  b.grant(1, 11, 100, 110);  // a new lease with the old id
  b.acquire(1, "a", 11, 120, 130, 12);
  expect_linearizable(b.history());
}

TEST(Linearizable, IndependentLocksAndLeaseOnlyPartitions) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.grant(3, 13, 0, 10);  // never used with a lock
  b.acquire(1, "a", 11, 20, 30, 5);
  b.acquire(2, "b", 12, 20, 30, 5);  // tokens are per lock here: equal is fine
  b.keepalive(3, 13, 40, 50);
  b.read(4, "a", 60, 70, H(11, 5));
  b.read(4, "b", 80, 90, H(12, 5));
  expect_linearizable(b.history());
}

TEST(Linearizable, UnknownOperationsOfEveryKindMayBeIgnored) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  HistoryBuilder::unknown(b.read(2, "a", 5, 6, std::nullopt));
  HistoryBuilder::unknown(b.keepalive(1, 11, 20, 30));
  HistoryBuilder::unknown(b.release(1, "a", 11, 3, 25, 30));
  HistoryBuilder::unknown(b.revoke(3, 11, 30, 40));
  b.acquire(1, "a", 11, 50, 60, 5);
  b.read(2, "a", 70, 80, H(11, 5));
  expect_linearizable(b.history());
}

TEST(Linearizable, LockHeldWithoutHolderDuringLockDelay) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  HistoryBuilder::error(b.acquire(2, "a", 12, 40, 50, 0), "lock_held", std::nullopt);
  expect_linearizable(b.history());
}

// ---- Bad histories ----------------------------------------------------------------------------

TEST(LinearizableCatches, StaleReadAfterALaterAcquire) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.release(1, "a", 11, 5, 40, 50);
  b.acquire(2, "a", 12, 60, 70, 8);
  const uint64_t stale = b.read(3, "a", 80, 90, H(11, 5)).id;
  expect_caught(b.history(), stale);
}

TEST(LinearizableCatches, StaleReadOfFreeAfterAcquireWhileLeaseAlive) {
  // A lost acknowledged grant: the read shows free although the holder's lease is alive after.
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.read(2, "a", 40, 50, std::nullopt);
  const uint64_t alive = b.keepalive(1, 11, 60, 70).id;
  expect_caught(b.history(), alive);
}

TEST(LinearizableCatches, TwoHoldersWhileTheFirstLeaseIsAlive) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.acquire(2, "a", 12, 40, 50, 8);
  const uint64_t alive = b.keepalive(1, 11, 60, 70).id;
  expect_caught(b.history(), alive);
}

TEST(LinearizableCatches, TwoHoldersAndTheFirstReleasesOkAfterwards) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.acquire(2, "a", 12, 40, 50, 8);
  const uint64_t rel = b.release(1, "a", 11, 5, 60, 70).id;
  expect_caught(b.history(), rel);
}

TEST(LinearizableCatches, TokenGoingBackwards) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 10);
  b.release(1, "a", 11, 10, 40, 50);
  const uint64_t back = b.acquire(2, "a", 12, 60, 70, 8).id;
  expect_caught(b.history(), back);
}

TEST(LinearizableCatches, TokenBackwardsEvenThroughAnUnknownGrant) {
  // The unknown acquire may have granted lease 12 some token, but one larger than 10, not 4.
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 10);
  b.release(1, "a", 11, 10, 40, 50);
  HistoryBuilder::unknown(b.acquire(2, "a", 12, 60, 70, 0));
  const uint64_t read = b.read(3, "a", 80, 90, H(12, 4)).id;
  expect_caught(b.history(), read);
}

TEST(LinearizableCatches, LostAcknowledgedRelease) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  b.release(1, "a", 11, 5, 40, 50);
  const uint64_t read = b.read(2, "a", 60, 70, H(11, 5)).id;
  expect_caught(b.history(), read);
}

TEST(LinearizableCatches, LostAcknowledgedLeaseGrant) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  const uint64_t acq =
      HistoryBuilder::error(b.acquire(1, "a", 11, 20, 30, 0), "lease_not_found").id;
  const uint64_t ka = b.keepalive(1, 11, 40, 50).id;
  const Verdict v = check_linearizable(b.history());
  EXPECT_FALSE(v.ok);
  EXPECT_FALSE(v.inconclusive);
  const bool named =
      std::find(v.operation_ids.begin(), v.operation_ids.end(), acq) != v.operation_ids.end() ||
      std::find(v.operation_ids.begin(), v.operation_ids.end(), ka) != v.operation_ids.end();
  EXPECT_TRUE(named) << explain(v);
}

TEST(LinearizableCatches, LeaseAnswersOkAfterRevoke) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.revoke(1, 11, 20, 30);
  const uint64_t ka = b.keepalive(1, 11, 40, 50).id;
  expect_caught(b.history(), ka);
}

TEST(LinearizableCatches, LeaseAcquiresAfterItWasReportedGone) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  HistoryBuilder::error(b.keepalive(1, 11, 20, 30), "lease_not_found");
  const uint64_t acq = b.acquire(1, "a", 11, 40, 50, 5).id;
  expect_caught(b.history(), acq);
}

TEST(LinearizableCatches, LockHeldNamingTheWrongHolder) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.grant(2, 12, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  const uint64_t held =
      HistoryBuilder::error(b.acquire(2, "a", 12, 40, 50, 0), "lock_held", H(11, 6)).id;
  expect_caught(b.history(), held);
}

TEST(LinearizableCatches, NotHolderAnsweredToTheHolder) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  const uint64_t rel =
      HistoryBuilder::error(b.release(1, "a", 11, 5, 40, 50), "not_holder", H(11, 5)).id;
  expect_caught(b.history(), rel);
}

TEST(LinearizableCatches, ReacquireReturningAnotherToken) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "a", 11, 20, 30, 5);
  const uint64_t again = b.acquire(1, "a", 11, 40, 50, 6).id;
  b.keepalive(1, 11, 60, 70);
  expect_caught(b.history(), again);
}

TEST(LinearizableCatches, LeaseExistsForALeaseThatDoesNotExist) {
  HistoryBuilder b;
  const uint64_t exists = HistoryBuilder::error(b.grant(1, 11, 0, 10), "lease_exists").id;
  expect_caught(b.history(), exists);
}

TEST(LinearizableCatches, ReadOfAHolderThatNeverAcquired) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  const uint64_t read = b.read(2, "a", 20, 30, H(11, 3)).id;
  expect_caught(b.history(), read);
}

TEST(LinearizableCatches, MalformedHistoryIsRefusedWithAClearReason) {
  HistoryBuilder b;
  const uint64_t bad = b.grant(1, 11, 50, 10).id;  // completes before its invocation
  const Verdict v = check_linearizable(b.history());
  EXPECT_FALSE(v.ok);
  ASSERT_EQ(v.anomalies.size(), 1u);
  EXPECT_NE(v.anomalies[0].find("completes before it was invoked"), std::string::npos);
  EXPECT_EQ(v.operation_ids, std::vector<uint64_t>{bad});
}

TEST(LinearizableCatches, ExplanationNamesTheLockThePrefixAndTheStuckOperation) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 10);
  b.acquire(1, "orders", 11, 20, 30, 5);
  b.release(1, "orders", 11, 5, 40, 50);
  const uint64_t read = b.read(2, "orders", 60, 70, H(11, 5)).id;
  const Verdict v = check_linearizable(b.history());
  ASSERT_FALSE(v.ok);
  ASSERT_GE(v.anomalies.size(), 2u);
  EXPECT_NE(v.anomalies[0].find("lock orders"), std::string::npos) << explain(v);
  EXPECT_NE(v.anomalies[0].find("longest linearizable prefix has 3 of 4"), std::string::npos)
      << explain(v);
  EXPECT_NE(v.anomalies[1].find("#" + std::to_string(read)), std::string::npos) << explain(v);
  EXPECT_EQ(v.operation_ids, std::vector<uint64_t>{read});
}

TEST(LinearizableBudget, ExhaustedBudgetIsInconclusiveNotAnAnomaly) {
  HistoryBuilder b;
  b.grant(1, 11, 0, 1);
  for (int i = 0; i < 3000; ++i) b.read(2, "a", 10 + 10 * i, 15 + 10 * i, std::nullopt);
  const Verdict v = check_linearizable(b.history(), std::chrono::milliseconds(0));
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(v.inconclusive);
  EXPECT_TRUE(v.operation_ids.empty());
}

}  // namespace
}  // namespace raftlock::chaos
