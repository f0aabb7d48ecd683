// HTTP contract tests for /v1/elections against a real 3-node raftlockd cluster: campaign,
// proclaim, resign (FIFO hand-over), get, observe long-poll and server-sent events.
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"
#include "tests/integration/http_test_support.h"
#include "tests/support/loopback_client.h"

namespace raftlock::testing {
namespace {

using namespace std::chrono_literals;

// One server-sent event: its id, event name and JSON data.
struct SseEvent {
  std::string id;
  std::string event;
  Json data;
};

class HttpElections : public SharedClusterTest {
 protected:
  uint64_t create_lease(int node, int64_t ttl_ms = 60000) {
    auto reply = post(node, "/v1/leases", {{"ttl_ms", ttl_ms}});
    EXPECT_EQ(reply.status, 201) << reply.raw;
    return reply.body.is_object() ? reply.body.value("lease_id", uint64_t{0}) : 0;
  }

  // Campaigns once for `lease` and returns the leader's fencing token (0 on failure).
  uint64_t campaign(int node, const std::string& name, uint64_t lease, const std::string& value) {
    auto reply =
        post(node, "/v1/elections/" + name + "/campaign", {{"lease_id", lease}, {"value", value}});
    EXPECT_EQ(reply.status, 200) << reply.raw;
    return reply.body.is_object() && reply.body["leader"].is_object()
               ? reply.body["leader"].value("fencing_token", uint64_t{0})
               : 0;
  }

  uint64_t revision(int node, const std::string& name) {
    return get(node, "/v1/elections/" + name).body.value("revision", uint64_t{0});
  }

  uint64_t applied_index(int node) {
    return cluster_->status(node).value("applied_index", uint64_t{0});
  }

  // Waits until the leader has applied past `index` (a campaign sent after reading it is queued).
  bool wait_applied_past(uint64_t index) {
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      if (applied_index(leader_) > index) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

TEST_F(HttpElections, CampaignElectsAndEveryNodeReadsTheLeader) {
  const uint64_t lease = create_lease(leader_);
  auto reply = post(follower_, "/v1/elections/primary.a/campaign",
                    {{"lease_id", lease}, {"value", "host-a:5432"}});
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body.size(), 2u) << reply.raw;
  EXPECT_EQ(reply.body["name"], "primary.a");
  const Json& leader = reply.body["leader"];
  EXPECT_EQ(leader.size(), 3u) << reply.raw;
  EXPECT_EQ(leader["value"], "host-a:5432");
  EXPECT_EQ(leader["lease_id"], lease);
  const uint64_t token = leader["fencing_token"].get<uint64_t>();
  EXPECT_GT(token, 0u);
  for (int node : {leader_, follower_, other_follower_}) {
    auto seen = get(node, "/v1/elections/primary.a");
    ASSERT_EQ(seen.status, 200) << seen.raw;
    EXPECT_EQ(seen.body, (Json{{"name", "primary.a"}, {"leader", leader}, {"revision", token}}));
  }
  auto lease_view = get(other_follower_, "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(lease_view.body["elections"], (Json{"primary.a"}));
}

TEST_F(HttpElections, CampaignWithTtlCreatesALeaseAndIsIdempotentForTheSameLease) {
  auto first =
      post(leader_, "/v1/elections/primary.ttl/campaign", {{"ttl_ms", 60000}, {"value", "x"}});
  ASSERT_EQ(first.status, 200) << first.raw;
  const uint64_t lease = first.body["leader"]["lease_id"].get<uint64_t>();
  auto lease_view = get(follower_, "/v1/leases/" + std::to_string(lease));
  ASSERT_EQ(lease_view.status, 200) << lease_view.raw;
  EXPECT_EQ(lease_view.body["ttl_ms"], 60000);
  EXPECT_EQ(lease_view.body["elections"], (Json{"primary.ttl"}));
  for (int node : {follower_, leader_}) {
    auto again =
        post(node, "/v1/elections/primary.ttl/campaign", {{"lease_id", lease}, {"value", "x"}});
    ASSERT_EQ(again.status, 200) << again.raw;
    EXPECT_EQ(again.body, first.body);
  }
}

TEST_F(HttpElections, CampaignThatIsNotElectedAnswersNotLeaderWithTheLeader) {
  const uint64_t winner = create_lease(leader_);
  const uint64_t loser = create_lease(leader_);
  const uint64_t token = campaign(leader_, "primary.busy", winner, "w");
  const Json leader = {{"value", "w"}, {"lease_id", winner}, {"fencing_token", token}};
  auto at_once =
      post(follower_, "/v1/elections/primary.busy/campaign", {{"lease_id", loser}, {"value", "l"}});
  expect_error(at_once, 409, "not_leader");
  EXPECT_EQ(at_once.body["leader"], leader);
  const auto started = Clock::now();
  auto waited = post(leader_, "/v1/elections/primary.busy/campaign",
                     {{"lease_id", loser}, {"value", "l"}, {"wait_ms", 400}});
  expect_error(waited, 409, "not_leader");
  EXPECT_EQ(waited.body["leader"], leader);
  EXPECT_GE(ms_since(started), 400);
  // The loser left the queue: when the winner resigns nobody takes over.
  auto resigned = post(follower_, "/v1/elections/primary.busy/resign",
                       {{"lease_id", winner}, {"fencing_token", token}});
  ASSERT_EQ(resigned.status, 200) << resigned.raw;
  EXPECT_EQ(get(other_follower_, "/v1/elections/primary.busy").body["leader"], nullptr);
}

TEST_F(HttpElections, ProclaimChangesTheValueOnlyForTheLeader) {
  const uint64_t lease = create_lease(leader_);
  const uint64_t other = create_lease(leader_);
  const uint64_t token = campaign(follower_, "primary.proclaim", lease, "v1");
  const uint64_t before = revision(leader_, "primary.proclaim");
  auto proclaimed = post(follower_, "/v1/elections/primary.proclaim/proclaim",
                         {{"lease_id", lease}, {"fencing_token", token}, {"value", "v2"}});
  ASSERT_EQ(proclaimed.status, 200) << proclaimed.raw;
  EXPECT_EQ(proclaimed.body["leader"]["value"], "v2");
  auto seen = get(other_follower_, "/v1/elections/primary.proclaim");
  EXPECT_EQ(seen.body["leader"],
            (Json{{"value", "v2"}, {"lease_id", lease}, {"fencing_token", token}}));
  EXPECT_GT(seen.body["revision"].get<uint64_t>(), before);

  const Json leader = {{"value", "v2"}, {"lease_id", lease}, {"fencing_token", token}};
  auto wrong_token = post(leader_, "/v1/elections/primary.proclaim/proclaim",
                          {{"lease_id", lease}, {"fencing_token", token + 77}, {"value", "v3"}});
  expect_error(wrong_token, 409, "not_leader");
  EXPECT_EQ(wrong_token.body["leader"], leader);
  auto wrong_lease = post(follower_, "/v1/elections/primary.proclaim/proclaim",
                          {{"lease_id", other}, {"fencing_token", token}, {"value", "v3"}});
  expect_error(wrong_lease, 409, "not_leader");
  EXPECT_EQ(wrong_lease.body["leader"], leader);
  auto nobody = post(leader_, "/v1/elections/primary.never/proclaim",
                     {{"lease_id", other}, {"fencing_token", 5}, {"value", "v"}});
  expect_error(nobody, 409, "not_leader");
  EXPECT_EQ(nobody.body["leader"], nullptr);
  EXPECT_EQ(get(leader_, "/v1/elections/primary.proclaim").body["leader"]["value"], "v2");
}

TEST_F(HttpElections, ResignHandsLeadershipToTheNextCandidateInOrder) {
  const std::string name = "primary.fifo";
  const uint64_t first = create_lease(leader_);
  uint64_t token = campaign(leader_, name, first, "first");
  const std::vector<int> via = {follower_, other_follower_};
  std::vector<uint64_t> leases;
  std::vector<std::future<HttpReply>> parked;
  for (size_t i = 0; i < via.size(); ++i) {
    leases.push_back(create_lease(leader_));
    const uint64_t applied = applied_index(leader_);
    const int node = via[i];
    const uint64_t lease = leases.back();
    parked.push_back(std::async(std::launch::async, [this, node, lease, i, name] {
      return post(node, "/v1/elections/" + name + "/campaign",
                  {{"lease_id", lease}, {"value", "c" + std::to_string(i)}, {"wait_ms", 30000}},
                  60s);
    }));
    // The next candidate campaigns only once this one's campaign entered the log.
    ASSERT_TRUE(wait_applied_past(applied));
  }
  uint64_t resigning = first;
  for (size_t i = 0; i < via.size(); ++i) {
    auto resigned = post(leader_, "/v1/elections/" + name + "/resign",
                         {{"lease_id", resigning}, {"fencing_token", token}});
    ASSERT_EQ(resigned.status, 200) << resigned.raw;
    EXPECT_EQ(resigned.body["leader"]["lease_id"], leases[i]) << "the next in line took over";
    ASSERT_EQ(parked[i].wait_for(10s), std::future_status::ready) << "candidate " << i;
    auto elected = parked[i].get();
    ASSERT_EQ(elected.status, 200) << elected.raw;
    EXPECT_EQ(elected.body["leader"]["lease_id"], leases[i]);
    EXPECT_EQ(elected.body["leader"]["value"], "c" + std::to_string(i));
    const uint64_t next = elected.body["leader"]["fencing_token"].get<uint64_t>();
    EXPECT_GT(next, token);
    token = next;
    resigning = leases[i];
  }
  // The last one resigns: no leader.
  auto last = post(follower_, "/v1/elections/" + name + "/resign",
                   {{"lease_id", resigning}, {"fencing_token", token}});
  ASSERT_EQ(last.status, 200) << last.raw;
  EXPECT_EQ(last.body["leader"], nullptr);
  EXPECT_EQ(get(leader_, "/v1/elections/" + name).body["leader"], nullptr);
}

TEST_F(HttpElections, CampaignsBeyondTheServersThreadsWaitWithoutHoldingOne) {
  // The client port serves requests on 512 threads. 600 candidates wait for one election on a
  // follower: if each held a thread while it waited, the 513th on would wait for one, and so
  // would every request after them, for the candidates' whole wait.
  constexpr int kCandidates = 600;
  const std::string name = "primary.crowd";
  const uint64_t first = create_lease(leader_);
  const uint64_t token = campaign(leader_, name, first, "first");
  ASSERT_GT(token, 0u);
  std::vector<int> waiting;
  for (int i = 0; i < kCandidates; ++i) {
    const int sock = connect_loopback(cluster_->client_port(follower_));
    ASSERT_GE(sock, 0) << "connection " << i;
    waiting.push_back(sock);
    // Their leases end on their own 15 s after the test, and their waits with them.
    const std::string body =
        "{\"ttl_ms\": 15000, \"wait_ms\": 15000, \"value\": \"c" + std::to_string(i) + "\"}";
    const std::string request = "POST /v1/elections/" + name +
                                "/campaign HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                "application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(::send(sock, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }
  // Within post()'s own limit, far below the candidates' 15 s wait.
  auto status = get(follower_, "/v1/status");
  EXPECT_EQ(status.status, 200) << status.raw;
  auto lease = post(follower_, "/v1/leases", {{"ttl_ms", 5000}});
  EXPECT_EQ(lease.status, 201) << lease.raw;
  std::vector<pollfd> polls;
  for (int sock : waiting) polls.push_back({sock, POLLIN, 0});
  ASSERT_EQ(::poll(polls.data(), polls.size(), 0), 0) << "a candidate was answered too early";

  // The leader resigns: the first candidate in line is elected and answered, the others wait on.
  auto resigned = post(leader_, "/v1/elections/" + name + "/resign",
                       {{"lease_id", first}, {"fencing_token", token}});
  ASSERT_EQ(resigned.status, 200) << resigned.raw;
  ASSERT_TRUE(resigned.body["leader"].is_object()) << resigned.raw;
  ASSERT_EQ(::poll(polls.data(), polls.size(), 10000), 1) << "one candidate answered";
  for (const pollfd& p : polls) {
    if (!(p.revents & POLLIN)) continue;
    const std::string answer = read_response(p.fd);
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
    const Json body = Json::parse(answer.substr(answer.find("\r\n\r\n") + 4), nullptr, false);
    ASSERT_TRUE(body.is_object()) << answer;
    EXPECT_EQ(body["leader"], resigned.body["leader"]) << "the next in line is the one answered";
  }
  for (int sock : waiting) ::close(sock);
}

TEST_F(HttpElections, ResignByANonLeaderIsNotLeader) {
  const uint64_t lease = create_lease(leader_);
  const uint64_t other = create_lease(leader_);
  const uint64_t token = campaign(leader_, "primary.resign", lease, "v");
  auto wrong = post(follower_, "/v1/elections/primary.resign/resign",
                    {{"lease_id", other}, {"fencing_token", token}});
  expect_error(wrong, 409, "not_leader");
  EXPECT_EQ(wrong.body["leader"]["lease_id"], lease);
  auto right = post(follower_, "/v1/elections/primary.resign/resign",
                    {{"lease_id", lease}, {"fencing_token", token}});
  ASSERT_EQ(right.status, 200) << right.raw;
  // A retry after success: not the leader any more, the election has none.
  auto retry = post(leader_, "/v1/elections/primary.resign/resign",
                    {{"lease_id", lease}, {"fencing_token", token}});
  expect_error(retry, 409, "not_leader");
  EXPECT_EQ(retry.body["leader"], nullptr);
}

TEST_F(HttpElections, AnElectionNeverUsedReadsNoLeaderWithRevisionZero) {
  for (int node : {leader_, follower_}) {
    for (const std::string query : {"", "?consistency=stale"}) {
      auto reply = get(node, "/v1/elections/never.used.election" + query);
      ASSERT_EQ(reply.status, 200) << reply.raw;
      EXPECT_EQ(reply.body,
                (Json{{"name", "never.used.election"}, {"leader", nullptr}, {"revision", 0}}));
    }
  }
}

TEST_F(HttpElections, ObserveAnswersAsSoonAsTheRevisionPassesAfterRevision) {
  const uint64_t lease = create_lease(leader_);
  const uint64_t token = campaign(leader_, "observe.change", lease, "old");
  const uint64_t rev = revision(leader_, "observe.change");
  const auto started = Clock::now();
  auto observed = std::async(std::launch::async, [&] {
    return get(follower_,
               "/v1/elections/observe.change/observe?after_revision=" + std::to_string(rev) +
                   "&wait_ms=20000",
               30s);
  });
  // Nothing changed yet: the long poll is still open.
  EXPECT_NE(observed.wait_for(300ms), std::future_status::ready);
  ASSERT_EQ(post(other_follower_, "/v1/elections/observe.change/proclaim",
                 {{"lease_id", lease}, {"fencing_token", token}, {"value", "new"}})
                .status,
            200);
  ASSERT_EQ(observed.wait_for(10s), std::future_status::ready);
  auto reply = observed.get();
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_LT(ms_since(started), 10000) << "answered at wait_ms, not at the change";
  EXPECT_EQ(reply.body["name"], "observe.change");
  EXPECT_EQ(reply.body["leader"]["value"], "new");
  EXPECT_GT(reply.body["revision"].get<uint64_t>(), rev);
}

TEST_F(HttpElections, ObserveAnswersAtWaitMsWithTheUnchangedState) {
  const uint64_t lease = create_lease(leader_);
  campaign(leader_, "observe.quiet", lease, "same");
  const auto current = get(leader_, "/v1/elections/observe.quiet").body;
  const uint64_t rev = current["revision"].get<uint64_t>();
  for (int node : {leader_, follower_}) {
    const auto started = Clock::now();
    auto reply =
        get(node, "/v1/elections/observe.quiet/observe?after_revision=" + std::to_string(rev) +
                      "&wait_ms=400");
    const int64_t took = ms_since(started);
    ASSERT_EQ(reply.status, 200) << reply.raw;
    EXPECT_EQ(reply.body, current);
    EXPECT_GE(took, 400);
    EXPECT_LT(took, 3000);
  }
  // An older after_revision answers at once with the current state.
  const auto started = Clock::now();
  auto at_once = get(follower_, "/v1/elections/observe.quiet/observe?after_revision=" +
                                    std::to_string(rev - 1) + "&wait_ms=20000");
  ASSERT_EQ(at_once.status, 200) << at_once.raw;
  EXPECT_EQ(at_once.body, current);
  EXPECT_LT(ms_since(started), 5000);
}

TEST_F(HttpElections, ObserveReportsNoLeaderAfterAResignWithoutSuccessor) {
  const uint64_t lease = create_lease(leader_);
  const uint64_t token = campaign(follower_, "observe.resign", lease, "v");
  const uint64_t rev = revision(leader_, "observe.resign");
  auto observed = std::async(std::launch::async, [&] {
    return get(other_follower_,
               "/v1/elections/observe.resign/observe?after_revision=" + std::to_string(rev) +
                   "&wait_ms=20000",
               30s);
  });
  EXPECT_NE(observed.wait_for(200ms), std::future_status::ready);
  ASSERT_EQ(post(leader_, "/v1/elections/observe.resign/resign",
                 {{"lease_id", lease}, {"fencing_token", token}})
                .status,
            200);
  ASSERT_EQ(observed.wait_for(10s), std::future_status::ready);
  auto reply = observed.get();
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["leader"], nullptr);
  EXPECT_GT(reply.body["revision"].get<uint64_t>(), rev);
}

TEST_F(HttpElections, ObserveReportsNoLeaderAfterTheLeadersLeaseExpires) {
  const auto started = Clock::now();
  auto elected = post(follower_, "/v1/elections/observe.expiry/campaign",
                      {{"ttl_ms", 1000}, {"value", "short-lived"}});
  ASSERT_EQ(elected.status, 200) << elected.raw;
  const uint64_t rev = revision(leader_, "observe.expiry");
  auto reply = get(other_follower_,
                   "/v1/elections/observe.expiry/observe?after_revision=" + std::to_string(rev) +
                       "&wait_ms=8000",
                   15s);
  const int64_t took = ms_since(started);
  ASSERT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body["leader"], nullptr) << "the lease did not expire within wait_ms";
  EXPECT_GT(reply.body["revision"].get<uint64_t>(), rev);
  EXPECT_GE(took, 1000) << "the leadership ended before the lease's ttl";
  EXPECT_LT(took, 1000 + 2000);
}

TEST_F(HttpElections, ObserveWithEventStreamStreamsEveryChange) {
  const std::string name = "observe.sse";
  const uint64_t lease = create_lease(leader_);
  const uint64_t token = campaign(leader_, name, lease, "v1");

  std::atomic<int> events_seen{0};
  std::string content_type;
  auto streamed = std::async(std::launch::async, [&] {
    std::vector<SseEvent> events;
    std::string buffer;
    httplib::Client client("127.0.0.1", cluster_->client_port(follower_));
    client.set_read_timeout(15s);
    auto result = client.Get(
        "/v1/elections/" + name + "/observe", {{"Accept", "text/event-stream"}},
        [&](const httplib::Response& response) {
          content_type = response.get_header_value("Content-Type");
          return response.status == 200;
        },
        [&](const char* data, size_t length) {
          buffer.append(data, length);
          size_t end;
          while ((end = buffer.find("\n\n")) != std::string::npos) {
            const std::string block = buffer.substr(0, end);
            buffer.erase(0, end + 2);
            SseEvent event;
            bool has_data = false;
            size_t start = 0;
            while (start <= block.size()) {
              size_t stop = block.find('\n', start);
              if (stop == std::string::npos) stop = block.size();
              const std::string line = block.substr(start, stop - start);
              if (line.rfind("id: ", 0) == 0) event.id = line.substr(4);
              if (line.rfind("event: ", 0) == 0) event.event = line.substr(7);
              if (line.rfind("data: ", 0) == 0) {
                event.data = Json::parse(line.substr(6), nullptr, false);
                has_data = true;
              }
              start = stop + 1;
            }
            if (!has_data) continue;  // a ": keepalive" comment
            events.push_back(event);
            events_seen = static_cast<int>(events.size());
            if (events.size() == 3) return false;  // the client leaves
          }
          return true;
        });
    return events;
  });
  // Each change is made once the stream delivered the one before (the stream reports states; two
  // changes in the same instant may reach a slow reader as one event).
  auto wait_for_events = [&](int count) {
    const auto deadline = Clock::now() + 10s;
    while (events_seen < count && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return events_seen >= count;
  };
  ASSERT_TRUE(wait_for_events(1)) << "no first event";
  ASSERT_EQ(post(leader_, "/v1/elections/" + name + "/proclaim",
                 {{"lease_id", lease}, {"fencing_token", token}, {"value", "v2"}})
                .status,
            200);
  ASSERT_TRUE(wait_for_events(2)) << "the proclaim was not streamed";
  ASSERT_EQ(post(follower_, "/v1/elections/" + name + "/resign",
                 {{"lease_id", lease}, {"fencing_token", token}})
                .status,
            200);
  ASSERT_EQ(streamed.wait_for(15s), std::future_status::ready);
  const auto events = streamed.get();
  EXPECT_NE(content_type.find("text/event-stream"), std::string::npos) << content_type;
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].data["leader"]["value"], "v1") << "the current state comes first";
  EXPECT_EQ(events[1].data["leader"]["value"], "v2");
  EXPECT_EQ(events[2].data["leader"], nullptr);
  uint64_t last = 0;
  for (const auto& event : events) {
    EXPECT_EQ(event.event, "election");
    EXPECT_EQ(event.data["name"], name);
    EXPECT_EQ(event.id, std::to_string(event.data["revision"].get<uint64_t>()));
    EXPECT_GT(event.data["revision"].get<uint64_t>(), last);
    last = event.data["revision"].get<uint64_t>();
  }
  // The node still serves after the client left mid-stream.
  EXPECT_EQ(get(follower_, "/v1/elections/" + name).status, 200);
}

}  // namespace
}  // namespace raftlock::testing
