#include "http/json_io.h"

namespace raftlock::http {

void write_json(httplib::Response& response, int status, const Json& body) {
  response.status = status;
  response.set_content(body.dump(), "application/json");
}

void write_error(httplib::Response& response, int status, const std::string& code,
                 const std::string& message, const Json& extra) {
  Json body = extra.is_object() ? extra : Json::object();
  body["error"] = {{"code", code}, {"message", message}};
  write_json(response, status, body);
}

std::optional<Json> parse_body(const httplib::Request& request, httplib::Response& response) {
  if (request.body.empty()) return Json::object();
  Json body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    write_error(response, 400, "malformed_json", "The request body is not valid JSON.");
    return std::nullopt;
  }
  if (!body.is_object()) {
    write_error(response, 400, "invalid_argument", "The request body must be a JSON object.");
    return std::nullopt;
  }
  return body;
}

Result<std::optional<int64_t>> get_int(const Json& body, const std::string& field, int64_t min,
                                       int64_t max) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<int64_t>{};
  if (!it->is_number_integer()) {
    return make_error(ErrorCode::kInvalidArgument, "Field '" + field + "' must be an integer.");
  }
  int64_t value = 0;
  if (it->is_number_unsigned()) {
    const auto u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      return make_error(ErrorCode::kInvalidArgument, "Field '" + field + "' must be between " +
                                                         std::to_string(min) + " and " +
                                                         std::to_string(max) + ".");
    }
    value = static_cast<int64_t>(u);
  } else {
    value = it->get<int64_t>();
  }
  if (value < min || value > max) {
    return make_error(ErrorCode::kInvalidArgument, "Field '" + field + "' must be between " +
                                                       std::to_string(min) + " and " +
                                                       std::to_string(max) + ".");
  }
  return std::optional<int64_t>{value};
}

Result<std::optional<std::string>> get_string(const Json& body, const std::string& field,
                                              size_t max_length) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) {
    return make_error(ErrorCode::kInvalidArgument, "Field '" + field + "' must be a string.");
  }
  auto value = it->get<std::string>();
  if (value.size() > max_length) {
    return make_error(ErrorCode::kInvalidArgument, "Field '" + field + "' must be at most " +
                                                       std::to_string(max_length) + " characters.");
  }
  return std::optional<std::string>{std::move(value)};
}

void write_status_error(httplib::Response& response, const Error& error) {
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      write_error(response, 400, "invalid_argument", error.message);
      return;
    case ErrorCode::kNotFound:
      write_error(response, 404, "not_found", error.message);
      return;
    case ErrorCode::kNotLeader:
    case ErrorCode::kNoLeader:
    case ErrorCode::kDropped:
    case ErrorCode::kTimeout:
      response.set_header("Retry-After", "1");
      write_error(response, 503, "no_leader", error.message);
      return;
    case ErrorCode::kUnavailable:
    case ErrorCode::kBusy:
      response.set_header("Retry-After", "1");
      write_error(response, 503, "unavailable", error.message);
      return;
    case ErrorCode::kCorrupt:
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      write_error(response, 500, "internal", error.message);
      return;
  }
  write_error(response, 500, "internal", error.message);
}

}  // namespace raftlock::http
