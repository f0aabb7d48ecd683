// serve_on_loopback: starts an httplib server (or a StreamServer) on 127.0.0.1 at a port the
// kernel picked, serving on `thread`, and returns that port once it runs (0 if it could not bind
// or listen). httplib's own backlog of 5 would drop the SYNs of a dozen connections opened at
// once (each then retried a second later), so the socket is re-listened with SOMAXCONN, as the
// real servers do.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

namespace raftlock::testing {

inline int serve_on_loopback(httplib::Server& server, std::thread& thread) {
  int listen_sock = -1;
  server.set_socket_options([&listen_sock](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_sock = sock;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0 || ::listen(listen_sock, SOMAXCONN) != 0) return 0;
  thread = std::thread([&server] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

}  // namespace raftlock::testing
