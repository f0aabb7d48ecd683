// raft::Core — the pure Raft state machine. Modeled on etcd's raft.go and the Raft thesis; the
// rules each function implements are named in its comments.
#include "raft/core.h"

#include <algorithm>
#include <limits>

#include "raft/membership.h"
#include "raft/progress.h"
#include "raft/raft_log.h"
#include "raft/read_only.h"

namespace raftlock::raft {

namespace {

// Vote requests sent because of a leadership transfer carry this context, so followers that
// still hear from the (outgoing) leader grant them anyway.
constexpr const char* kTransferContext = "transfer";

enum class CampaignKind { kPreElection, kElection, kTransfer };

bool is_vote_request(MessageType t) {
  return t == MessageType::kPreVote || t == MessageType::kVote;
}

bool is_vote_related(MessageType t) {
  return t == MessageType::kPreVote || t == MessageType::kPreVoteResponse ||
         t == MessageType::kVote || t == MessageType::kVoteResponse;
}

// Messages only a leader sends. They are accepted from senders outside our configuration: a
// joining node does not know the configuration yet, and a leader that removed itself keeps
// leading until the removal commits.
bool is_leader_message(MessageType t) {
  return t == MessageType::kAppend || t == MessageType::kHeartbeat || t == MessageType::kSnapshot ||
         t == MessageType::kTimeoutNow || t == MessageType::kReadIndexResponse ||
         t == MessageType::kDurable;
}

Config normalise(Config c) {
  c.election_ticks = std::max(c.election_ticks, 1);
  c.heartbeat_ticks = std::max(c.heartbeat_ticks, 1);
  c.max_inflight = std::max<size_t>(c.max_inflight, 1);
  return c;
}

Status invalid(std::string what) {
  return make_error(ErrorCode::kInvalidArgument, std::move(what));
}

}  // namespace

class Core::Impl {
 public:
  Impl(Config config, InitialState initial);

  void tick();
  Status step(const Message& m);
  Result<EntryId> propose(std::string data);
  Result<EntryId> propose_conf_change(const ConfChange& change);
  Status read_index(std::string context);
  Status transfer_leadership(NodeId target);
  void campaign_now() { hup(); }
  bool leader_down(NodeId leader);
  bool campaign_if_leaderless();
  bool election_still_open() const;
  void report_unreachable(NodeId peer);
  void report_snapshot(NodeId peer, bool success);
  bool has_ready() const;
  Ready ready();
  void advance(const Ready& rd);
  Status compact(Index index, std::shared_ptr<const std::string> data);
  std::optional<SnapshotMeta> snapshot_meta() const;
  CoreStatus status() const;

  Role role() const { return role_; }
  Term term() const { return term_; }
  NodeId leader_id() const { return leader_; }
  NodeId id() const { return id_; }
  Index commit_index() const { return log_.committed(); }
  Index applied_index() const { return log_.applied(); }
  Index last_index() const { return log_.last_index(); }
  const Configuration& config() const { return config_; }

 private:
  // ---- validation and role transitions ----
  Status validate(const Message& m) const;
  void reset(Term term);
  void become_follower(Term term, NodeId leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset_randomized_timeout();
  bool promotable() const { return config_.is_voter(id_); }
  bool heard_from_leader_recently() const {
    return leader_ != kNoNode && election_elapsed_ < cfg_.election_ticks;
  }

  // ---- elections ----
  void tick_election();
  void tick_heartbeat();
  void hup();
  void campaign(CampaignKind kind);
  void handle_vote_request(const Message& m);
  // Records a vote and returns (granted, rejected) among current voters.
  std::pair<size_t, size_t> record_vote(NodeId from, bool granted);
  bool quorum_active() const;

  // ---- per-role message handling ----
  void step_leader(const Message& m);
  void step_candidate(const Message& m);
  void step_follower(const Message& m);

  // ---- replication (leader) ----
  void handle_append_response(const Message& m, PeerProgress& pr);
  void handle_heartbeat_response(const Message& m, PeerProgress& pr);
  bool maybe_send_append(NodeId to, bool send_if_empty);
  void send_append(NodeId to) { maybe_send_append(to, true); }
  void bcast_append();
  // Proposals and commit advances made between two ready() calls share one append per follower:
  // they only mark the broadcast as due, and ready() sends it (flush_appends).
  void flush_appends();
  void bcast_heartbeat(const std::string& context);
  bool maybe_commit();
  void on_leader_commit_advanced();
  void append_leader_entry(EntryType type, std::string data);
  void send_timeout_now(NodeId to);
  void abort_transfer() { transferee_ = kNoNode; }

  // ---- replication (follower) ----
  void handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  void handle_durable(const Message& m);
  bool restore_snapshot(const Snapshot& snapshot);

  // ---- commits a follower makes itself (3-voter clusters) ----
  // Two voters are a quorum: the leader and this follower. The leader tells its followers how
  // far its own log is durable (kDurable) as soon as its write completes; a follower holding the
  // same entries durably commits them without waiting for the leader to hear its
  // acknowledgement and send the new commit index back (two network hops). Only in a cluster
  // whose quorum is two, for entries of the current term (Figure 8).
  bool two_copies_are_a_quorum(NodeId other) const {
    return config_.quorum() <= 2 && config_.is_voter(id_) && config_.is_voter(other);
  }
  void announce_durable();
  void maybe_commit_with_leader_copy();
  // Where a linearizable read must start: the commit index, or further if a follower may already
  // have committed (and applied, and answered from) entries the leader announced as durable.
  Index read_point() const { return std::max(log_.committed(), announced_durable_); }
  void append_to_log(std::vector<Entry> entries);

  // ---- reads ----
  void leader_read(ReadRequest request);
  void release_reads();
  void deliver_reads(std::vector<ConfirmedRead> reads);
  void flush_reads_waiting_for_commit();
  bool committed_in_current_term() const { return log_.term(log_.committed()) == term_; }

  // ---- membership ----
  void recompute_config();
  void apply_conf_entry(const Entry& e, Configuration& config);
  void set_config(Configuration config);
  Configuration config_at(Index index) const;
  void sync_progress_with_config();

  void send(Message m);
  Message make(MessageType type, NodeId to) const;
  SoftState soft_state() const { return SoftState{role_, leader_, term_}; }
  HardState hard_state() const { return HardState{term_, vote_, log_.committed()}; }

  Config cfg_;
  NodeId id_;
  std::mt19937_64 rng_;

  Term term_ = 0;
  NodeId vote_ = kNoNode;
  Role role_ = Role::kFollower;
  NodeId leader_ = kNoNode;
  NodeId dead_leader_ = kNoNode;  // the last leader_down() leader, and the term it led
  Term dead_leader_term_ = 0;

  RaftLog log_;
  std::optional<Snapshot> snapshot_;          // latest snapshot (compacted prefix), for followers
  std::optional<Snapshot> pending_snapshot_;  // received from the leader, not yet handed out

  Configuration base_config_;  // configuration at the snapshot point (or bootstrap)
  Configuration config_;       // base + every conf change in the log (effective on append)
  Index last_conf_index_ = 0;  // index of the newest conf change entry in the log (0: none)

  std::map<NodeId, PeerProgress> progress_;  // leader only; includes self
  std::map<NodeId, bool> votes_;             // candidate / pre-candidate
  NodeId transferee_ = kNoNode;              // leader only

  int64_t election_elapsed_ = 0;
  int64_t heartbeat_elapsed_ = 0;
  int64_t randomized_timeout_ = 0;

  ReadOnlyQueue read_only_;
  std::vector<ReadRequest> reads_waiting_for_commit_;  // leader: no entry of its term committed yet

  std::vector<Message> msgs_;
  bool appends_due_ = false;     // leader: new entries or a new commit index not yet broadcast
  Index announced_durable_ = 0;  // leader: the highest durable index announced (kDurable)
  Index leader_durable_ = 0;     // follower: the leader's announced durable index our log matches
  std::vector<ReadState> read_states_;
  SoftState prev_soft_;
  HardState persisted_hard_state_;
};

// ============================ construction and restart ============================

Core::Impl::Impl(Config config, InitialState initial)
    : cfg_(normalise(config)), id_(cfg_.id), rng_(cfg_.random_seed) {
  std::sort(initial.bootstrap_config.members.begin(), initial.bootstrap_config.members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  base_config_ = initial.bootstrap_config;
  if (initial.snapshot) {
    snapshot_ = std::move(initial.snapshot);
    if (!snapshot_->data) snapshot_->data = std::make_shared<const std::string>();
    log_.reset(snapshot_->meta.index, snapshot_->meta.term);
    base_config_ = snapshot_->meta.config;
  }
  // Keep the contiguous, term-monotonic prefix of what storage gave us.
  for (Entry& e : initial.entries) {
    if (e.index != log_.last_index() + 1 || e.term < log_.last_term()) break;
    log_.append(std::move(e));
  }
  log_.persisted_to(log_.last_index());
  term_ = initial.hard_state.term;
  vote_ = initial.hard_state.vote;
  // Everything after the snapshot that was committed is handed out again for apply: the state
  // machine restarts from the snapshot.
  log_.restore(initial.hard_state.commit, log_.snapshot_index());
  persisted_hard_state_ = initial.hard_state;
  recompute_config();
  become_follower(term_, kNoNode);
  prev_soft_ = soft_state();
}

// ============================ helpers ============================

Message Core::Impl::make(MessageType type, NodeId to) const {
  Message m;
  m.type = type;
  m.from = id_;
  m.to = to;
  m.term = term_;
  return m;
}

void Core::Impl::send(Message m) {
  msgs_.push_back(std::move(m));
}

void Core::Impl::reset_randomized_timeout() {
  // Uniform in [election_ticks, 2*election_ticks) with our own mapping (stable across libraries).
  const uint64_t base = static_cast<uint64_t>(cfg_.election_ticks);
  randomized_timeout_ = static_cast<int64_t>(base + rng_() % base);
}

Status Core::Impl::validate(const Message& m) const {
  // kForward and kForwardResponse are the runtime's; the core never sees them.
  if (static_cast<uint8_t>(m.type) > static_cast<uint8_t>(MessageType::kReadIndexResponse) &&
      m.type != MessageType::kDurable) {
    return invalid("unknown message type");
  }
  if (m.to != id_) {
    return invalid("message for node " + std::to_string(m.to) + " delivered to node " +
                   std::to_string(id_));
  }
  if (m.from == kNoNode || m.from == id_) {
    return invalid("message from invalid sender " + std::to_string(m.from));
  }
  if (!is_vote_related(m.type) && !is_leader_message(m.type) && !config_.contains(m.from)) {
    return invalid(std::string(message_type_name(m.type)) + " from non-member " +
                   std::to_string(m.from));
  }
  if (m.type != MessageType::kAppend && !m.entries.empty()) {
    return invalid(std::string(message_type_name(m.type)) + " must not carry entries");
  }
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      if (m.term == 0) return invalid("vote request with term 0");
      if (m.log_term > m.term) return invalid("vote request: last log term above its term");
      break;
    case MessageType::kDurable:
      if (m.log_term != m.term) return invalid("durable: the entry's term is not the leader's");
      [[fallthrough]];
    case MessageType::kHeartbeat:
    case MessageType::kTimeoutNow:
      if (m.term == 0) return invalid("leader message with term 0");
      break;
    case MessageType::kAppend: {
      if (m.term == 0) return invalid("append with term 0");
      if (m.log_term > m.term) return invalid("append: previous term above message term");
      if (m.index == 0 && m.log_term != 0) return invalid("append: index 0 has term 0");
      Term prev_term = m.log_term;
      for (size_t i = 0; i < m.entries.size(); ++i) {
        const Entry& e = m.entries[i];
        if (e.index != m.index + 1 + i) return invalid("append: entries not contiguous");
        if (e.term == 0 || e.term > m.term || e.term < prev_term) {
          return invalid("append: entry terms out of order");
        }
        if (static_cast<uint8_t>(e.type) > static_cast<uint8_t>(EntryType::kConfChange)) {
          return invalid("append: unknown entry type");
        }
        prev_term = e.term;
      }
      break;
    }
    case MessageType::kSnapshot:
      if (m.term == 0) return invalid("snapshot with term 0");
      if (!m.snapshot || !m.snapshot->data) return invalid("snapshot message without snapshot");
      if (m.snapshot->meta.index == 0 || m.snapshot->meta.term == 0 ||
          m.snapshot->meta.term > m.term) {
        return invalid("snapshot: bad index or term");
      }
      break;
    case MessageType::kAppendResponse:
      // A follower can only have matched entries the leader sent in this term.
      if (role_ == Role::kLeader && m.term == term_ && !m.reject && m.index > log_.last_index()) {
        return invalid("append response beyond the leader's log");
      }
      break;
    default:
      break;
  }
  return Ok{};
}

// ============================ role transitions ============================

void Core::Impl::reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  leader_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_timeout();
  abort_transfer();
  votes_.clear();
  progress_.clear();
  appends_due_ = false;
  announced_durable_ = 0;
  leader_durable_ = 0;
  // A leader that steps down drops its pending reads; the runtime times them out.
  read_only_.clear();
  reads_waiting_for_commit_.clear();
}

void Core::Impl::become_follower(Term term, NodeId leader) {
  reset(term);
  role_ = Role::kFollower;
  leader_ = leader;
}

void Core::Impl::become_pre_candidate() {
  // Pre-vote (thesis §9.6): neither the term nor the vote changes.
  role_ = Role::kPreCandidate;
  votes_.clear();
  leader_ = kNoNode;
}

void Core::Impl::become_candidate() {
  reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Core::Impl::become_leader() {
  reset(term_);
  role_ = Role::kLeader;
  leader_ = id_;
  sync_progress_with_config();
  for (auto& [peer, pr] : progress_) {
    // Followers must prove themselves within the first election timeout (check-quorum).
    pr.recent_active = peer == id_;
    if (peer == id_) {
      pr.match = log_.persisted();
      pr.become_replicate();
      pr.next = log_.last_index() + 1;
    }
  }
  // A new leader commits entries of earlier terms only by committing one of its own (Figure 8),
  // so it appends an empty entry right away.
  append_leader_entry(EntryType::kNoop, {});
}

// ============================ ticks and elections ============================

void Core::Impl::tick() {
  if (role_ == Role::kLeader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

void Core::Impl::tick_election() {
  if (election_elapsed_ < std::numeric_limits<int64_t>::max()) ++election_elapsed_;
  if (promotable() && election_elapsed_ >= randomized_timeout_) {
    election_elapsed_ = 0;
    hup();
  }
}

void Core::Impl::tick_heartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= cfg_.election_ticks) {
    election_elapsed_ = 0;
    // Check-quorum: a leader that has not heard from a quorum for an election timeout may be
    // partitioned away; it steps down so clients look for the real leader.
    if (cfg_.check_quorum) {
      if (!quorum_active()) {
        become_follower(term_, kNoNode);
        return;
      }
      for (auto& [peer, pr] : progress_) pr.recent_active = (peer == id_);
    }
    // A leadership transfer that did not finish within an election timeout is abandoned.
    abort_transfer();
  }
  // A snapshot whose outcome was never reported (lost message, runtime without report_snapshot)
  // is retried after a generous timeout instead of stalling the follower forever.
  for (auto& [peer, pr] : progress_) {
    if (pr.state == ProgressState::kSnapshot && ++pr.snapshot_ticks >= 4 * cfg_.election_ticks) {
      pr.pending_snapshot = 0;
      pr.become_probe();
    }
  }
  if (heartbeat_elapsed_ >= cfg_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    bcast_heartbeat(read_only_.heartbeat_context(read_point()).value_or(""));
  }
}

bool Core::Impl::quorum_active() const {
  size_t active = 0;
  for (NodeId v : config_.voter_ids()) {
    if (v == id_) {
      ++active;
      continue;
    }
    auto it = progress_.find(v);
    if (it != progress_.end() && it->second.recent_active) ++active;
  }
  return active >= config_.quorum();
}

void Core::Impl::hup() {
  if (role_ == Role::kLeader) return;
  campaign(cfg_.pre_vote ? CampaignKind::kPreElection : CampaignKind::kElection);
}

void Core::Impl::campaign(CampaignKind kind) {
  // Learners and nodes outside the configuration never campaign.
  if (!promotable()) return;
  MessageType type;
  Term vote_term;
  if (kind == CampaignKind::kPreElection) {
    become_pre_candidate();
    type = MessageType::kPreVote;
    vote_term = term_ + 1;  // asked for, not adopted
  } else {
    become_candidate();
    type = MessageType::kVote;
    vote_term = term_;
  }
  auto [granted, rejected] = record_vote(id_, true);
  (void)rejected;
  if (granted >= config_.quorum()) {
    // A single-voter cluster wins at once.
    if (kind == CampaignKind::kPreElection) {
      campaign(CampaignKind::kElection);
    } else {
      become_leader();
      bcast_append();
    }
    return;
  }
  for (NodeId v : config_.voter_ids()) {
    if (v == id_) continue;
    Message m = make(type, v);
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    if (kind == CampaignKind::kTransfer) m.context = kTransferContext;
    send(std::move(m));
  }
}

std::pair<size_t, size_t> Core::Impl::record_vote(NodeId from, bool granted) {
  votes_.emplace(from, granted);  // the first answer from a voter counts
  size_t yes = 0, no = 0;
  for (NodeId v : config_.voter_ids()) {
    auto it = votes_.find(v);
    if (it == votes_.end()) continue;
    (it->second ? yes : no)++;
  }
  return {yes, no};
}

void Core::Impl::handle_vote_request(const Message& m) {
  const bool pre = m.type == MessageType::kPreVote;
  // We can vote for the candidate if we already did, or if we have neither voted nor know a
  // leader in this term; a pre-vote is for a future term, so it only needs a higher term.
  bool can_vote =
      vote_ == m.from || (vote_ == kNoNode && leader_ == kNoNode) || (pre && m.term > term_);
  // Pre-vote (§9.6): a voter that heard from a leader within the election timeout refuses, so
  // a node rejoining after a partition cannot disrupt a healthy leader.
  if (pre && heard_from_leader_recently()) can_vote = false;
  const MessageType response = pre ? MessageType::kPreVoteResponse : MessageType::kVoteResponse;
  if (can_vote && log_.is_up_to_date(m.index, m.log_term)) {
    // Granted answers carry the candidate's term (for a pre-vote, the term it asks for).
    Message r = make(response, m.from);
    r.term = m.term;
    send(std::move(r));
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    Message r = make(response, m.from);
    r.reject = true;
    send(std::move(r));
  }
}

bool Core::Impl::leader_down(NodeId leader) {
  // Only the follower of that very leader: a node that already knows a newer leader, or that is
  // campaigning or leading itself, has nothing to forget.
  if (role_ != Role::kFollower || leader == kNoNode || leader == id_ || leader_ != leader) {
    return false;
  }
  // Soft state only: term, vote and log are untouched. A message from `leader` (if it was alive
  // after all) makes it our leader again.
  leader_ = kNoNode;
  dead_leader_ = leader;
  dead_leader_term_ = term_;
  return true;
}

bool Core::Impl::campaign_if_leaderless() {
  if (role_ == Role::kLeader || leader_ != kNoNode || !promotable()) return false;
  // A vote for another node in this term is for a candidate whose election is under way — unless
  // it is the vote that made the dead leader leader of this very term.
  const bool voted_for_dead_leader = vote_ == dead_leader_ && term_ == dead_leader_term_;
  if (vote_ != kNoNode && vote_ != id_ && !voted_for_dead_leader) return false;
  // A candidate's own election that can still be won is left to finish: its votes may be on
  // the way (a voter makes its vote durable before it answers). Starting over would abandon it,
  // and with a slow disk every retry would abandon the one before. One that cannot be won any
  // more without the dead leader (a split vote) starts over. A pre-vote may always be asked
  // again: it changes no term, and late grants for the same term still count.
  if (role_ == Role::kCandidate && election_still_open()) return false;
  hup();
  return true;
}

bool Core::Impl::election_still_open() const {
  size_t possible = 0;  // granted, or not answered by a voter other than the dead leader
  for (NodeId v : config_.voter_ids()) {
    auto it = votes_.find(v);
    if (it != votes_.end() ? it->second : v != dead_leader_) ++possible;
  }
  return possible >= config_.quorum();
}

// ============================ step ============================

Status Core::Impl::step(const Message& m) {
  if (Status st = validate(m); !st.ok()) return st;

  if (m.term > term_) {
    if (is_vote_request(m.type)) {
      // Leader lease (with check-quorum): while we hear from a leader, vote requests for higher
      // terms are ignored — they neither win our vote nor bump our term — unless the leader
      // itself asked for the election (leadership transfer).
      const bool forced = m.type == MessageType::kVote && m.context == kTransferContext;
      if (cfg_.check_quorum && heard_from_leader_recently() && !forced) return Ok{};
    }
    if (m.type == MessageType::kPreVote) {
      // Never adopt the term of a pre-vote: it is only a question.
    } else if (m.type == MessageType::kPreVoteResponse && !m.reject) {
      // A granted pre-vote carries the term we asked for; we adopt it only when we campaign.
    } else {
      become_follower(m.term, names_the_leader(m.type) ? m.from : kNoNode);
    }
  } else if (m.term < term_) {
    if ((cfg_.check_quorum || cfg_.pre_vote) &&
        (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat)) {
      // A stale leader (e.g. after a partition, whose followers did not bump their terms thanks
      // to pre-vote) learns our term from this and steps down.
      send(make(MessageType::kAppendResponse, m.from));
    } else if (m.type == MessageType::kPreVote) {
      // Reject with our term so a lagging pre-candidate catches up.
      Message r = make(MessageType::kPreVoteResponse, m.from);
      r.reject = true;
      send(std::move(r));
    }
    return Ok{};  // everything else from an older term is ignored
  }

  if (is_vote_request(m.type)) {
    handle_vote_request(m);
    return Ok{};
  }
  switch (role_) {
    case Role::kLeader:
      step_leader(m);
      break;
    case Role::kPreCandidate:
    case Role::kCandidate:
      step_candidate(m);
      break;
    case Role::kFollower:
      step_follower(m);
      break;
  }
  return Ok{};
}

void Core::Impl::step_leader(const Message& m) {
  auto it = progress_.find(m.from);
  switch (m.type) {
    case MessageType::kAppendResponse:
      if (it != progress_.end()) handle_append_response(m, it->second);
      break;
    case MessageType::kHeartbeatResponse:
      if (it != progress_.end()) handle_heartbeat_response(m, it->second);
      break;
    case MessageType::kReadIndex:
      if (it != progress_.end()) it->second.recent_active = true;
      leader_read(ReadRequest{m.context, m.from});
      break;
    default:
      break;  // vote responses, a stray TimeoutNow etc. mean nothing to a leader
  }
}

void Core::Impl::step_candidate(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      // Someone won this term: follow it.
      become_follower(m.term, m.from);
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      become_follower(m.term, m.from);
      handle_snapshot(m);
      break;
    case MessageType::kDurable:
      become_follower(m.term, m.from);
      handle_durable(m);
      break;
    case MessageType::kPreVoteResponse:
    case MessageType::kVoteResponse: {
      const bool expected =
          (role_ == Role::kPreCandidate) == (m.type == MessageType::kPreVoteResponse);
      if (!expected) break;
      auto [granted, rejected] = record_vote(m.from, !m.reject);
      const size_t voters = config_.voter_ids().size();
      const size_t quorum = config_.quorum();
      if (granted >= quorum) {
        if (role_ == Role::kPreCandidate) {
          campaign(CampaignKind::kElection);
        } else {
          become_leader();
          bcast_append();
        }
      } else if (rejected > voters - quorum) {
        // A quorum refused: this election cannot be won.
        become_follower(term_, kNoNode);
      }
      break;
    }
    case MessageType::kReadIndex: {
      Message r = make(MessageType::kReadIndexResponse, m.from);
      r.reject = true;
      r.context = m.context;
      send(std::move(r));
      break;
    }
    default:
      break;
  }
}

void Core::Impl::step_follower(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_snapshot(m);
      break;
    case MessageType::kDurable:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_durable(m);
      break;
    case MessageType::kTimeoutNow:
      // Leadership transfer: campaign at once, skipping pre-vote (the leader asked for it).
      campaign(CampaignKind::kTransfer);
      break;
    case MessageType::kReadIndex: {
      // Only the leader can give read indexes.
      Message r = make(MessageType::kReadIndexResponse, m.from);
      r.reject = true;
      r.context = m.context;
      send(std::move(r));
      break;
    }
    case MessageType::kReadIndexResponse:
      if (!m.reject) read_states_.push_back(ReadState{m.index, m.context});
      break;
    default:
      break;
  }
}

// ============================ leader replication ============================

void Core::Impl::append_leader_entry(EntryType type, std::string data) {
  Entry e{term_, log_.last_index() + 1, type, std::move(data)};
  if (type == EntryType::kConfChange) {
    Configuration next = config_;
    apply_conf_entry(e, next);
    last_conf_index_ = e.index;
    log_.append(std::move(e));
    set_config(std::move(next));  // effective as soon as it is in our log
  } else {
    log_.append(std::move(e));
  }
}

bool Core::Impl::maybe_send_append(NodeId to, bool send_if_empty) {
  auto it = progress_.find(to);
  if (it == progress_.end() || to == id_) return false;
  PeerProgress& pr = it->second;
  if (pr.is_paused()) return false;

  const Index prev_index = pr.next - 1;
  auto prev_term = log_.term(prev_index);
  if (!prev_term || pr.next < log_.first_index()) {
    // The entries the follower needs were compacted: send the snapshot instead.
    if (!snapshot_) return false;
    Message m = make(MessageType::kSnapshot, to);
    m.snapshot = *snapshot_;
    send(std::move(m));
    pr.become_snapshot(snapshot_->meta.index);
    return true;
  }
  std::vector<Entry> entries = log_.slice(pr.next, log_.last_index() + 1, cfg_.max_message_bytes);
  if (entries.empty() && !send_if_empty) return false;
  Message m = make(MessageType::kAppend, to);
  m.index = prev_index;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  pr.commit_sent = m.commit;
  const bool had_entries = !entries.empty();
  const Index last_sent = had_entries ? entries.back().index : prev_index;
  m.entries = std::move(entries);
  send(std::move(m));
  pr.sent_append(had_entries, last_sent);
  return true;
}

void Core::Impl::bcast_append() {
  for (auto& [peer, pr] : progress_) {
    if (peer != id_) send_append(peer);
  }
}

void Core::Impl::flush_appends() {
  appends_due_ = false;
  if (role_ != Role::kLeader) return;
  const Index committed = log_.committed();
  for (auto& [peer, pr] : progress_) {
    if (peer == id_) continue;
    // An append goes out if there are entries to send, or a commit index the follower has not
    // been told yet; a follower with neither gets nothing. One told that our log is durable
    // through the commit index commits it by itself (maybe_commit_with_leader_copy) and needs no
    // append for it (were it to miss the kDurable, the next heartbeat brings the commit index).
    const bool commit_untold = pr.commit_sent < committed && pr.durable_sent < committed;
    if (!maybe_send_append(peer, commit_untold)) continue;
    // Pipelining: more entries than one message holds go out now too (within the window).
    while (maybe_send_append(peer, false)) {
    }
  }
}

void Core::Impl::bcast_heartbeat(const std::string& context) {
  for (auto& [peer, pr] : progress_) {
    if (peer == id_) continue;
    Message m = make(MessageType::kHeartbeat, peer);
    // Never tell a follower to commit beyond what it is known to hold.
    m.commit = std::min(log_.committed(), pr.match);
    pr.commit_sent = std::max(pr.commit_sent, m.commit);
    m.context = context;
    send(std::move(m));
  }
}

void Core::Impl::handle_append_response(const Message& m, PeerProgress& pr) {
  pr.recent_active = true;
  if (m.reject) {
    // Fast backtracking by conflicting term: skip the follower's whole conflicting term.
    Index next_hint = std::max<Index>(m.reject_hint, 1);
    if (m.reject_term != 0) {
      if (auto last_of_term = log_.last_index_of_term(m.reject_term)) {
        next_hint = *last_of_term + 1;
      }
    }
    if (pr.maybe_decrease_to(m.index, next_hint)) send_append(m.from);
    return;
  }
  const bool was_paused = pr.is_paused();
  // A probe answered at our current match (e.g. a follower that was already up to date) also
  // ends probing; anything else that does not advance match is a duplicate or reordered answer.
  const bool probe_confirmed = pr.state == ProgressState::kProbe && pr.match == m.index;
  if (!pr.maybe_update(m.index) && !probe_confirmed) return;
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      // The follower has the snapshot (or caught up otherwise): replicate from its match.
      if (pr.match + 1 >= log_.first_index()) {
        pr.become_probe();
        pr.become_replicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_up_to(m.index);
      break;
  }
  if (maybe_commit()) {
    on_leader_commit_advanced();
    if (role_ != Role::kLeader) return;
  } else if (was_paused) {
    send_append(m.from);
  }
  // Keep the pipeline full.
  while (maybe_send_append(m.from, false)) {
  }
  // A transfer target that caught up is told to campaign now.
  if (m.from == transferee_ && pr.match == log_.last_index()) send_timeout_now(m.from);
}

void Core::Impl::handle_heartbeat_response(const Message& m, PeerProgress& pr) {
  pr.recent_active = true;
  pr.probe_sent = false;  // probing resumes once per heartbeat interval
  // Responses to appends may have been lost: let one more through so the follower catches up.
  if (pr.state == ProgressState::kReplicate && pr.inflights.full()) pr.inflights.free_first();
  // A lagging follower gets the missing entries; a probed one gets a probe (which, answered at
  // its match, moves it back to pipelined replication).
  if (pr.match < log_.last_index() || pr.state == ProgressState::kProbe) send_append(m.from);
  if (!m.context.empty()) {
    read_only_.record_ack(m.from, m.context);
    release_reads();
  }
}

bool Core::Impl::maybe_commit() {
  std::vector<Index> matches;
  for (NodeId v : config_.voter_ids()) {
    if (v == id_) {
      matches.push_back(log_.persisted());  // our own match: what we have stored
      continue;
    }
    auto it = progress_.find(v);
    matches.push_back(it == progress_.end() ? 0 : it->second.match);
  }
  if (matches.empty()) return false;
  std::sort(matches.begin(), matches.end(), std::greater<Index>());
  const Index candidate = matches[config_.quorum() - 1];
  // Figure 8: only entries of the current term are committed by counting replicas.
  if (candidate <= log_.committed() || log_.term(candidate) != term_) return false;
  return log_.commit_to(candidate);
}

void Core::Impl::announce_durable() {
  const Index durable = log_.persisted();
  if (role_ != Role::kLeader || durable <= announced_durable_ || log_.term(durable) != term_)
    return;
  bool announced = false;
  for (auto& [peer, pr] : progress_) {
    // A follower being probed or sent a snapshot would not hold these entries: not worth a message.
    if (peer == id_ || pr.state != ProgressState::kReplicate || !two_copies_are_a_quorum(peer)) {
      continue;
    }
    // One that acknowledged them already made them committed here: the commit index is news to
    // it, and the commit's own append tells it (flush_appends).
    if (pr.match >= durable) continue;
    Message m = make(MessageType::kDurable, peer);
    m.index = durable;
    m.log_term = term_;
    m.commit = log_.committed();
    send(std::move(m));
    pr.durable_sent = durable;
    announced = true;
  }
  // Reads after this point start at `durable` at least: a follower may answer from it any time.
  if (announced) announced_durable_ = durable;
}

void Core::Impl::on_leader_commit_advanced() {
  flush_reads_waiting_for_commit();
  // Followers learn the new commit index from the next ready()'s appends (one per follower,
  // however many responses advanced it in between).
  appends_due_ = true;
  // A leader that removed itself steps down once the removal is committed (thesis §4.2.2).
  if (!config_.contains(id_) && last_conf_index_ <= log_.committed()) {
    flush_appends();  // tell the followers before leaving
    become_follower(term_, kNoNode);
  }
}

void Core::Impl::send_timeout_now(NodeId to) {
  send(make(MessageType::kTimeoutNow, to));
}

// ============================ follower replication ============================

void Core::Impl::append_to_log(std::vector<Entry> entries) {
  if (entries.empty()) return;
  bool has_conf = false;
  for (const Entry& e : entries) has_conf = has_conf || e.type == EntryType::kConfChange;
  bool truncated = log_.truncate_and_append(std::move(entries));
  // Configuration changes take effect on append and are undone when their entry is truncated.
  if (truncated || has_conf) recompute_config();
}

void Core::Impl::handle_append(const Message& m) {
  if (m.index < log_.committed()) {
    // Everything up to our commit index is settled: tell the leader where we are.
    Message r = make(MessageType::kAppendResponse, m.from);
    r.index = log_.committed();
    send(std::move(r));
    return;
  }
  if (log_.match_term(m.index, m.log_term)) {
    const Index last_new = m.index + m.entries.size();
    const Index conflict = log_.find_conflict(m.entries);
    if (conflict != 0) {
      if (conflict <= log_.committed()) return;  // never rewrite committed entries
      append_to_log(std::vector<Entry>(
          m.entries.begin() + static_cast<std::ptrdiff_t>(conflict - m.index - 1),
          m.entries.end()));
    }
    // Commit what the leader committed, but only within what this append proved we match.
    log_.commit_to(std::min(m.commit, last_new));
    Message r = make(MessageType::kAppendResponse, m.from);
    r.index = last_new;
    send(std::move(r));
    return;
  }
  // Reject, with a hint for fast backtracking: our term at the conflicting index and the first
  // index we hold with that term; or, when our log is too short, term 0 and last_index + 1.
  Message r = make(MessageType::kAppendResponse, m.from);
  r.reject = true;
  r.index = m.index;
  if (m.index > log_.last_index()) {
    r.reject_term = 0;
    r.reject_hint = log_.last_index() + 1;
  } else {
    r.reject_term = log_.term(m.index).value_or(0);
    r.reject_hint = log_.first_index_of_term_run(m.index);
  }
  send(std::move(r));
}

void Core::Impl::handle_heartbeat(const Message& m) {
  // The leader sends commit = min(its commit, our match), so this never exceeds what we hold.
  log_.commit_to(std::min(m.commit, log_.last_index()));
  Message r = make(MessageType::kHeartbeatResponse, m.from);
  r.context = m.context;
  send(std::move(r));
}

void Core::Impl::handle_durable(const Message& m) {
  // Our entry at m.index has the leader's term there: by Log Matching our log equals the
  // leader's through it, and the leader holds all of that durably.
  if (!log_.match_term(m.index, m.log_term)) return;
  leader_durable_ = std::max(leader_durable_, m.index);
  log_.commit_to(std::min(m.commit, m.index));
  maybe_commit_with_leader_copy();
}

void Core::Impl::maybe_commit_with_leader_copy() {
  if (role_ != Role::kFollower || leader_ == kNoNode || !two_copies_are_a_quorum(leader_)) return;
  // Stored durably here and on the leader: on a quorum of two.
  const Index candidate = std::min(leader_durable_, log_.persisted());
  // Figure 8: only entries of the current term are committed by counting copies.
  if (candidate <= log_.committed() || log_.term(candidate) != term_) return;
  log_.commit_to(candidate);
}

void Core::Impl::handle_snapshot(const Message& m) {
  Message r = make(MessageType::kAppendResponse, m.from);
  if (restore_snapshot(*m.snapshot)) {
    r.index = log_.last_index();
  } else {
    r.index = log_.committed();
  }
  send(std::move(r));
}

bool Core::Impl::restore_snapshot(const Snapshot& snapshot) {
  const SnapshotMeta& meta = snapshot.meta;
  if (meta.index <= log_.committed()) return false;  // we already have all of it
  if (log_.match_term(meta.index, meta.term)) {
    // We hold the snapshot's last entry: keep our log and just fast-forward the commit index
    // (etcd's rule); the entries are applied normally.
    log_.commit_to(meta.index);
    return false;
  }
  // Replace the whole log by the snapshot.
  log_.reset(meta.index, meta.term);
  snapshot_ = snapshot;
  pending_snapshot_ = snapshot;
  base_config_ = meta.config;
  recompute_config();
  return true;
}

// ============================ proposals ============================

Result<EntryId> Core::Impl::propose(std::string data) {
  if (role_ != Role::kLeader) {
    if (leader_ == kNoNode) return make_error(ErrorCode::kNoLeader, "no leader known");
    return make_error(ErrorCode::kNotLeader,
                      "not the leader; leader is " + std::to_string(leader_));
  }
  if (transferee_ != kNoNode) {
    return make_error(ErrorCode::kBusy, "leadership transfer in progress");
  }
  append_leader_entry(EntryType::kNormal, std::move(data));
  EntryId id{log_.last_index(), term_};
  appends_due_ = true;  // sent by the next ready(), together with every other new entry
  return id;
}

Result<EntryId> Core::Impl::propose_conf_change(const ConfChange& change) {
  if (role_ != Role::kLeader) {
    if (leader_ == kNoNode) return make_error(ErrorCode::kNoLeader, "no leader known");
    return make_error(ErrorCode::kNotLeader,
                      "not the leader; leader is " + std::to_string(leader_));
  }
  if (transferee_ != kNoNode) {
    return make_error(ErrorCode::kBusy, "leadership transfer in progress");
  }
  // One change at a time, and only after this leader committed an entry of its own term (so a
  // change left uncommitted by an earlier leader cannot overlap with ours).
  if (!committed_in_current_term()) {
    return make_error(ErrorCode::kBusy, "leader has not committed an entry of its term yet");
  }
  if (last_conf_index_ > log_.committed()) {
    return make_error(ErrorCode::kBusy, "an earlier membership change is not committed yet");
  }
  if (Status st = validate_conf_change(config_, change); !st.ok()) return st.error();
  append_leader_entry(EntryType::kConfChange, encode_conf_change(change));
  EntryId id{log_.last_index(), term_};
  appends_due_ = true;
  return id;
}

Status Core::Impl::transfer_leadership(NodeId target) {
  if (role_ != Role::kLeader) {
    if (leader_ == kNoNode) return make_error(ErrorCode::kNoLeader, "no leader known");
    return make_error(ErrorCode::kNotLeader,
                      "not the leader; leader is " + std::to_string(leader_));
  }
  if (target == id_) return invalid("cannot transfer leadership to self");
  if (!config_.is_voter(target)) {
    return invalid("transfer target " + std::to_string(target) + " is not a voter");
  }
  if (transferee_ == target) return Ok{};
  transferee_ = target;
  // The transfer is abandoned if it does not finish within one election timeout.
  election_elapsed_ = 0;
  PeerProgress& pr = progress_.at(target);
  if (pr.match == log_.last_index()) {
    send_timeout_now(target);
  } else {
    send_append(target);
  }
  return Ok{};
}

void Core::Impl::report_unreachable(NodeId peer) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(peer);
  if (it == progress_.end() || peer == id_) return;
  // Appends may have been lost: stop pipelining and probe.
  if (it->second.state == ProgressState::kReplicate) it->second.become_probe();
}

void Core::Impl::report_snapshot(NodeId peer, bool success) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(peer);
  if (it == progress_.end() || it->second.state != ProgressState::kSnapshot) return;
  PeerProgress& pr = it->second;
  if (!success) pr.pending_snapshot = 0;
  pr.become_probe();
  // Wait for the next heartbeat response before probing.
  pr.probe_sent = true;
}

// ============================ reads ============================

Status Core::Impl::read_index(std::string context) {
  if (role_ == Role::kLeader) {
    leader_read(ReadRequest{std::move(context), id_});
    return Ok{};
  }
  if (leader_ == kNoNode) return make_error(ErrorCode::kNoLeader, "no leader known");
  // Forward to the leader; it answers with kReadIndexResponse after confirming leadership.
  Message m = make(MessageType::kReadIndex, leader_);
  m.context = std::move(context);
  send(std::move(m));
  return Ok{};
}

void Core::Impl::leader_read(ReadRequest request) {
  // Thesis §6.4 step 1: the commit index is only known to be current once the leader committed
  // an entry of its own term.
  if (!committed_in_current_term()) {
    reads_waiting_for_commit_.push_back(std::move(request));
    return;
  }
  read_only_.add(std::move(request));
  // Steps 2-3: record the commit index and confirm leadership with a heartbeat round (unless a
  // round is already out: then this read waits for the next one).
  release_reads();
}

void Core::Impl::deliver_reads(std::vector<ConfirmedRead> reads) {
  for (ConfirmedRead& r : reads) {
    if (r.request.from == id_) {
      read_states_.push_back(ReadState{r.index, std::move(r.request.context)});
    } else {
      Message m = make(MessageType::kReadIndexResponse, r.request.from);
      m.index = r.index;
      m.context = std::move(r.request.context);
      send(std::move(m));
    }
  }
}

void Core::Impl::release_reads() {
  for (;;) {
    deliver_reads(read_only_.release(config_, id_));
    if (!read_only_.should_send_now()) return;
    // The next round goes out now, with the read point (commit index, or the announced durable
    // index when higher) as its read index.
    std::string context = read_only_.heartbeat_context(read_point()).value_or("");
    std::vector<ConfirmedRead> confirmed = read_only_.release(config_, id_);
    if (confirmed.empty()) {
      bcast_heartbeat(context);
      return;
    }
    deliver_reads(std::move(confirmed));  // a single voter confirms by itself
  }
}

void Core::Impl::flush_reads_waiting_for_commit() {
  if (reads_waiting_for_commit_.empty() || !committed_in_current_term()) return;
  std::vector<ReadRequest> waiting = std::move(reads_waiting_for_commit_);
  reads_waiting_for_commit_.clear();
  for (ReadRequest& r : waiting) leader_read(std::move(r));
}

// ============================ membership ============================

void Core::Impl::apply_conf_entry(const Entry& e, Configuration& config) {
  auto change = decode_conf_change(e.data);
  if (change.ok()) apply_conf_change(config, *change);
  // An undecodable change is ignored identically on every node.
}

Configuration Core::Impl::config_at(Index index) const {
  Configuration c = base_config_;
  for (Index i = log_.first_index(); i <= std::min(index, log_.last_index()); ++i) {
    const Entry& e = log_.at(i);
    if (e.type == EntryType::kConfChange) {
      auto change = decode_conf_change(e.data);
      if (change.ok()) apply_conf_change(c, *change);
    }
  }
  return c;
}

void Core::Impl::recompute_config() {
  Configuration c = base_config_;
  Index last_conf = 0;
  for (Index i = log_.first_index(); i <= log_.last_index(); ++i) {
    const Entry& e = log_.at(i);
    if (e.type != EntryType::kConfChange) continue;
    apply_conf_entry(e, c);
    last_conf = i;
  }
  last_conf_index_ = last_conf;
  set_config(std::move(c));
}

void Core::Impl::set_config(Configuration config) {
  if (config == config_) return;
  config_ = std::move(config);
  if (role_ != Role::kLeader) return;
  sync_progress_with_config();
  if (transferee_ != kNoNode && !config_.is_voter(transferee_)) abort_transfer();
  // The quorum may have shrunk: entries or reads may now be confirmed.
  if (maybe_commit()) on_leader_commit_advanced();
  if (role_ == Role::kLeader) release_reads();
}

void Core::Impl::sync_progress_with_config() {
  for (auto it = progress_.begin(); it != progress_.end();) {
    if (it->first != id_ && !config_.contains(it->first)) {
      it = progress_.erase(it);
    } else {
      ++it;
    }
  }
  for (const Member& m : config_.members) {
    if (progress_.count(m.id)) continue;
    PeerProgress pr(cfg_.max_inflight);
    pr.next = log_.last_index() + 1;
    pr.recent_active = true;  // give a new member an election timeout before it counts as silent
    progress_.emplace(m.id, std::move(pr));
  }
  // (The leader's own entry is never erased above, so it stays while the leader is removed.)
}

// ============================ snapshots ============================

Status Core::Impl::compact(Index index, std::shared_ptr<const std::string> data) {
  if (!data) return invalid("compact: snapshot data is null");
  if (index > log_.applied()) {
    return invalid("compact: index " + std::to_string(index) + " is above the applied index " +
                   std::to_string(log_.applied()));
  }
  if (index <= log_.snapshot_index()) {
    return invalid("compact: index " + std::to_string(index) + " is already compacted");
  }
  Snapshot s;
  s.meta.index = index;
  s.meta.term = log_.term(index).value_or(0);
  s.meta.config = config_at(index);
  s.data = std::move(data);
  base_config_ = s.meta.config;
  log_.compact(index);
  snapshot_ = std::move(s);
  return Ok{};
}

std::optional<SnapshotMeta> Core::Impl::snapshot_meta() const {
  if (!snapshot_) return std::nullopt;
  return snapshot_->meta;
}

// ============================ Ready / advance ============================

bool Core::Impl::has_ready() const {
  return soft_state() != prev_soft_ || hard_state() != persisted_hard_state_ ||
         pending_snapshot_.has_value() || log_.persisted() < log_.last_index() || !msgs_.empty() ||
         log_.handed_out() < std::min(log_.committed(), log_.persisted()) ||
         !read_states_.empty() || (appends_due_ && role_ == Role::kLeader);
}

Ready Core::Impl::ready() {
  if (appends_due_) flush_appends();
  Ready rd;
  if (SoftState ss = soft_state(); ss != prev_soft_) {
    rd.soft_state = ss;
    prev_soft_ = ss;
  }
  if (HardState hs = hard_state(); hs != persisted_hard_state_) rd.hard_state = hs;
  if (pending_snapshot_) {
    rd.snapshot = std::move(pending_snapshot_);
    pending_snapshot_.reset();
  }
  if (log_.persisted() < log_.last_index()) {
    rd.entries =
        log_.slice(log_.persisted() + 1, log_.last_index() + 1, std::numeric_limits<size_t>::max());
  }
  rd.messages = std::move(msgs_);
  msgs_.clear();
  // Only entries that are committed AND stored locally may be applied.
  const Index apply_up_to = std::min(log_.committed(), log_.persisted());
  if (log_.handed_out() < apply_up_to) {
    rd.committed_entries =
        log_.slice(log_.handed_out() + 1, apply_up_to + 1, std::numeric_limits<size_t>::max());
    log_.handed_out_to(apply_up_to);
  }
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  return rd;
}

void Core::Impl::advance(const Ready& rd) {
  if (rd.hard_state) persisted_hard_state_ = *rd.hard_state;
  if (!rd.entries.empty()) {
    // The newest handed-out entry our log still holds (a new leader may have truncated some
    // meanwhile): by Log Matching the caller's log now matches ours up to it.
    for (auto it = rd.entries.rbegin(); it != rd.entries.rend(); ++it) {
      if (log_.match_term(it->index, it->term)) {
        log_.persisted_to(it->index);
        break;
      }
    }
    if (role_ == Role::kLeader) {
      if (auto it = progress_.find(id_); it != progress_.end()) {
        it->second.maybe_update(log_.persisted());
      }
      if (maybe_commit()) on_leader_commit_advanced();
      announce_durable();
    } else {
      maybe_commit_with_leader_copy();
    }
  }
  if (!rd.committed_entries.empty()) log_.applied_to(rd.committed_entries.back().index);
}

// ============================ status ============================

CoreStatus Core::Impl::status() const {
  CoreStatus s;
  s.id = id_;
  s.role = role_;
  s.term = term_;
  s.leader_id = leader_;
  s.vote = vote_;
  s.commit_index = log_.committed();
  s.applied_index = log_.applied();
  s.last_index = log_.last_index();
  s.first_index = log_.first_index();
  s.config = config_;
  if (role_ == Role::kLeader) {
    for (const auto& [peer, pr] : progress_) {
      Progress p;
      p.match = peer == id_ ? log_.persisted() : pr.match;
      p.next = pr.next;
      p.state = pr.state;
      p.recent_active = pr.recent_active;
      s.progress.emplace(peer, p);
    }
  }
  s.transferee = transferee_;
  return s;
}

// ============================ Core forwarding ============================

Core::Core(Config config, InitialState initial)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(initial))) {}
Core::~Core() = default;
void Core::tick() {
  impl_->tick();
}
Status Core::step(const Message& message) {
  return impl_->step(message);
}
Result<EntryId> Core::propose(std::string data) {
  return impl_->propose(std::move(data));
}
Result<EntryId> Core::propose_conf_change(const ConfChange& change) {
  return impl_->propose_conf_change(change);
}
Status Core::read_index(std::string context) {
  return impl_->read_index(std::move(context));
}
Status Core::transfer_leadership(NodeId target) {
  return impl_->transfer_leadership(target);
}
void Core::campaign() {
  impl_->campaign_now();
}
void Core::report_unreachable(NodeId peer) {
  impl_->report_unreachable(peer);
}
bool Core::leader_down(NodeId leader) {
  return impl_->leader_down(leader);
}
bool Core::campaign_if_leaderless() {
  return impl_->campaign_if_leaderless();
}
void Core::report_snapshot(NodeId peer, bool success) {
  impl_->report_snapshot(peer, success);
}
bool Core::has_ready() const {
  return impl_->has_ready();
}
Ready Core::ready() {
  return impl_->ready();
}
void Core::advance(const Ready& ready) {
  impl_->advance(ready);
}
Status Core::compact(Index index, std::shared_ptr<const std::string> data) {
  return impl_->compact(index, std::move(data));
}
std::optional<SnapshotMeta> Core::snapshot_meta() const {
  return impl_->snapshot_meta();
}
CoreStatus Core::status() const {
  return impl_->status();
}
Role Core::role() const {
  return impl_->role();
}
Term Core::term() const {
  return impl_->term();
}
NodeId Core::leader_id() const {
  return impl_->leader_id();
}
NodeId Core::id() const {
  return impl_->id();
}
Index Core::commit_index() const {
  return impl_->commit_index();
}
Index Core::applied_index() const {
  return impl_->applied_index();
}
Index Core::last_index() const {
  return impl_->last_index();
}
const Configuration& Core::config() const {
  return impl_->config();
}

}  // namespace raftlock::raft
