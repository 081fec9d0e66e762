#pragma once
// A state_store on local disk: one JSON file per scope in a directory, for single-instance
// deployments without Redis. Every record() and commit() rewrites the scope's file
// atomically (temp file in the same directory, fsync, rename, fsync of the directory), so
// after a crash at any instruction the file holds either the old or the new state, and
// a completed call is durable. A file this build cannot read is reported as
// errc::state_corrupt naming the file; it is never treated as empty.
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
// I/O is synchronous inside the coroutine: a write costs two fsyncs on local disk (about
// a millisecond on SSDs) and happens once per sealed batch, not per event, so it blocks
// the calling thread briefly. Do not point this store at a network file system.
//
// Thread safety: different scopes may be used concurrently from different threads (a
// mutex guards only the scope map, never I/O); calls for one scope must not overlap, as
// the state_store contract requires. Cancellation: a cancelled coroutine does not start
// its operation (errc::cancelled); once started, an operation runs to completion without
// suspending, so it is never half applied. Lifetime: the store (and the syscalls object
// passed to it) must outlive every coroutine using it; the lock is released on destruction.

#include <penne/file/syscalls.hpp>
#include <penne/state_store.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace penne::file {

class state_store final : public penne::state_store {
public:
    // The format version written into every file; files with a higher version are
    // rejected as state_corrupt (written by a newer penne).
    static constexpr int format_version = 1;

    explicit state_store(std::filesystem::path dir, syscalls& sys = posix_syscalls());
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
    boost::asio::awaitable<error_code> commit(const std::string& scope_id,
                                              const commit_request& req,
                                              diagnostics& diag) override;
    std::string describe() const override;

    const std::filesystem::path& directory() const noexcept { return dir_; }
    // The name of the file (inside directory()) that holds `scope_id`'s state.
    static std::string file_name(std::string_view scope_id);

private:
    struct scope_slot {
        bool loaded = false;
        scope_state state;
    };

    scope_slot& slot_for(const std::string& scope_id);
    error_code loaded_slot(const std::string& scope_id, scope_slot*& slot, diagnostics& diag);
    error_code read_scope(const std::string& scope_id, scope_slot& slot, diagnostics& diag);
    error_code write_scope(const std::string& scope_id, scope_slot& slot, scope_state next,
                           diagnostics& diag);

    std::filesystem::path dir_;
    syscalls& sys_;
    std::mutex mutex_;
    bool opened_ = false;
    int lock_fd_ = -1;
    // unique_ptr: a slot's address must survive rehashing while its strand uses it.
    std::map<std::string, std::unique_ptr<scope_slot>, std::less<>> scopes_;
};

}  // namespace penne::file
