// JSON request parsing and the contract's response/error shapes, shared by every handler.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"

namespace raftlock::http {

using Json = nlohmann::json;

// Writes `body` with `status` as application/json.
void write_json(httplib::Response& response, int status, const Json& body);

// Writes the contract's error shape: {"error": {"code", "message"}} plus `extra` fields merged in
// at the top level (e.g. "holder", "leader").
void write_error(httplib::Response& response, int status, const std::string& code,
                 const std::string& message, const Json& extra = Json::object());

// Parses a request body as a JSON object. A missing/empty body is {}. On failure writes a 400
// (malformed_json, or invalid_argument when it is valid JSON but not an object) and returns
// nullopt.
std::optional<Json> parse_body(const httplib::Request& request, httplib::Response& response);

// Typed field access. Each returns nullopt and writes 400 invalid_argument naming the field when
// the field has the wrong type or is outside [min, max]; `missing` is returned when absent.
Result<std::optional<int64_t>> get_int(const Json& body, const std::string& field, int64_t min,
                                       int64_t max);
Result<std::optional<std::string>> get_string(const Json& body, const std::string& field,
                                              size_t max_length);

// Maps a Result error that reached the HTTP room to status and code.
void write_status_error(httplib::Response& response, const Error& error);

}  // namespace raftlock::http
