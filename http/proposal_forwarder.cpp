#include "http/proposal_forwarder.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "http/json_io.h"
#include "raft/runtime/node.h"

namespace raftlock::http {
namespace {

constexpr const char* kClusterHeader = "X-Raftlock-Cluster";
constexpr const char* kFromHeader = "X-Raftlock-From";

void put_u32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint32_t get_u32(std::string_view in) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i)
    value |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

void fail_all(std::vector<ProposalForwarder::Done>& dones, const Error& error) {
  for (auto& done : dones) done(error);
}

}  // namespace

std::string encode_command_batch(const std::vector<std::string>& commands) {
  size_t size = 0;
  for (const auto& command : commands) size += 4 + command.size();
  std::string out;
  out.reserve(size);
  for (const auto& command : commands) {
    put_u32(out, static_cast<uint32_t>(command.size()));
    out += command;
  }
  return out;
}

Result<std::vector<std::string>> decode_command_batch(std::string_view body) {
  std::vector<std::string> commands;
  size_t at = 0;
  while (at < body.size()) {
    if (body.size() - at < 4) {
      return make_error(ErrorCode::kInvalidArgument,
                        "command batch truncated in a length at byte " + std::to_string(at));
    }
    const uint32_t length = get_u32(body.substr(at, 4));
    at += 4;
    if (length > body.size() - at) {
      return make_error(ErrorCode::kInvalidArgument,
                        "command " + std::to_string(commands.size()) + " of the batch claims " +
                            std::to_string(length) + " bytes, only " +
                            std::to_string(body.size() - at) + " follow");
    }
    commands.emplace_back(body.substr(at, length));
    at += length;
  }
  if (commands.empty()) return make_error(ErrorCode::kInvalidArgument, "empty command batch");
  return commands;
}

std::string encode_batch_answer(const std::vector<Result<raft::EntryId>>& results) {
  Json list = Json::array();
  for (const auto& result : results) {
    if (result) {
      list.push_back({{"index", result->index}, {"term", result->term}});
    } else {
      list.push_back(
          {{"code", error_code_name(result.error().code)}, {"message", result.error().message}});
    }
  }
  return Json{{"results", std::move(list)}}.dump();
}

Result<std::vector<Result<raft::EntryId>>> decode_batch_answer(std::string_view body,
                                                               size_t expected) {
  auto json = Json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("results") ||
      !json["results"].is_array()) {
    return make_error(ErrorCode::kInvalidArgument, "answer is not {\"results\": [...]}");
  }
  const Json& list = json["results"];
  if (list.size() != expected) {
    return make_error(ErrorCode::kInvalidArgument, "answer has " + std::to_string(list.size()) +
                                                       " results for " + std::to_string(expected) +
                                                       " commands");
  }
  std::vector<Result<raft::EntryId>> results;
  results.reserve(expected);
  for (const Json& item : list) {
    if (item.is_object() && item.contains("index") && item["index"].is_number_unsigned() &&
        item.contains("term") && item["term"].is_number_unsigned()) {
      results.emplace_back(
          raft::EntryId{item["index"].get<raft::Index>(), item["term"].get<raft::Term>()});
    } else if (item.is_object() && item.contains("message") && item["message"].is_string()) {
      // Refused by the leader: not appended, so a retry is safe.
      results.emplace_back(make_error(ErrorCode::kNoLeader,
                                      "the leader refused the forwarded "
                                      "proposal: " +
                                          item["message"].get<std::string>()));
    } else {
      return make_error(ErrorCode::kInvalidArgument, "malformed result in the answer");
    }
  }
  return results;
}

namespace {

// A request from a node of another cluster gets 403 and is logged; true when it was refused.
bool refused_other_cluster(const httplib::Request& req, httplib::Response& res,
                           const std::string& cluster_id) {
  if (req.get_header_value(kClusterHeader) == cluster_id) return false;
  spdlog::warn("refused forwarded proposals from {}: cluster '{}' is not ours ('{}')",
               req.remote_addr, req.get_header_value(kClusterHeader), cluster_id);
  res.status = 403;
  res.set_content("{\"error\":\"wrong cluster\"}", "application/json");
  return true;
}

void write_refusal(httplib::Response& res, int status, const Error& error) {
  res.status = status;
  res.set_content(Json{{"code", error_code_name(error.code)}, {"message", error.message}}.dump(),
                  "application/json");
}

}  // namespace

void install_append_routes(httplib::Server& server, raft::Node& node, std::string cluster_id) {
  // One command (followers of an older version): {"index", "term"}.
  server.Post(
      kAppendPath, [&node, cluster_id](const httplib::Request& req, httplib::Response& res) {
        if (refused_other_cluster(req, res, cluster_id)) return;
        auto appended = node.append(req.body).get();
        if (!appended) {
          write_refusal(res, 409, appended.error());  // not appended (not the leader): may retry
          return;
        }
        res.status = 200;
        res.set_content(Json{{"index", appended->index}, {"term", appended->term}}.dump(),
                        "application/json");
      });
  server.Post(kAppendBatchPath,
              [&node, cluster_id](const httplib::Request& req, httplib::Response& res) {
                if (refused_other_cluster(req, res, cluster_id)) return;
                auto commands = decode_command_batch(req.body);
                if (!commands) {
                  write_refusal(res, 400, commands.error());
                  return;
                }
                auto results = node.append_batch(std::move(*commands)).get();
                if (!results.front()) {
                  write_refusal(res, 409, results.front().error());  // nothing appended: may retry
                  return;
                }
                res.status = 200;
                res.set_content(encode_batch_answer(results), "application/json");
              });
}

ProposalForwarder::ProposalForwarder(ProposalForwarderOptions options, AddressLookup address_of)
    : options_(std::move(options)), address_of_(std::move(address_of)), clients_(options_.pool) {
  const size_t senders = options_.max_in_flight == 0 ? 1 : options_.max_in_flight;
  for (size_t i = 0; i < senders; ++i) senders_.emplace_back([this] { run_sender(); });
}

ProposalForwarder::~ProposalForwarder() {
  stop();
}

void ProposalForwarder::forward(raft::NodeId leader, std::string command, Done done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(Item{leader, std::move(command), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
}

void ProposalForwarder::stop() {
  std::deque<Item> leftover;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && senders_.empty()) return;
    stopping_ = true;
    leftover.swap(queue_);
  }
  cv_.notify_all();
  for (auto& sender : senders_) {
    if (sender.joinable()) sender.join();
  }
  senders_.clear();
  for (Item& item : leftover) {
    item.done(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
  }
}

void ProposalForwarder::run_sender() {
  while (true) {
    std::vector<Item> batch;
    raft::NodeId leader = raft::kNoNode;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      leader = queue_.front().leader;
      size_t bytes = 0;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (batch.size() >= options_.max_batch_commands) break;
        if (it->leader != leader) {
          ++it;
          continue;
        }
        if (!batch.empty() && bytes + it->command.size() > options_.max_batch_bytes) break;
        bytes += it->command.size();
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      }
    }
    send_batch(leader, std::move(batch));
  }
}

void ProposalForwarder::send_batch(raft::NodeId leader, std::vector<Item> batch) {
  std::vector<std::string> commands;
  std::vector<Done> dones;
  commands.reserve(batch.size());
  dones.reserve(batch.size());
  for (Item& item : batch) {
    commands.push_back(std::move(item.command));
    dones.push_back(std::move(item.done));
  }
  auto address = address_of_(leader);
  if (!address) {
    fail_all(dones, make_error(ErrorCode::kNoLeader, "the leader's address is unknown"));
    return;
  }
  auto client = clients_.take(*address);
  auto result = client->Post(
      kAppendBatchPath, {{kClusterHeader, options_.cluster_id}, {kFromHeader, options_.self_id}},
      encode_command_batch(commands), "application/octet-stream");
  if (!result) {
    // Not connected, or the request could not be written: the leader never got it.
    const bool never_sent = result.error() == httplib::Error::Connection ||
                            result.error() == httplib::Error::ConnectionTimeout ||
                            result.error() == httplib::Error::Write;
    if (never_sent) {
      fail_all(dones, make_error(ErrorCode::kNoLeader, "the leader could not be reached"));
    } else {
      // Sent, but no answer: the leader may have appended them, so they must not be retried.
      fail_all(dones,
               make_error(ErrorCode::kTimeout,
                          "the leader did not answer a forwarded "
                          "proposal (" +
                              httplib::to_string(result.error()) + "); its outcome is unknown"));
    }
    return;
  }
  clients_.give_back(*address, std::move(client));
  batches_sent_.fetch_add(1);
  commands_sent_.fetch_add(commands.size());
  if (result->status == 409 || result->status == 403) {  // the leader appended none of them
    fail_all(dones, make_error(ErrorCode::kNoLeader, "the leader refused the forwarded proposal"));
    return;
  }
  if (result->status != 200) {  // from something in between: the outcome is unknown
    fail_all(dones, make_error(ErrorCode::kTimeout, "a forwarded proposal got HTTP " +
                                                        std::to_string(result->status) +
                                                        "; its outcome is unknown"));
    return;
  }
  auto answers = decode_batch_answer(result->body, dones.size());
  if (!answers) {
    fail_all(dones, make_error(ErrorCode::kTimeout, "unreadable answer to forwarded proposals (" +
                                                        answers.error().message +
                                                        "); their outcome is unknown"));
    return;
  }
  for (size_t i = 0; i < dones.size(); ++i) dones[i](std::move((*answers)[i]));
}

}  // namespace raftlock::http
