#pragma once
// A state_store on local disk, for single-instance deployments without Redis: one
// append-only journal per scope in a directory (`scope-<id>.journal`). record() and
// commit() append one small checksummed frame and fdatasync it, so their cost does not
// grow with the number of open manifest entries. Group commit: while one frame of a scope
// is being appended and fdatasync'ed, the record(), record_many() and commit() calls of
// that scope that arrive meanwhile are gathered into the next frame, written with one
// fdatasync once the previous one is durable; record_many() puts all its entries into one
// frame, so they become durable together or not at all. load() replays the
// journal: a torn frame at its end (a crash mid-append) is ignored, damage anywhere before
// acknowledged frames is errc::state_corrupt naming the file and the byte offset, never
// treated as empty. The binary format is described in src/detail/journal.hpp.
//
// Compaction: once a journal is larger than compact_ratio times the live state and at
// least compact_min_bytes, it is replaced by a file holding one snapshot of the state
// (temp file in the same directory, fsync, rename, fsync of the directory), so a crash at
// any step leaves either the old journal or the new one.
//
// Migration: the JSON files of earlier versions (`scope-<id>.json`, file_name()) are read
// on a scope's first use, written as a journal the same crash-safe way, and removed only
// once the journal is durable; a JSON file next to a journal is a leftover of that step
// and is removed. A JSON file this build cannot read is errc::state_corrupt, as before.
//
// File names: file_name(scope_id) escapes every byte outside [a-z0-9_-.] (upper case
// included, so case-insensitive file systems cannot merge two scopes), so any db or
// collection name is safe and distinct scope ids never share a file; very long ids are
// shortened with a SHA-256 suffix, and each file also stores its scope id, which load()
// verifies.
//
// The directory is created when missing and locked (flock on `.penne-state.lock`) by
// the first operation or by open(): a second process given the same directory gets
// file::errc::state_dir_in_use instead of silently interleaving writes. Temp files left
// by a crash are removed when the directory is opened.
//
// Blocking I/O runs where journal_options::blocking says: given an executor (a thread pool
// the caller owns), opening the directory, reading a journal, appending a frame with its
// fdatasync and compacting are handed to it, and the caller resumes on its own executor
// afterwards, so an io_context thread keeps serving other scopes while the disk syncs;
// without one they run inline on the calling thread. One scope has at most one frame in
// flight (which is what keeps the journal's frames in order); different scopes append in
// parallel. Blocking jobs get copies of what they need (the frame's bytes, the file's size
// and frame count) and never touch a scope's in-memory state; their results are applied on
// the scope's strand. Once a scope was read, load() answers from memory without I/O (what the
// completed calls made durable). open(), when called directly (at startup), runs on the
// caller's thread; otherwise the first operation runs it through the blocking executor. Do not
// point this store at a network file system.
//
// Thread safety: different scopes may be used concurrently from different threads (a
// mutex guards only the scope map and open(), never appends); the calls for one scope
// must come from one strand (they may overlap there, as the state_store contract allows).
// Cancellation: a cancelled coroutine does not start its operation (errc::cancelled);
// once started, an operation is appended and completes whatever the cancellation state,
// so it is never half applied. Lifetime: the store (and the syscalls object passed to it)
// must outlive every coroutine using it, and the blocking executor's context their calls;
// the destructor releases the lock.

#include <penne/file/syscalls.hpp>
#include <penne/state_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace penne::file {

struct journal_options {
    // A journal is compacted when it is larger than both of these: compact_ratio times the
    // bytes a snapshot of the live state takes, and compact_min_bytes.
    unsigned compact_ratio = 4;
    std::uint64_t compact_min_bytes = 1u << 20;
    // Where the blocking calls run: e.g. a boost::asio::thread_pool's executor. A scope
    // never has two frames in flight, and its calls that arrive meanwhile share the next
    // frame, so one thread serves a scope; more let several scopes' fdatasyncs proceed at
    // the same time (file systems commit concurrent syncs together). Empty: inline, on the
    // calling thread (the library starts no threads).
    boost::asio::any_io_executor blocking;
};

class state_store final : public penne::state_store {
public:
    // The format version of the JSON files of earlier versions (read for migration);
    // files with a higher version are rejected as state_corrupt (written by a newer penne).
    // Journals carry their own version (detail::journal_version).
    static constexpr int format_version = 1;

    explicit state_store(std::filesystem::path dir, syscalls& sys = posix_syscalls());
    state_store(std::filesystem::path dir, journal_options opts, syscalls& sys = posix_syscalls());
    ~state_store() override;
    state_store(const state_store&) = delete;
    state_store& operator=(const state_store&) = delete;

    // Creates and locks the directory and removes stale temp files. Optional: the first
    // operation does it otherwise; calling it at startup turns a bad path into an early
    // error. Idempotent once it succeeded.
    error_code open(diagnostics& diag);

    boost::asio::awaitable<error_code> load(const std::string& scope_id, scope_state& out,
                                            diagnostics& diag) override;
    boost::asio::awaitable<error_code> record(const std::string& scope_id,
                                              const manifest_entry& entry,
                                              diagnostics& diag) override;
    // All entries go into one frame with one fdatasync: after an error none of them is
    // recorded (a frame is all or nothing), which satisfies the prefix rule.
    boost::asio::awaitable<error_code> record_many(const std::string& scope_id,
                                                   std::span<const manifest_entry> entries,
                                                   diagnostics& diag) override;
    boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                              const commit_request& req,
                                              diagnostics& diag) override;
    std::string describe() const override;

    const std::filesystem::path& directory() const noexcept { return dir_; }
    // The name of the journal (inside directory()) that holds `scope_id`'s state.
    static std::string journal_name(std::string_view scope_id);
    // The name of the JSON file earlier versions kept `scope_id`'s state in.
    static std::string file_name(std::string_view scope_id);

private:
    struct scope_slot;
    struct pending_op;
    struct waiter;
    struct loaded_journal;
    struct append_job;

    scope_slot& slot_for(const std::string& scope_id);
    boost::asio::awaitable<error_code> submit(const std::string& scope_id, pending_op op,
                                              scope_state* out, diagnostics& diag);
    boost::asio::awaitable<void> flush_group(const std::string& scope_id, scope_slot& slot);
    boost::asio::awaitable<error_code> append(const std::string& scope_id, scope_slot& slot,
                                              const std::string& ops, diagnostics& diag);
    boost::asio::awaitable<void> maybe_compact(const std::string& scope_id, scope_slot& slot);
    // Run through the blocking executor: they use only the directory (fixed once open) and their
    // arguments.
    error_code read_scope(const std::string& scope_id, loaded_journal& out, diagnostics& diag);
    error_code migrate(const std::string& scope_id, loaded_journal& out, diagnostics& diag);
    void write_frame(const std::string& scope_id, append_job& job, diagnostics& diag);

    std::filesystem::path dir_;
    journal_options opts_;
    syscalls& sys_;
    std::mutex mutex_;
    std::atomic<bool> opened_ = false;  // set under mutex_; read without it
    int lock_fd_ = -1;
    int dir_fd_ = -1;  // the state directory, open while the lock is held
    // unique_ptr: a slot's address must survive rehashing while its strand uses it.
    std::map<std::string, std::unique_ptr<scope_slot>, std::less<>> scopes_;
};

}  // namespace penne::file
