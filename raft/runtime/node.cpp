#include "raft/runtime/node.h"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <iterator>

#include "common/thread_name.h"

namespace raftlock::raft {

using Clock = std::chrono::steady_clock;

Node::Node(NodeOptions options, storage::LogStore& store, StateMachine& state_machine,
           Sender sender)
    : options_(std::move(options)),
      store_(store),
      state_machine_(state_machine),
      sender_(std::move(sender)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Node::~Node() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status Node::start() {
  auto loaded = store_.load();
  if (!loaded) return loaded.error();
  storage::PersistentState& persisted = loaded.value();
  if (persisted.snapshot) {
    auto restored = state_machine_.restore(*persisted.snapshot->data);
    if (!restored) {
      return make_error(ErrorCode::kCorrupt,
                        "cannot restore the state machine from the snapshot at index " +
                            std::to_string(persisted.snapshot->meta.index) + ": " +
                            restored.error().message);
    }
    last_snapshot_index_ = persisted.snapshot->meta.index;
  }
  InitialState initial;
  initial.hard_state = persisted.hard_state;
  durable_hard_state_ = persisted.hard_state;
  initial.snapshot = persisted.snapshot;
  initial.entries = std::move(persisted.entries);
  initial.bootstrap_config = std::move(persisted.bootstrap_config);
  core_ = std::make_unique<Core>(options_.core, std::move(initial));
  last_config_ = core_->config();
  publish_status();
  spdlog::info("node {} starting: term {}, commit {}, last index {}, snapshot index {}",
               options_.core.id, core_->term(), core_->commit_index(), core_->last_index(),
               last_snapshot_index_);
  if (config_listener_) config_listener_(last_config_);
  const auto voters = last_config_.voter_ids();
  if (voters.size() == 1 && voters.front() == options_.core.id)
    core_->campaign();  // no one to wait for
  failover_rng_.seed(options_.core.random_seed ^ 0x6a09e667f3bcc909ULL);
  if (wake_fd_ < 0) {
    return make_error(ErrorCode::kIo,
                      std::string("cannot create the loop's eventfd: ") + std::strerror(errno));
  }
  if (inbox_) inbox_->attach([this] { wake_loop(); });
  if (leader_prober_) {
    prober_ = std::thread([this] { run_prober(); });
    set_thread_name(prober_, "raft-probe-" + std::to_string(options_.core.id));
  }
  loop_ = std::thread([this] { run_loop(); });
  set_thread_name(loop_, "raft-loop-" + std::to_string(options_.core.id));
  return Ok{};
}

void Node::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !loop_.joinable()) return;
    stopping_ = true;
  }
  wake_loop();
  if (loop_.joinable()) loop_.join();
  {
    std::lock_guard lock(probe_mu_);
    probe_stop_ = true;
  }
  probe_cv_.notify_all();
  if (prober_.joinable()) prober_.join();
}

void Node::post(Task task) {
  {
    std::lock_guard lock(mu_);
    if (!loop_done_ && !stopping_) {
      tasks_.push_back(std::move(task));
      if (sleeping_) {
        sleeping_ = false;  // one wake-up is enough
        wake_loop();
      }
      return;
    }
  }
  task(false);  // the loop is stopping or gone: the task only reports failure
}

std::future<Result<std::any>> Node::propose(std::string command, Urgency urgency) {
  auto promise = std::make_shared<ProposalSink>();
  auto future = promise->get_future();
  submit(std::move(promise), std::move(command), urgency);
  return future;
}

void Node::propose_async(std::string command, Urgency urgency, ProposalCallback done) {
  submit(std::make_shared<ProposalSink>(std::move(done)), std::move(command), urgency);
}

void Node::submit(ProposalPromise promise, std::string command, Urgency urgency) {
  post([this, promise, urgency, command = std::move(command)](bool alive) mutable {
    if (!alive) {
      promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      return;
    }
    const auto proposed_at = Clock::now();
    if (urgency == Urgency::kMayWait && core_->role() == Role::kLeader) {
      held_proposals_.push_back(HeldProposal{std::move(command), std::move(promise), proposed_at});
      start_holding(proposed_at);
      return;
    }
    propose_now(std::move(command), std::move(promise), proposed_at, urgency);
  });
}

void Node::propose_now(std::string command, ProposalPromise promise, Clock::time_point proposed_at,
                       Urgency urgency) {
  auto appended = core_->propose(command);
  if (appended) {
    track_proposal(*appended, promise, proposed_at);
    return;
  }
  const NodeId leader = core_->leader_id();
  if (appended.error().code == ErrorCode::kNotLeader && leader != kNoNode &&
      leader != options_.core.id && can_forward_to_ && can_forward_to_(leader)) {
    queue_forward(leader, std::move(command), promise, proposed_at, urgency);
    return;
  }
  if (appended.error().code != ErrorCode::kNotLeader || !forwarder_ || leader == kNoNode ||
      leader == options_.core.id) {
    promise->set_value(appended.error());
    return;
  }
  forwarder_(leader, std::move(command), [this, promise, proposed_at](Result<EntryId> forwarded) {
    post([this, promise, proposed_at, forwarded = std::move(forwarded)](bool alive) mutable {
      if (!alive) {
        promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      } else if (!forwarded) {
        promise->set_value(forwarded.error());
      } else {
        track_proposal(*forwarded, promise, proposed_at);
      }
    });
  });
}

void Node::start_holding(Clock::time_point now) {
  if (!held_until_) held_until_ = now + options_.may_wait_limit;
}

void Node::release_held(Clock::time_point now, bool appended) {
  if (!held_until_) return;
  if (!appended && now < *held_until_ && core_->role() == Role::kLeader) return;
  held_until_.reset();
  // After the round's own proposals, in the order they came. A node that no longer leads forwards
  // the local ones to the new leader and refuses the forwarded ones (safe to retry: not appended).
  auto proposals = std::move(held_proposals_);
  auto forwards = std::move(held_forwards_);
  held_proposals_.clear();
  held_forwards_.clear();
  for (HeldProposal& held : proposals) {
    propose_now(std::move(held.command), std::move(held.promise), held.proposed_at, Urgency::kNow);
  }
  for (const Message& request : forwards) answer_forward(request);
}

std::future<Result<std::any>> Node::propose_as_leader(std::string command, Term term) {
  auto promise = std::make_shared<ProposalSink>();
  auto future = promise->get_future();
  post([this, promise, term, command = std::move(command)](bool alive) mutable {
    if (!alive) {
      promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      return;
    }
    if (core_->role() != Role::kLeader || core_->term() != term) {
      promise->set_value(make_error(ErrorCode::kNotLeader,
                                    "no longer the leader of term " + std::to_string(term)));
      return;
    }
    const auto proposed_at = Clock::now();
    auto appended = core_->propose(std::move(command));
    if (!appended) {
      promise->set_value(appended.error());
      return;
    }
    track_proposal(*appended, promise, proposed_at);
  });
  return future;
}

std::future<Result<EntryId>> Node::append(std::string command) {
  auto promise = std::make_shared<std::promise<Result<EntryId>>>();
  auto future = promise->get_future();
  post([this, promise, command = std::move(command)](bool alive) mutable {
    if (!alive) {
      promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      return;
    }
    promise->set_value(core_->propose(std::move(command)));
  });
  return future;
}

std::future<std::vector<Result<EntryId>>> Node::append_batch(std::vector<std::string> commands) {
  auto promise = std::make_shared<std::promise<std::vector<Result<EntryId>>>>();
  auto future = promise->get_future();
  post([this, promise, commands = std::move(commands)](bool alive) mutable {
    std::vector<Result<EntryId>> results;
    results.reserve(commands.size());
    std::optional<Error> refused;
    if (!alive) refused = make_error(ErrorCode::kUnavailable, "the node is shutting down");
    for (std::string& command : commands) {
      if (refused) {
        results.emplace_back(*refused);
        continue;
      }
      auto appended = core_->propose(std::move(command));
      if (!appended) refused = appended.error();
      results.push_back(std::move(appended));
    }
    promise->set_value(std::move(results));
  });
  return future;
}

void Node::queue_forward(NodeId leader, std::string command, ProposalPromise promise,
                         Clock::time_point proposed_at, Urgency urgency) {
  OutgoingForward& outgoing = outgoing_forwards_[leader];
  if (urgency != Urgency::kMayWait) outgoing.may_wait = false;
  Message& request = outgoing.request;
  if (request.entries.empty()) {
    outgoing.first_id = next_forward_id_;
    request.type = MessageType::kForward;
    request.from = options_.core.id;
    request.to = leader;
    request.context = std::to_string(outgoing.first_id);
  }
  PendingForward pending;
  pending.leader = leader;
  pending.first_id = outgoing.first_id;
  pending.slot = request.entries.size();
  pending.promise = std::move(promise);
  pending.proposed_at = proposed_at;
  forwards_.emplace(next_forward_id_++, std::move(pending));
  Entry entry;
  entry.data = std::move(command);
  request.entries.push_back(std::move(entry));
}

void Node::flush_forwards() {
  if (outgoing_forwards_.empty()) return;
  std::vector<Message> requests;
  requests.reserve(outgoing_forwards_.size());
  for (auto& [leader, outgoing] : outgoing_forwards_) {
    if (outgoing.may_wait) outgoing.request.index = kForwardMayWait;
    requests.push_back(std::move(outgoing.request));
  }
  outgoing_forwards_.clear();
  sender_(std::move(requests));
}

void Node::answer_forward(const Message& request) {
  Message response;
  response.type = MessageType::kForwardResponse;
  response.from = options_.core.id;
  response.to = request.from;
  response.context = request.context;
  for (const Entry& entry : request.entries) {
    auto appended = core_->propose(entry.data);
    if (!appended) {
      // Not appended (not the leader, or a leadership transfer): neither are the rest.
      response.reject = true;
      response.reject_hint = static_cast<Index>(appended.error().code);
      break;
    }
    Entry where;
    where.index = appended->index;
    where.term = appended->term;
    response.entries.push_back(where);
  }
  outgoing_responses_.push_back(std::move(response));
}

void Node::on_forward_response(const Message& response) {
  uint64_t first = 0;
  auto [ptr, ec] = std::from_chars(response.context.data(),
                                   response.context.data() + response.context.size(), first);
  if (ec != std::errc() || ptr != response.context.data() + response.context.size()) return;
  const auto code = static_cast<ErrorCode>(response.reject_hint);
  const bool not_leader = code == ErrorCode::kNotLeader || code == ErrorCode::kNoLeader;
  // The request's forwards still waiting (the others timed out) have ids from `first` on; entry
  // i of the answer is the one in slot i.
  for (auto it = forwards_.lower_bound(first); it != forwards_.end();) {
    PendingForward& pending = it->second;
    if (pending.first_id != first) {
      ++it;
      continue;
    }
    if (pending.slot < response.entries.size()) {
      const Entry& where = response.entries[pending.slot];
      track_proposal(EntryId{where.index, where.term}, std::move(pending.promise),
                     pending.proposed_at);
    } else if (response.reject) {
      // Not appended anywhere: safe to retry.
      pending.promise->set_value(
          make_error(not_leader ? ErrorCode::kNotLeader : code,
                     not_leader ? "the node a proposal was forwarded to is not the leader"
                                : "the leader refused a forwarded proposal (" +
                                      std::string(error_code_name(code)) + ")"));
    } else {
      ++it;  // not answered (a malformed answer): it times out as an unknown outcome
      continue;
    }
    it = forwards_.erase(it);
  }
}

void Node::fail_forwards_if(const std::function<bool(const PendingForward&)>& which,
                            const std::string& why) {
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    if (!which(it->second)) {
      ++it;
      continue;
    }
    // It may have been appended (and may still commit): the outcome is unknown.
    it->second.promise->set_value(make_error(ErrorCode::kTimeout, why));
    it = forwards_.erase(it);
  }
}

void Node::track_proposal(EntryId id, ProposalPromise promise, Clock::time_point proposed_at) {
  if (id.index <= core_->applied_index()) {
    // Already applied (a forwarded proposal whose answer arrived late): look up its result.
    for (auto it = recent_results_.rbegin(); it != recent_results_.rend(); ++it) {
      if (it->id.index != id.index) continue;
      if (it->id.term == id.term && it->answered_locally) {
        // Its result went to the proposal that was waiting for it (a second claim on one entry
        // cannot happen; if it ever did, the outcome is not this caller's to know).
        promise->set_value(
            make_error(ErrorCode::kTimeout, "the entry's outcome is no longer known"));
      } else if (it->id.term == id.term) {
        promise->set_value(it->result);
      } else {
        promise->set_value(
            make_error(ErrorCode::kDropped, "another entry was committed at that index; retry"));
      }
      return;
    }
    promise->set_value(make_error(ErrorCode::kTimeout, "the entry's outcome is no longer known"));
    return;
  }
  auto existing = proposals_.find(id.index);
  if (existing != proposals_.end()) {
    // Two proposals at one index: only one can be there; the older one was overwritten.
    existing->second.promise->set_value(
        make_error(ErrorCode::kDropped, "another entry was appended at that index; retry"));
    proposals_.erase(existing);
  }
  PendingProposal pending;
  pending.term = id.term;
  pending.promise = std::move(promise);
  pending.proposed_at = proposed_at;
  proposals_.emplace(id.index, std::move(pending));
}

std::future<Status> Node::read_barrier() {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  post([this, promise](bool alive) mutable {
    if (!alive) {
      promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      return;
    }
    std::string context = std::to_string(options_.core.id) + ":" + std::to_string(next_read_id_++);
    auto requested = core_->read_index(context);
    if (!requested) {
      promise->set_value(requested.error());
      return;
    }
    PendingRead read;
    read.promise = std::move(*promise);
    read.started_at = Clock::now();
    read.deadline = read.started_at + options_.read_timeout;
    reads_.emplace(std::move(context), std::move(read));
  });
  return future;
}

std::future<Result<EntryId>> Node::change_membership(ConfChange change) {
  auto promise = std::make_shared<std::promise<Result<EntryId>>>();
  auto future = promise->get_future();
  post([this, promise, change = std::move(change)](bool alive) mutable {
    if (!alive) {
      promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      return;
    }
    promise->set_value(core_->propose_conf_change(change));
  });
  return future;
}

std::future<Status> Node::transfer_leadership(NodeId target) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  post([this, promise, target](bool alive) mutable {
    if (!alive) {
      promise->set_value(make_error(ErrorCode::kUnavailable, "the node is shutting down"));
      return;
    }
    promise->set_value(core_->transfer_leadership(target));
  });
  return future;
}

void Node::receive(std::vector<Message> messages) {
  auto batch = std::make_shared<std::vector<Message>>(std::move(messages));
  post([this, batch](bool alive) {
    if (alive) step_messages(*batch);
  });
}

void Node::step_messages(const std::vector<Message>& messages) {
  for (const Message& message : messages) {
    if (message.type == MessageType::kForward) {
      if (message.index == kForwardMayWait && core_->role() == Role::kLeader) {
        held_forwards_.push_back(message);
        start_holding(Clock::now());
      } else {
        answer_forward(message);
      }
      continue;
    }
    if (message.type == MessageType::kForwardResponse) {
      on_forward_response(message);
      continue;
    }
    if (message.commit > last_heard_commit_) last_heard_commit_ = message.commit;
    auto stepped = core_->step(message);
    if (stepped && names_the_leader(message.type) && message.from == core_->leader_id()) {
      watched_leader_ = message.from;  // heard from the leader: it is not silent
      leader_silent_ticks_ = 0;
    }
    if (!stepped) {
      spdlog::debug("node {} term {}: dropped {} from {}: {}", options_.core.id, core_->term(),
                    message_type_name(message.type), message.from, stepped.error().message);
    }
  }
}

void Node::report_unreachable(NodeId peer) {
  post([this, peer](bool alive) {
    if (!alive) return;
    core_->report_unreachable(peer);
    // A send to it failed: forwards waiting for its answer may never get one.
    fail_forwards_if([peer](const PendingForward& f) { return f.leader == peer; },
                     "sending to the leader failed before it answered a forwarded proposal; its "
                     "outcome is unknown");
  });
}

void Node::report_snapshot(NodeId peer, bool success) {
  post([this, peer, success](bool alive) {
    if (alive) core_->report_snapshot(peer, success);
  });
}

NodeStatus Node::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Node::wake_loop() {
  const uint64_t one = 1;
  // A full counter (EAGAIN) already wakes the loop; nothing else can fail here.
  [[maybe_unused]] const ssize_t written = ::write(wake_fd_, &one, sizeof(one));
}

void Node::wait_for_events(Clock::time_point deadline, bool zero_wait,
                           std::vector<Message>& inbound) {
  if (inbox_) inbox_->descriptors(inbox_fds_);
  poll_fds_.clear();
  poll_fds_.push_back({wake_fd_, POLLIN, 0});
  for (int fd : inbox_fds_) poll_fds_.push_back({fd, POLLIN, 0});
  for (LoopSource* source : loop_sources_) poll_fds_.push_back({source->descriptor(), POLLIN, 0});
  if (zero_wait && poll_fds_.size() == 1) return;  // nothing to read
  const timespec no_wait{0, 0};
  int ready = 0;
  if (!zero_wait && options_.idle_spin.count() > 0) {
    // Poll without sleeping for a while first (see NodeOptions::idle_spin), giving the CPU to
    // any other runnable thread between polls.
    const auto spin_end = std::min(deadline, Clock::now() + options_.idle_spin);
    while (true) {
      ready = ::ppoll(poll_fds_.data(), poll_fds_.size(), &no_wait, nullptr);
      if (ready != 0) break;
      if (Clock::now() >= spin_end) break;
      sched_yield();
    }
    if (ready > 0) ++loop_spin_catches_;
  }
  if (ready == 0) {
    timespec timeout = no_wait;
    if (!zero_wait) {
      const auto left = std::max(Clock::duration::zero(), deadline - Clock::now());
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timeout.tv_sec = static_cast<time_t>(ns / 1000000000);
      timeout.tv_nsec = static_cast<long>(ns % 1000000000);
      if (ns > 0) ++loop_sleeps_;  // a timer already due is no sleep
    }
    ready = ::ppoll(poll_fds_.data(), poll_fds_.size(), &timeout, nullptr);
  }
  if (ready <= 0) return;  // timeout or EINTR: the loop goes round
  if (poll_fds_[0].revents != 0) {
    uint64_t count = 0;
    [[maybe_unused]] const ssize_t drained = ::read(wake_fd_, &count, sizeof(count));
  }
  const size_t sources_from = 1 + inbox_fds_.size();
  for (size_t i = 1; i < sources_from; ++i) {
    if (poll_fds_[i].revents != 0) inbox_->read(poll_fds_[i].fd, inbound);
  }
  for (size_t i = sources_from; i < poll_fds_.size(); ++i) {
    if (poll_fds_[i].revents != 0) loop_sources_[i - sources_from]->on_readable();
  }
}

void Node::run_loop() {
  for (LoopSource* source : loop_sources_) source->set_attached(true);
  auto next_tick = Clock::now() + options_.tick_interval;
  std::vector<Message> inbound;
  while (true) {
    std::deque<Task> tasks;
    bool work_waiting;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      work_waiting = !tasks_.empty();
      sleeping_ = !work_waiting;
    }
    // Posted work is done at once, but the inbox is still read (a zero wait): a steady stream of
    // proposals must not starve the peers' answers.
    wait_for_events(next_wakeup(next_tick), work_waiting, inbound);
    {
      std::lock_guard lock(mu_);
      sleeping_ = false;
      if (stopping_) break;
      tasks.swap(tasks_);
    }
    // Tasks first: messages a transport thread handed over before the loop read later ones from
    // the same connection are stepped in order.
    const Index last_index_before = core_->last_index();
    for (Task& task : tasks) task(!loop_done_);
    if (!inbound.empty()) {
      step_messages(inbound);
      inbound.clear();
    }
    const auto now = Clock::now();
    release_held(now, core_->last_index() > last_index_before);
    flush_forwards();
    if (now >= next_tick) {
      core_->tick();
      next_tick += options_.tick_interval;
      if (next_tick < now) next_tick = now + options_.tick_interval;  // we fell behind: no burst
      expire_reads(now);
      if (!forwards_.empty()) {
        fail_forwards_if(
            [&](const PendingForward& f) { return now - f.proposed_at >= options_.read_timeout; },
            "the leader did not answer a forwarded proposal in time; its outcome is unknown");
      }
      watch_leader_silence();
      if (now - last_commit_write_ >= options_.tick_interval) write_deferred_commit(now);
    }
    run_fast_failover(now);
    handle_ready();
    if (!outgoing_responses_.empty()) {
      sender_(std::move(outgoing_responses_));  // refusals, or a round that sent nothing else
      outgoing_responses_.clear();
    }
    if (loop_done_) break;
    maybe_snapshot();
    if (loop_done_) break;  // the compaction failed: stop now, not after one more round
    publish_status();
  }
  if (inbox_) inbox_->detach();
  for (LoopSource* source : loop_sources_) source->set_attached(false);
  // A clean stop writes the commit index still deferred, so a restart applies all it knew.
  write_deferred_commit(Clock::now());
  // Shutdown: fail everything still waiting, and every task posted from now on.
  std::deque<Task> leftover;
  {
    std::lock_guard lock(mu_);
    loop_done_ = true;
    leftover.swap(tasks_);
  }
  for (Task& task : leftover) task(false);
  fail_all_pending(ErrorCode::kUnavailable, "the node is shutting down");
  publish_status();
}

void Node::write_deferred_commit(Clock::time_point now) {
  if (!deferred_hard_state_ || loop_done_) return;
  // Only the commit index changed: the store writes it without waiting for the disk.
  if (auto s = store_.persist(deferred_hard_state_, {}, std::nullopt); !s) {
    fail_stop("storage failure: " + s.error().message);
    return;
  }
  durable_hard_state_ = *deferred_hard_state_;
  deferred_hard_state_.reset();
  last_commit_write_ = now;
}

void Node::handle_ready() {
  while (core_->has_ready()) {
    Ready ready = core_->ready();
    if (ready.soft_state) {
      const SoftState& soft = *ready.soft_state;
      if (soft.role != soft_state_.role || soft.leader_id != soft_state_.leader_id) {
        spdlog::info("node {} term {}: role {}, leader {} (commit index {}, last index {})",
                     options_.core.id, soft.term, role_name(soft.role), soft.leader_id,
                     core_->commit_index(), core_->last_index());
      }
      const bool lost_leadership = soft_state_.role == Role::kLeader && soft.role != Role::kLeader;
      const bool leader_changed = soft.leader_id != soft_state_.leader_id;
      if (soft.role == Role::kCandidate && soft_state_.role != Role::kCandidate && observer_) {
        observer_->on_election_started();
      }
      soft_state_ = soft;
      if (leader_changed && !forwards_.empty()) {
        fail_forwards_if([&](const PendingForward& f) { return f.leader != soft.leader_id; },
                         "the leader changed before it answered a forwarded proposal; its outcome "
                         "is unknown");
      }
      if (lost_leadership || leader_changed) {
        // Reads are safe to retry. Proposals are not failed here: one appended under the old
        // leader may still commit under the new one, and a retry would then apply twice. Each
        // stays tracked by its (index, term) and is answered by the entry applied at its index:
        // its own (done) or another one (kDropped: it can never commit, so a retry is safe).
        fail_pending_reads(ErrorCode::kDropped, "leadership changed; retry");
      }
      if (observer_) observer_->on_soft_state(soft);
      if (soft_state_listener_) soft_state_listener_(soft);
    }
    // A leader whose term and vote are already durable sends before persisting (Raft thesis
    // §10.2.1): its followers write the new entries while it writes them too. It cannot commit
    // anything on the strength of its own copy until that write is durable: the core counts the
    // leader's own match only from advance(), after the persist below.
    const bool send_first =
        core_->role() == Role::kLeader &&
        (!ready.hard_state || (ready.hard_state->term == durable_hard_state_.term &&
                               ready.hard_state->vote == durable_hard_state_.vote));
    if (send_first && !outgoing_responses_.empty()) {
      // The answers to forwarded proposals go first, with the appends that carry those entries.
      ready.messages.insert(ready.messages.begin(),
                            std::make_move_iterator(outgoing_responses_.begin()),
                            std::make_move_iterator(outgoing_responses_.end()));
      outgoing_responses_.clear();
    }
    if (send_first && !ready.messages.empty()) sender_(std::move(ready.messages));
    // A hard state that only moves the commit index is not written on its own: the commit index
    // is not needed for safety (it can always be learned again from a quorum) and a restart
    // clamps it to the log. It rides along with a write of entries at most once per tick (and is
    // written at a tick, or a clean stop, when no entries come): every entry's transaction would
    // otherwise also rewrite the hard state's page, and on a disk shared with other writers each
    // page adds to the fsync that every acknowledgement waits for.
    const bool commit_only = ready.hard_state &&
                             ready.hard_state->term == durable_hard_state_.term &&
                             ready.hard_state->vote == durable_hard_state_.vote;
    if (commit_only) deferred_hard_state_ = ready.hard_state;
    // The committed entries handed out are durable here already (the core hands out only
    // entries that earlier rounds wrote), so they are applied and their clients answered before
    // this round's write and sends: an answer never waits for an unrelated fsync (on a busy node
    // nearly every round writes). A round that installs a snapshot applies after it.
    const bool apply_first = !ready.snapshot;
    if (apply_first) apply_committed(ready.committed_entries);
    if ((ready.hard_state && !commit_only) || !ready.entries.empty() || ready.snapshot) {
      if (observer_ && !ready.entries.empty()) {
        observer_->on_appending(ready.entries.front().index, ready.entries.back().index);
      }
      const auto started = Clock::now();
      const bool commit_due = started - last_commit_write_ >= options_.tick_interval;
      const std::optional<HardState> hard_state = ready.hard_state && !commit_only
                                                      ? ready.hard_state
                                                  : commit_due ? deferred_hard_state_
                                                               : std::nullopt;
      auto persisted = store_.persist(hard_state, ready.entries, ready.snapshot);
      if (!persisted) {
        fail_stop("storage failure: " + persisted.error().message);
        return;
      }
      if (hard_state) {
        durable_hard_state_ = *hard_state;
        deferred_hard_state_.reset();
        last_commit_write_ = started;
      }
      if (observer_) observer_->on_persist(Clock::now() - started, ready.entries.size());
    }
    if (!send_first && !ready.messages.empty()) sender_(std::move(ready.messages));
    if (ready.snapshot) {
      const auto restore_started = Clock::now();
      auto restored = state_machine_.restore(*ready.snapshot->data);
      if (!restored) {
        fail_stop("cannot install the snapshot received from the leader: " +
                  restored.error().message);
        return;
      }
      last_snapshot_index_ = ready.snapshot->meta.index;
      // Proposals at or below the snapshot index can no longer be matched to their entries.
      for (auto it = proposals_.begin();
           it != proposals_.end() && it->first <= ready.snapshot->meta.index;) {
        // It may be inside the snapshot or not: the outcome is unknown, so no automatic retry.
        it->second.promise->set_value(make_error(
            ErrorCode::kTimeout, "the entry was superseded by a snapshot; its outcome is unknown"));
        it = proposals_.erase(it);
      }
      spdlog::info("node {} term {}: installed snapshot at index {} ({} bytes)", options_.core.id,
                   core_->term(), ready.snapshot->meta.index, ready.snapshot->data->size());
      if (observer_) {
        observer_->on_snapshot_installed(Clock::now() - restore_started,
                                         ready.snapshot->data->size());
      }
    }
    if (!apply_first) apply_committed(ready.committed_entries);
    for (const ReadState& read_state : ready.read_states) {
      auto it = reads_.find(read_state.context);
      if (it == reads_.end()) continue;  // timed out already
      it->second.read_index = read_state.index;
      it->second.index_known = true;
    }
    core_->advance(ready);
    if (core_->commit_index() > last_heard_commit_) last_heard_commit_ = core_->commit_index();
    publish_status();
    serve_reads();
    const Configuration& config = core_->config();
    if (!(config == last_config_)) {
      last_config_ = config;
      std::string members;
      for (const Member& member : config.members) {
        members += (members.empty() ? "" : ", ") + std::to_string(member.id) + "=" +
                   member.context + (member.voter ? "" : " (learner)");
      }
      spdlog::info("node {} term {}: membership now has {} members at applied index {}: {}",
                   options_.core.id, core_->term(), config.members.size(), core_->applied_index(),
                   members);
      if (config_listener_) config_listener_(config);
    }
  }
}

void Node::apply_committed(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  if (observer_) observer_->on_committed(entries.back().index);
  apply_entries(entries);
  {
    // The core counts these entries applied only at advance(), after the round's write: the
    // published status covers them before their answers go out.
    std::lock_guard lock(mu_);
    const Index last = entries.back().index;
    status_.core.applied_index = std::max(status_.core.applied_index, last);
    status_.core.commit_index = std::max(status_.core.commit_index, last);
  }
  // The state machine's own answers first: a parked request granted by this round is the next
  // step of a chain (a lock handoff), the proposers' answers are not.
  state_machine_.applied();
  for (Completion& done : completions_) done.promise->set_value(std::move(done.value));
  completions_.clear();
}

void Node::apply_entries(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  const auto started = Clock::now();
  for (const Entry& entry : entries) {
    std::any result;
    if (entry.type == EntryType::kNormal) result = state_machine_.apply(entry.index, entry.data);
    // Every entry, no-ops too: a late forwarded answer is matched by (index, term).
    if (recent_results_.size() == kRecentResults) recent_results_.pop_front();
    recent_results_.push_back(AppliedResult{EntryId{entry.index, entry.term}, {}, false});
    auto it = proposals_.find(entry.index);
    if (it == proposals_.end() || it->second.term != entry.term) {
      recent_results_.back().result = std::move(result);
    }
    if (it == proposals_.end()) continue;
    if (it->second.term == entry.term) {
      if (observer_) observer_->on_commit_latency(Clock::now() - it->second.proposed_at);
      recent_results_.back().answered_locally = true;
      completions_.push_back(Completion{it->second.promise, std::move(result)});
    } else {
      completions_.push_back(Completion{
          it->second.promise,
          make_error(ErrorCode::kDropped, "another entry was committed at that index; retry")});
    }
    proposals_.erase(it);
  }
  if (observer_) observer_->on_apply(Clock::now() - started, entries.size());
}

void Node::serve_reads() {
  const Index applied = core_->applied_index();
  const auto now = Clock::now();
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.index_known && it->second.read_index <= applied) {
      if (observer_) observer_->on_read_index_latency(now - it->second.started_at);
      it->second.promise.set_value(Ok{});
      it = reads_.erase(it);
    } else {
      ++it;
    }
  }
}

void Node::expire_reads(Clock::time_point now) {
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (now >= it->second.deadline) {
      it->second.promise.set_value(make_error(
          soft_state_.leader_id == kNoNode ? ErrorCode::kNoLeader : ErrorCode::kTimeout,
          "no read index within " + std::to_string(options_.read_timeout.count()) + " ms"));
      it = reads_.erase(it);
    } else {
      ++it;
    }
  }
}

void Node::fail_all_pending(ErrorCode code, const std::string& why) {
  for (auto& [index, pending] : proposals_) pending.promise->set_value(make_error(code, why));
  proposals_.clear();
  for (auto& [id, pending] : forwards_) pending.promise->set_value(make_error(code, why));
  forwards_.clear();
  outgoing_forwards_.clear();
  for (HeldProposal& held : held_proposals_) held.promise->set_value(make_error(code, why));
  held_proposals_.clear();
  held_forwards_.clear();  // not appended: their followers' forwards time out or fail
  held_until_.reset();
  fail_pending_reads(code, why);
}

void Node::fail_pending_reads(ErrorCode code, const std::string& why) {
  for (auto& [context, read] : reads_) read.promise.set_value(make_error(code, why));
  reads_.clear();
}

void Node::maybe_snapshot() {
  const Index applied = core_->applied_index();
  if (options_.snapshot_every == 0 || applied < last_snapshot_index_ + options_.snapshot_every) {
    return;
  }
  const auto started = Clock::now();
  auto data = std::make_shared<const std::string>(state_machine_.snapshot());
  auto compacted = core_->compact(applied, data);
  if (!compacted) {
    spdlog::warn("node {} term {}: snapshot at index {} failed: {}", options_.core.id,
                 core_->term(), applied, compacted.error().message);
    return;
  }
  auto meta = core_->snapshot_meta();
  if (!meta) return;
  auto stored = store_.compact(Snapshot{*meta, data});
  if (!stored) {
    fail_stop("storage failure while compacting: " + stored.error().message);
    return;
  }
  last_snapshot_index_ = meta->index;
  spdlog::info("node {} term {}: snapshot at index {} ({} bytes)", options_.core.id, core_->term(),
               meta->index, data->size());
  if (observer_) observer_->on_snapshot_taken(Clock::now() - started, data->size());
}

void Node::publish_status() {
  std::lock_guard lock(mu_);
  if (core_) status_.core = core_->status();
  status_.last_heard_commit = last_heard_commit_;
  status_.pending_proposals = proposals_.size() + held_proposals_.size();
  status_.pending_reads = reads_.size();
  status_.leader_deaths_detected = leader_deaths_detected_;
  status_.fast_campaigns = fast_campaigns_total_;
  status_.loop_spin_catches = loop_spin_catches_;
  status_.loop_sleeps = loop_sleeps_;
  status_.stopped = loop_done_;
}

void Node::fail_stop(const std::string& why) {
  spdlog::critical("node {} term {}: stopping: {}", options_.core.id, core_->term(), why);
  fail_all_pending(ErrorCode::kUnavailable, why);
  std::lock_guard lock(mu_);
  loop_done_ = true;
  status_.stopped = true;
  status_.stop_reason = why;
}

// ============================ fast failover ============================
//
// A leader whose process died (SIGKILL, crash) leaves a peer port that refuses connections. A
// follower that stops hearing from its leader probes that port off the loop; a refusal makes it
// forget the leader (the core's leader lease no longer applies) and campaign through pre-vote
// after a short random delay, instead of waiting out the election timeout. A leader that is alive
// but slow, paused or partitioned accepts the connection or does not answer: nothing happens and
// the election timeout applies as always. Elections are safe at any time; this only changes when
// one starts.

void Node::report_leader_down(NodeId leader) {
  post([this, leader](bool alive) {
    if (alive) on_leader_refused(leader);
  });
}

std::chrono::milliseconds Node::failover_delay(double min_ticks, double max_ticks) {
  const double tick_ms = static_cast<double>(options_.tick_interval.count());
  std::uniform_real_distribution<double> ticks(min_ticks, max_ticks);
  return std::chrono::milliseconds(static_cast<int64_t>(ticks(failover_rng_) * tick_ms));
}

void Node::watch_leader_silence() {
  const NodeId leader = core_->leader_id();
  if (leader != watched_leader_) {
    watched_leader_ = leader;
    leader_silent_ticks_ = 0;
  }
  if (!leader_prober_ || leader == kNoNode || leader == options_.core.id ||
      core_->role() != Role::kFollower) {
    return;
  }
  // The leader sends something every heartbeat interval; two intervals without a word and it is
  // worth one connect to see whether its process is still there.
  ++leader_silent_ticks_;
  if (leader_silent_ticks_ >= 2 * std::max(1, options_.core.heartbeat_ticks)) {
    request_probe(leader);
  }
}

void Node::on_leader_refused(NodeId leader) {
  const auto now = Clock::now();
  const int silent_enough = 2 * std::max(1, options_.core.heartbeat_ticks);
  if (leader != kNoNode && leader == core_->leader_id()) {
    // A follower that heard from its leader since it asked is not told anything by a refusal.
    if (leader != watched_leader_ || leader_silent_ticks_ < silent_enough) return;
    if (!core_->leader_down(leader)) return;
    dead_leader_ = leader;
    fast_campaigns_ = 0;
    ++leader_deaths_detected_;
    reprobe_at_.reset();
    const auto delay = failover_delay(0.0, 1.5);
    fast_campaign_at_ = now + delay;
    spdlog::info(
        "node {} term {}: leader {} refuses connections (process gone); campaigning in {} ms",
        options_.core.id, core_->term(), leader, delay.count());
    return;
  }
  // A re-probe during a fast failover: still no leader, and the dead one is still gone.
  if (leader != kNoNode && leader == dead_leader_ && core_->leader_id() == kNoNode &&
      core_->role() != Role::kLeader && !fast_campaign_at_ && fast_campaigns_ < kMaxFastCampaigns) {
    // By now the other voters have most likely noticed too: a shorter spread than the first time.
    const auto delay = failover_delay(0.0, 0.5);
    fast_campaign_at_ = now + delay;
    spdlog::info(
        "node {} term {}: still no leader and leader {} still refuses connections; campaigning "
        "again in {} ms",
        options_.core.id, core_->term(), leader, delay.count());
  }
}

void Node::run_fast_failover(Clock::time_point now) {
  if (dead_leader_ == kNoNode) return;
  if (core_->leader_id() != kNoNode || core_->role() == Role::kLeader) {
    // Someone (maybe this node) leads: the fast failover is over.
    dead_leader_ = kNoNode;
    fast_campaign_at_.reset();
    reprobe_at_.reset();
    return;
  }
  if (fast_campaign_at_ && now >= *fast_campaign_at_) {
    fast_campaign_at_.reset();
    ++fast_campaigns_;
    if (core_->campaign_if_leaderless()) {
      ++fast_campaigns_total_;
      spdlog::info("node {} term {}: campaigning (pre-vote) because leader {} is gone (attempt {})",
                   options_.core.id, core_->term(), dead_leader_, fast_campaigns_);
    }
    if (fast_campaigns_ < kMaxFastCampaigns) {
      // If no leader emerges soon (the other voters may not have noticed the death yet and
      // ignored our pre-vote), check that the leader is still gone and try again.
      reprobe_at_ = now + failover_delay(0.5, 1.0);
    } else {
      spdlog::info(
          "node {} term {}: no leader after {} fast campaigns; leaving it to the "
          "election timeout",
          options_.core.id, core_->term(), fast_campaigns_);
      dead_leader_ = kNoNode;
    }
  }
  if (reprobe_at_ && now >= *reprobe_at_) {
    reprobe_at_.reset();
    request_probe(dead_leader_);
  }
}

Clock::time_point Node::next_wakeup(Clock::time_point next_tick) const {
  Clock::time_point wake = next_tick;
  if (held_until_) wake = std::min(wake, *held_until_);
  if (fast_campaign_at_) wake = std::min(wake, *fast_campaign_at_);
  if (reprobe_at_) wake = std::min(wake, *reprobe_at_);
  return wake;
}

void Node::request_probe(NodeId leader) {
  {
    std::lock_guard lock(probe_mu_);
    probe_request_ = leader;  // one slot: a newer request replaces one not yet started
  }
  probe_cv_.notify_one();
}

void Node::run_prober() {
  std::unique_lock lock(probe_mu_);
  while (true) {
    probe_cv_.wait(lock, [this] { return probe_stop_ || probe_request_ != kNoNode; });
    if (probe_stop_) return;
    const NodeId leader = probe_request_;
    probe_request_ = kNoNode;
    lock.unlock();
    const bool refused = leader_prober_(leader);
    spdlog::debug("node {}: probed silent leader {}: its peer port {}", options_.core.id, leader,
                  refused ? "refuses connections" : "accepts or does not answer");
    if (refused) report_leader_down(leader);
    lock.lock();
  }
}

}  // namespace raftlock::raft
