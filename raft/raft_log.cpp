#include "raft/raft_log.h"

#include <algorithm>

namespace raftlock::raft {

void RaftLog::reset(Index snapshot_index, Term snapshot_term) {
  snapshot_index_ = snapshot_index;
  snapshot_term_ = snapshot_term;
  entries_.clear();
  committed_ = persisted_ = handed_out_ = applied_ = snapshot_index;
}

std::optional<Term> RaftLog::term(Index index) const {
  if (index == snapshot_index_) return snapshot_term_;
  if (index < snapshot_index_ || index > last_index()) return std::nullopt;
  return at(index).term;
}

bool RaftLog::match_term(Index index, Term term) const {
  auto ours = this->term(index);
  return ours.has_value() && *ours == term;
}

bool RaftLog::is_up_to_date(Index last_index, Term last_term) const {
  return last_term > this->last_term() ||
         (last_term == this->last_term() && last_index >= this->last_index());
}

std::vector<Entry> RaftLog::slice(Index lo, Index hi, size_t max_bytes) const {
  std::vector<Entry> out;
  hi = std::min(hi, last_index() + 1);
  size_t bytes = 0;
  for (Index i = std::max(lo, first_index()); i < hi; ++i) {
    const Entry& e = at(i);
    if (!out.empty() && bytes + e.data.size() > max_bytes) break;
    bytes += e.data.size();
    out.push_back(e);
  }
  return out;
}

Index RaftLog::find_conflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!match_term(e.index, e.term)) return e.index;
  }
  return 0;
}

Index RaftLog::first_index_of_term_run(Index index) const {
  auto t = term(index);
  if (!t) return index;
  Index first = index;
  while (first > first_index() && term(first - 1) == t) --first;
  return first;
}

std::optional<Index> RaftLog::last_index_of_term(Term term) const {
  // Terms are non-decreasing along the log: find the last entry with term <= `term`.
  auto it = std::upper_bound(entries_.begin(), entries_.end(), term,
                             [](Term t, const Entry& e) { return t < e.term; });
  if (it != entries_.begin()) {
    const Entry& e = *std::prev(it);
    if (e.term == term) return e.index;
    return std::nullopt;
  }
  if (snapshot_term_ == term && snapshot_index_ > 0) return snapshot_index_;
  return std::nullopt;
}

void RaftLog::append(Entry entry) {
  entries_.push_back(std::move(entry));
}

bool RaftLog::truncate_and_append(std::vector<Entry> entries) {
  if (entries.empty()) return false;
  const Index from = entries.front().index;
  bool truncated = false;
  if (from <= last_index()) {
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(from - first_index()),
                   entries_.end());
    truncated = true;
    // The caller's stored copy of the truncated suffix no longer matches our log.
    persisted_ = std::min(persisted_, from - 1);
  }
  for (Entry& e : entries) entries_.push_back(std::move(e));
  return truncated;
}

void RaftLog::compact(Index index) {
  if (index <= snapshot_index_ || index > last_index()) return;
  Term t = at(index).term;
  entries_.erase(entries_.begin(),
                 entries_.begin() + static_cast<std::ptrdiff_t>(index - snapshot_index_));
  snapshot_index_ = index;
  snapshot_term_ = t;
  persisted_ = std::max(persisted_, index);
}

bool RaftLog::commit_to(Index index) {
  index = std::min(index, last_index());
  if (index <= committed_) return false;
  committed_ = index;
  return true;
}

void RaftLog::persisted_to(Index index) {
  persisted_ = std::max(persisted_, std::min(index, last_index()));
}

void RaftLog::applied_to(Index index) {
  applied_ = std::max(applied_, index);
}

void RaftLog::restore(Index committed, Index applied) {
  committed_ = std::clamp(committed, snapshot_index_, last_index());
  applied_ = handed_out_ = applied;
}

}  // namespace raftlock::raft
