// Result<T>: a value or an Error, for errors that cross a room's wall (no exceptions through
// loops).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace raftlock {

// Error codes shared by every room. Rooms map them to their own surface (HTTP codes, logs).
enum class ErrorCode {
  kInvalidArgument,  // caller passed something malformed
  kNotFound,         // the named object does not exist
  kNotLeader,        // this node is not the Raft leader (retry at the leader)
  kNoLeader,         // no leader is known right now (retry later)
  kDropped,      // a proposal or read was dropped (leadership lost, entry overwritten): retryable
  kBusy,         // a conflicting operation is in progress (e.g. a membership change)
  kCorrupt,      // persisted data failed validation
  kIo,           // an operating-system or SQLite error
  kUnavailable,  // the node is shutting down or stopped
  kTimeout,      // the operation did not finish in time
  kInternal,     // a bug
};

const char* error_code_name(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result of an operation with no value.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

}  // namespace raftlock
