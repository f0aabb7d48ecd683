// http::Router — maps (method, path pattern) to handlers, telling 404 (no path) from 405 (method).
#pragma once

#include <httplib.h>

#include <functional>
#include <string>
#include <vector>

namespace raftlock::http {

class Router {
 public:
  // params[0] is the whole path, params[i] the text matched by the pattern's i-th group.
  using Params = std::vector<std::string>;
  using Handler =
      std::function<void(const httplib::Request&, httplib::Response&, const Params& params)>;

  // The one group a pattern may use: a path segment (possibly empty, never containing '/').
  static constexpr const char* kSegment = "([^/]*)";

  // `pattern` is matched against the whole path: literal text, where each kSegment matches one
  // path segment's text. A group must end its segment (be followed by '/' or the end); any
  // other regex syntax is refused with std::invalid_argument (a programming error).
  void add(const std::string& method, const std::string& pattern, Handler handler);

  enum class Outcome { kHandled, kNoPath, kWrongMethod };
  Outcome dispatch(const httplib::Request& request, httplib::Response& response) const;
  // The allowed methods for `path` (for the 405 Allow header).
  std::string allowed_methods(const std::string& path) const;
  // The route pattern that matched `path`, for metrics labels (never the raw path).
  std::string route_of(const std::string& path) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> literals;  // the text around the groups: groups + 1 pieces
    Handler handler;
    bool match(const std::string& path, Params* params) const;
  };
  std::vector<Route> routes_;
};

}  // namespace raftlock::http
