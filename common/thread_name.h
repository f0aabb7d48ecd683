// set_thread_name: names the calling thread (top -H, perf, gdb); Linux keeps 15 characters.
#pragma once

#include <pthread.h>

#include <string>

namespace raftlock {

inline void set_thread_name(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace raftlock
