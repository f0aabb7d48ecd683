#include "bench/lockbench/http_connection.h"

#include <httplib.h>

#include <sstream>

namespace raftlock::bench {

std::vector<Endpoint> parse_endpoints(const std::string& text) {
  std::vector<Endpoint> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0) return {};
    Endpoint e;
    e.host = item.substr(0, colon);
    try {
      e.port = std::stoi(item.substr(colon + 1));
    } catch (...) {
      return {};
    }
    if (e.port <= 0 || e.port > 65535) return {};
    out.push_back(e);
  }
  return out;
}

HttpConnection::HttpConnection(std::vector<Endpoint> endpoints, size_t first_endpoint,
                               std::chrono::milliseconds read_timeout)
    : endpoints_(std::move(endpoints)),
      current_(first_endpoint % endpoints_.size()),
      read_timeout_(read_timeout) {
  connect_current();
}

HttpConnection::~HttpConnection() = default;

void HttpConnection::connect_current() {
  const Endpoint& e = endpoints_[current_];
  client_ = std::make_unique<httplib::Client>(e.host, e.port);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  client_->set_connection_timeout(std::chrono::milliseconds(500));
  client_->set_read_timeout(read_timeout_);
  client_->set_write_timeout(std::chrono::seconds(5));
}

void HttpConnection::rotate() {
  current_ = (current_ + 1) % endpoints_.size();
  connect_current();
}

namespace {
HttpAnswer to_answer(const httplib::Result& r) {
  HttpAnswer a;
  if (!r) return a;
  a.transport_ok = true;
  a.status = r->status;
  a.body = r->body;
  return a;
}
}  // namespace

HttpAnswer HttpConnection::post(const std::string& path, const std::string& body) {
  HttpAnswer a = to_answer(client_->Post(path, body, "application/json"));
  if (!a.transport_ok) rotate();
  return a;
}

HttpAnswer HttpConnection::get(const std::string& path) {
  HttpAnswer a = to_answer(client_->Get(path));
  if (!a.transport_ok) rotate();
  return a;
}

HttpAnswer HttpConnection::del(const std::string& path) {
  HttpAnswer a = to_answer(client_->Delete(path));
  if (!a.transport_ok) rotate();
  return a;
}

}  // namespace raftlock::bench
