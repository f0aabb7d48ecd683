#include "http/router.h"

#include <algorithm>
#include <stdexcept>
#include <string_view>

namespace raftlock::http {

void Router::add(const std::string& method, const std::string& pattern, Handler handler) {
  Route route{method, pattern, {}, std::move(handler)};
  const std::string_view group = kSegment;
  std::string_view rest = pattern;
  while (true) {
    const size_t at = rest.find(group);
    const std::string_view literal = rest.substr(0, at);
    if (literal.find_first_of("()[]{}*+?.\\^$|") != std::string_view::npos) {
      throw std::invalid_argument("route pattern " + pattern + " uses regex syntax other than " +
                                  std::string(group));
    }
    route.literals.emplace_back(literal);
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + group.size());
    if (!rest.empty() && rest.front() != '/') {
      throw std::invalid_argument("route pattern " + pattern +
                                  ": a group must end its path segment");
    }
  }
  routes_.push_back(std::move(route));
}

bool Router::Route::match(const std::string& path, Params* params) const {
  std::string_view rest = path;
  if (params != nullptr) {
    params->clear();
    params->push_back(path);
  }
  for (size_t i = 0; i < literals.size(); ++i) {
    const std::string& literal = literals[i];
    if (rest.substr(0, literal.size()) != literal) return false;
    rest.remove_prefix(literal.size());
    if (i + 1 == literals.size()) break;
    // A group: the rest of this path segment (greedy; the next literal starts with '/').
    const size_t end = std::min(rest.find('/'), rest.size());
    if (params != nullptr) params->emplace_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  return rest.empty();
}

Router::Outcome Router::dispatch(const httplib::Request& request,
                                 httplib::Response& response) const {
  bool path_known = false;
  Params params;
  for (const Route& route : routes_) {
    if (!route.match(request.path, &params)) continue;
    path_known = true;
    // HEAD is served by the GET handler (httplib drops the body).
    if (route.method != request.method && !(request.method == "HEAD" && route.method == "GET")) {
      continue;
    }
    route.handler(request, response, params);
    return Outcome::kHandled;
  }
  return path_known ? Outcome::kWrongMethod : Outcome::kNoPath;
}

std::string Router::allowed_methods(const std::string& path) const {
  std::string out;
  for (const Route& route : routes_) {
    if (!route.match(path, nullptr)) continue;
    if (out.find(route.method) != std::string::npos) continue;
    if (!out.empty()) out += ", ";
    out += route.method;
  }
  return out;
}

std::string Router::route_of(const std::string& path) const {
  for (const Route& route : routes_) {
    if (route.match(path, nullptr)) return route.pattern;
  }
  return "unmatched";
}

}  // namespace raftlock::http
