#include "http/router.h"

namespace raftlock::http {

void Router::add(const std::string& method, const std::string& pattern, Handler handler) {
  routes_.push_back(Route{method, pattern, std::regex(pattern), std::move(handler)});
}

Router::Outcome Router::dispatch(const httplib::Request& request,
                                 httplib::Response& response) const {
  bool path_known = false;
  for (const Route& route : routes_) {
    std::smatch match;
    if (!std::regex_match(request.path, match, route.regex)) continue;
    path_known = true;
    // HEAD is served by the GET handler (httplib drops the body).
    if (route.method != request.method && !(request.method == "HEAD" && route.method == "GET")) {
      continue;
    }
    route.handler(request, response, match);
    return Outcome::kHandled;
  }
  return path_known ? Outcome::kWrongMethod : Outcome::kNoPath;
}

std::string Router::allowed_methods(const std::string& path) const {
  std::string out;
  for (const Route& route : routes_) {
    if (!std::regex_match(path, route.regex)) continue;
    if (out.find(route.method) != std::string::npos) continue;
    if (!out.empty()) out += ", ";
    out += route.method;
  }
  return out;
}

std::string Router::route_of(const std::string& path) const {
  for (const Route& route : routes_) {
    if (std::regex_match(path, route.regex)) return route.pattern;
  }
  return "unmatched";
}

}  // namespace raftlock::http
