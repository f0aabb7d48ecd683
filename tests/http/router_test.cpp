// http::Router: whole-path matching of literal patterns with path-segment groups, 404 vs 405,
// HEAD served by GET, and refusal of patterns it cannot match exactly.
#include "http/router.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace raftlock::http {
namespace {

const std::string kSeg = Router::kSegment;

struct Recorded {
  std::string route;
  Router::Params params;
};

Router make_router(Recorded& seen) {
  Router router;
  auto record = [&seen](std::string route) {
    return [&seen, route](const httplib::Request&, httplib::Response& res,
                          const Router::Params& params) {
      seen.route = route;
      seen.params = params;
      res.status = 200;
    };
  };
  router.add("GET", "/healthz", record("healthz"));
  router.add("GET", "/v1/locks", record("list"));
  router.add("GET", "/v1/locks/" + kSeg, record("get"));
  router.add("POST", "/v1/locks/" + kSeg + "/acquire", record("acquire"));
  router.add("DELETE", "/v1/leases/" + kSeg, record("revoke"));
  router.add("GET", "/v1/leases/" + kSeg, record("get-lease"));
  return router;
}

Router::Outcome call(const Router& router, const std::string& method, const std::string& path) {
  httplib::Request req;
  req.method = method;
  req.path = path;
  httplib::Response res;
  return router.dispatch(req, res);
}

TEST(Router, MatchesWholePathsAndCapturesOneSegmentPerGroup) {
  Recorded seen;
  const Router router = make_router(seen);
  ASSERT_EQ(call(router, "POST", "/v1/locks/db-primary/acquire"), Router::Outcome::kHandled);
  EXPECT_EQ(seen.route, "acquire");
  EXPECT_EQ(seen.params, (Router::Params{"/v1/locks/db-primary/acquire", "db-primary"}));

  ASSERT_EQ(call(router, "GET", "/v1/locks/x"), Router::Outcome::kHandled);
  EXPECT_EQ(seen.route, "get");
  EXPECT_EQ(seen.params.at(1), "x");
  ASSERT_EQ(call(router, "GET", "/v1/locks"), Router::Outcome::kHandled);
  EXPECT_EQ(seen.route, "list");
  // An empty segment is captured as empty (the handler refuses the name, not the router).
  ASSERT_EQ(call(router, "GET", "/v1/locks/"), Router::Outcome::kHandled);
  EXPECT_EQ(seen.route, "get");
  EXPECT_EQ(seen.params.at(1), "");
}

TEST(Router, NoPartialMatchesNoSlashesInGroupsAndUnknownPathsAre404) {
  Recorded seen;
  const Router router = make_router(seen);
  EXPECT_EQ(call(router, "GET", "/v1/locks/a/b"), Router::Outcome::kNoPath);
  EXPECT_EQ(call(router, "POST", "/v1/locks/a/acquire/more"), Router::Outcome::kNoPath);
  EXPECT_EQ(call(router, "POST", "/v1/locks/a/acquir"), Router::Outcome::kNoPath);
  EXPECT_EQ(call(router, "GET", "/healthz/"), Router::Outcome::kNoPath);
  EXPECT_EQ(call(router, "GET", "/v1/lock"), Router::Outcome::kNoPath);
  EXPECT_EQ(call(router, "GET", ""), Router::Outcome::kNoPath);
  EXPECT_EQ(seen.route, "") << "no handler ran";
}

TEST(Router, AKnownPathWithAnotherMethodIs405WithItsAllowedMethods) {
  Recorded seen;
  const Router router = make_router(seen);
  EXPECT_EQ(call(router, "PUT", "/v1/leases/7"), Router::Outcome::kWrongMethod);
  EXPECT_EQ(router.allowed_methods("/v1/leases/7"), "DELETE, GET");
  EXPECT_EQ(call(router, "GET", "/v1/locks/a/acquire"), Router::Outcome::kWrongMethod);
  EXPECT_EQ(router.allowed_methods("/v1/locks/a/acquire"), "POST");
  EXPECT_EQ(router.allowed_methods("/nowhere"), "");
  // HEAD is answered by the GET handler.
  ASSERT_EQ(call(router, "HEAD", "/healthz"), Router::Outcome::kHandled);
  EXPECT_EQ(seen.route, "healthz");
}

TEST(Router, RouteOfNamesThePatternNeverThePath) {
  Recorded seen;
  const Router router = make_router(seen);
  EXPECT_EQ(router.route_of("/v1/locks/secret-name/acquire"), "/v1/locks/" + kSeg + "/acquire");
  EXPECT_EQ(router.route_of("/v1/locks"), "/v1/locks");
  EXPECT_EQ(router.route_of("/v1/locks/a/b/c"), "unmatched");
}

TEST(Router, PatternsItCannotMatchExactlyAreRefused) {
  Router router;
  auto nothing = [](const httplib::Request&, httplib::Response&, const Router::Params&) {};
  EXPECT_THROW(router.add("GET", "/v1/(locks|leases)", nothing), std::invalid_argument);
  EXPECT_THROW(router.add("GET", "/v1/.*", nothing), std::invalid_argument);
  EXPECT_THROW(router.add("GET", "/v1/locks/" + kSeg + "x", nothing), std::invalid_argument);
  EXPECT_NO_THROW(router.add("GET", "/v1/locks/" + kSeg + "/" + kSeg, nothing));
  Router::Params params;
  httplib::Request req;
  req.method = "GET";
  req.path = "/v1/locks/a/b";
  httplib::Response res;
  EXPECT_EQ(router.dispatch(req, res), Router::Outcome::kHandled);
}

}  // namespace
}  // namespace raftlock::http
