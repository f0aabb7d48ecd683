// set_thread_name: names the calling thread (top -H, perf, gdb); Linux keeps 15 characters.
#pragma once

#include <pthread.h>

#include <string>
#include <thread>

namespace raftlock {

inline void set_thread_name(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

// Names `thread` from its creator: the name is there as soon as this returns.
inline void set_thread_name(std::thread& thread, const std::string& name) {
  pthread_setname_np(thread.native_handle(), name.substr(0, 15).c_str());
}

}  // namespace raftlock
