// http::ClientPool: reuse of idle keep-alive clients, the idle cap, and stale clients dropped.
#include "http/client_pool.h"

#include <gtest/gtest.h>

#include <thread>

namespace raftlock::http {
namespace {

TEST(ClientPool, AReturnedClientIsReusedForTheSameAddressOnly) {
  ClientPool pool;
  auto first = pool.take("127.0.0.1:1");
  pool.give_back("127.0.0.1:1", std::move(first));
  auto other = pool.take("127.0.0.1:2");  // another address: a new client
  EXPECT_EQ(pool.created(), 2u);
  auto again = pool.take("127.0.0.1:1");  // the returned one
  EXPECT_EQ(pool.created(), 2u);
  auto fresh = pool.take("127.0.0.1:1");  // none idle: a new one
  EXPECT_EQ(pool.created(), 3u);
}

TEST(ClientPool, KeepsAtMostTheIdleCap) {
  ClientPoolOptions options;
  options.max_idle_per_address = 2;
  ClientPool pool(options);
  std::vector<std::unique_ptr<raft::transport::StreamClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(pool.take("a:1"));
  for (auto& client : clients) pool.give_back("a:1", std::move(client));
  clients.clear();
  for (int i = 0; i < 3; ++i) clients.push_back(pool.take("a:1"));
  EXPECT_EQ(pool.created(), 4u);  // two were kept, the third returned one was closed
}

TEST(ClientPool, AClientIdleLongerThanTheMaxAgeIsNotReused) {
  ClientPoolOptions options;
  options.max_idle_age = std::chrono::milliseconds(20);
  ClientPool pool(options);
  pool.give_back("a:1", pool.take("a:1"));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  auto next = pool.take("a:1");
  EXPECT_EQ(pool.created(), 2u);
}

}  // namespace
}  // namespace raftlock::http
