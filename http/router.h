// http::Router — maps (method, path pattern) to handlers, telling 404 (no path) from 405 (method).
#pragma once

#include <httplib.h>

#include <functional>
#include <regex>
#include <string>
#include <vector>

namespace raftlock::http {

class Router {
 public:
  using Handler =
      std::function<void(const httplib::Request&, httplib::Response&, const std::smatch& params)>;

  // `pattern` is an ECMAScript regex matched against the whole path; groups become params.
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
    std::regex regex;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace raftlock::http
