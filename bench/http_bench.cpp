// http_bench — server CPU per request of StreamServer's direct path next to httplib's own request
// processing, on one keep-alive loopback connection. Both servers run in this process with the
// same handler (registered the way ApiServer registers its handlers), and rounds alternate
// between them so that a machine that speeds up or slows down affects both alike.
//
// Usage: http_bench [requests per round, default 20000] [rounds, default 5]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "raft/transport/stream_server.h"

namespace {

using raftlock::raft::transport::StreamServer;
using Clock = std::chrono::steady_clock;

double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A handler with the shape of an acquire: read the body, answer a small JSON object.
void answer(const httplib::Request& req, httplib::Response& res) {
  std::string body =
      "{\"name\":\"" + req.path +
      "\",\"fencing_token\":42,\"lease_id\":7,\"bytes\":" + std::to_string(req.body.size()) + "}";
  res.status = 200;
  res.set_content(body, "application/json");
}

struct Server {
  StreamServer server;
  std::thread thread;
  int port = 0;

  explicit Server(bool direct) {
    server.Post(".*", [](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& read) {
      if (req.has_header("Content-Length")) {
        std::string body;
        read([&body](const char* data, size_t n) {
          body.append(data, n);
          return true;
        });
        const_cast<httplib::Request&>(req).body = std::move(body);
      }
      answer(req, res);
    });
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                    std::exception_ptr) { res.status = 500; });
    server.set_keep_alive_max_count(1000000);
    if (direct) {
      server.set_direct_handler([](const httplib::Request& req, httplib::Response& res) {
        answer(req, res);
        return true;
      });
    }
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Server() {
    server.stop();
    server.shut_down_connections();
    thread.join();
  }
};

int connect_to(int port) {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  const int yes = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  return sock;
}

struct Round {
  double server_cpu_us = 0;  // per request
  double wall_us = 0;        // per request (round trip)
};

// Sends `requests` acquire-shaped requests one after another; the server's CPU is the process's
// CPU minus this (client) thread's.
Round run(int port, int requests) {
  const int sock = connect_to(port);
  const std::string body = R"({"lease_id":7,"owner":"bench"})";
  const std::string request =
      "POST /v1/locks/bench/acquire HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  char buffer[4096];
  const double process0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  const double client0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
  const auto started = Clock::now();
  for (int i = 0; i < requests; ++i) {
    if (::send(sock, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      std::perror("send");
      std::exit(1);
    }
    // One answer: the header block, then Content-Length bytes of body.
    std::string got;
    size_t need = std::string::npos;
    while (need == std::string::npos || got.size() < need) {
      const ssize_t n = ::recv(sock, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        std::fprintf(stderr, "the server closed the connection\n");
        std::exit(1);
      }
      got.append(buffer, static_cast<size_t>(n));
      const size_t head_end = got.find("\r\n\r\n");
      const size_t length_at = got.find("Content-Length: ");
      if (head_end != std::string::npos && length_at != std::string::npos) {
        need = head_end + 4 + std::strtoul(got.c_str() + length_at + 16, nullptr, 10);
      }
    }
  }
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  const double client = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - client0;
  const double process = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - process0;
  ::close(sock);
  return Round{(process - client) / requests * 1e6, wall / requests * 1e6};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  Server direct(true);
  Server plain(false);
  run(direct.port, 1000);  // warm-up
  run(plain.port, 1000);
  std::vector<double> direct_cpu, direct_wall, plain_cpu, plain_wall;
  for (int r = 0; r < rounds; ++r) {
    const Round d = run(direct.port, requests);
    const Round p = run(plain.port, requests);
    direct_cpu.push_back(d.server_cpu_us);
    direct_wall.push_back(d.wall_us);
    plain_cpu.push_back(p.server_cpu_us);
    plain_wall.push_back(p.wall_us);
    std::printf("round %d: direct %.2f us CPU, %.2f us round trip; httplib %.2f us CPU, %.2f us\n",
                r + 1, d.server_cpu_us, d.wall_us, p.server_cpu_us, p.wall_us);
  }
  std::printf("\n%-26s %16s %16s\n", "per request (median)", "server CPU (us)", "round trip (us)");
  std::printf("%-26s %16.2f %16.2f\n", "direct path", median(direct_cpu), median(direct_wall));
  std::printf("%-26s %16.2f %16.2f\n", "httplib process_request", median(plain_cpu),
              median(plain_wall));
  std::printf("direct requests served: %zu (expected %d)\n", direct.server.direct_requests(),
              requests * rounds + 1000);
  return 0;
}
