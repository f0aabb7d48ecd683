// RaftLog — the core's in-memory log: a compacted prefix (the snapshot point) followed by entries,
// plus the commit, persisted and applied watermarks (modeled on etcd's raftLog).
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "raft/types.h"

namespace raftlock::raft {

class RaftLog {
 public:
  RaftLog() = default;

  // Forgets every entry and restarts the log right after (snapshot_index, snapshot_term). All
  // watermarks move to snapshot_index: the snapshot is committed, persisted and applied.
  void reset(Index snapshot_index, Term snapshot_term);

  Index snapshot_index() const { return snapshot_index_; }
  Term snapshot_term() const { return snapshot_term_; }
  Index first_index() const { return snapshot_index_ + 1; }
  Index last_index() const { return snapshot_index_ + entries_.size(); }
  Term last_term() const { return entries_.empty() ? snapshot_term_ : entries_.back().term; }

  // Term of the entry at `index`: the snapshot's term at the snapshot index, nullopt when the
  // entry was compacted away or does not exist yet.
  std::optional<Term> term(Index index) const;
  bool match_term(Index index, Term term) const;
  // Raft §5.4.1: a candidate's log is at least as up to date as ours if its last term is higher,
  // or equal with an index at least as long.
  bool is_up_to_date(Index last_index, Term last_term) const;

  // The entry at `index`; index must be in [first_index, last_index].
  const Entry& at(Index index) const { return entries_[index - first_index()]; }
  // Entries in [lo, hi) whose data adds up to at most max_bytes, but always at least one entry
  // when the range is not empty. lo must be >= first_index.
  std::vector<Entry> slice(Index lo, Index hi, size_t max_bytes) const;

  // The index of the first entry in `entries` that we do not hold with the same term (a
  // conflict or a new entry), or 0 when we already hold all of them.
  Index find_conflict(const std::vector<Entry>& entries) const;
  // For a rejected append at `index` (which we hold): the first index of the run of entries with
  // the same term as `index`, not going below first_index.
  Index first_index_of_term_run(Index index) const;
  // The largest index whose entry has term `term`, if we hold one (terms are non-decreasing).
  std::optional<Index> last_index_of_term(Term term) const;

  // Appends one entry at last_index + 1.
  void append(Entry entry);
  // Replaces every entry at or after entries.front().index with `entries`. The first index must
  // be in [first_index, last_index + 1] and above the commit index. Returns true when existing
  // entries were truncated.
  bool truncate_and_append(std::vector<Entry> entries);
  // Drops entries up to and including `index` (first_index - 1 <= index <= applied).
  void compact(Index index);

  // Watermarks. committed: known committed. persisted: stored by the caller (log prefix up to
  // here matches our log). handed_out: given to the caller to apply. applied: applied (advance).
  Index committed() const { return committed_; }
  Index persisted() const { return persisted_; }
  Index handed_out() const { return handed_out_; }
  Index applied() const { return applied_; }
  // Raises the commit index (never lowers it; never beyond last_index). True if it moved.
  bool commit_to(Index index);
  void persisted_to(Index index);
  void handed_out_to(Index index) { handed_out_ = index; }
  void applied_to(Index index);
  // Restores watermarks after a restart.
  void restore(Index committed, Index applied);

 private:
  Index snapshot_index_ = 0;
  Term snapshot_term_ = 0;
  std::deque<Entry> entries_;  // entries_[i].index == snapshot_index_ + 1 + i
  Index committed_ = 0;
  Index persisted_ = 0;
  Index handed_out_ = 0;
  Index applied_ = 0;
};

}  // namespace raftlock::raft
