#include <penne/file/error.hpp>
#include <penne/file/state_store.hpp>
#include <penne/memory_state_store.hpp>

#include "detail/journal.hpp"
#include "detail/offload.hpp"
#include "detail/posix_io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <variant>
#include <vector>

namespace penne::file {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::string_view format_tag = "penne.scope_state";
constexpr const char* lock_file_name = ".penne-state.lock";
constexpr std::string_view file_prefix = "scope-";
constexpr std::string_view file_suffix = ".json";
constexpr std::string_view journal_suffix = ".journal";
// Escaped ids longer than this are shortened; keeps names far below NAME_MAX (255).
constexpr std::size_t max_stem = 200;
constexpr std::size_t kept_stem = 150;
constexpr char hex_digits[] = "0123456789abcdef";

// Read the state with `auto cs = co_await asio::this_coro::cancellation_state;` in the
// operation itself: g++ 12 miscompiles `if (co_await ...)` followed by a `co_return` in
// the branch (the coroutine frame is resumed at the wrong address).
bool cancelled(const asio::cancellation_state& cs) noexcept {
    return cs.cancelled() != asio::cancellation_type::none;
}

std::string sha256_hex(std::string_view data, std::size_t bytes) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    std::string out;
    for (std::size_t i = 0; i < bytes; ++i) {
        out += hex_digits[digest[i] >> 4];
        out += hex_digits[digest[i] & 0xf];
    }
    return out;
}

// Reading a file we wrote: every failure is a reason string for the corruption report.
struct reader {
    std::string why;

    bool fail(std::string reason) {
        why = std::move(reason);
        return false;
    }
    bool string_field(const json::object& o, std::string_view name, std::string& out) {
        auto* v = o.if_contains(name);
        if (!v || !v->is_string())
            return fail("field '" + std::string(name) + "' is not a string");
        out.assign(v->get_string().begin(), v->get_string().end());
        return true;
    }
    bool u64_field(const json::object& o, std::string_view name, std::uint64_t& out) {
        auto* v = o.if_contains(name);
        // Boost.JSON parses values that fit as int64 and only larger ones as uint64.
        if (v && v->is_int64() && v->get_int64() >= 0) {
            out = static_cast<std::uint64_t>(v->get_int64());
            return true;
        }
        if (v && v->is_uint64()) {
            out = v->get_uint64();
            return true;
        }
        return fail("field '" + std::string(name) + "' is not a non-negative integer");
    }
    bool token_field(const json::object& o, std::string_view name, resume_token& out) {
        std::string hex;
        if (!string_field(o, name, hex))
            return false;
        out.clear();
        if (!hex.empty() && !out.assign_hex(hex)) {
            return fail("field '" + std::string(name) + "' is not a hex-encoded BSON document");
        }
        return true;
    }
};

enum class decode_result { ok, corrupt, newer_version };

decode_result decode_state(std::string_view text, const std::string& scope_id, scope_state& out,
                           std::string& why, std::int64_t& version) {
    json::parse_options opts;
    // Database and collection names are UTF-8 in MongoDB, but a byte-exact round trip
    // matters more here than validation.
    opts.allow_invalid_utf8 = true;
    error_code ec;
    json::value doc = json::parse(text, ec, {}, opts);
    if (ec) {
        why = "not valid JSON: " + ec.message();
        return decode_result::corrupt;
    }
    reader r;
    auto corrupt = [&] {
        why = r.why;
        return decode_result::corrupt;
    };
    auto* root = doc.if_object();
    if (!root)
        return r.fail("the document is not a JSON object"), corrupt();
    std::string tag;
    if (!r.string_field(*root, "format", tag))
        return corrupt();
    if (tag != format_tag)
        return r.fail("field 'format' is '" + tag + "'"), corrupt();
    auto* v = root->if_contains("version");
    if (!v || !v->is_int64() || v->get_int64() < 1) {
        return r.fail("field 'version' is not a positive integer"), corrupt();
    }
    version = v->get_int64();
    if (version > state_store::format_version)
        return decode_result::newer_version;
    std::string stored_scope;
    if (!r.string_field(*root, "scope", stored_scope))
        return corrupt();
    if (stored_scope != scope_id) {
        return r.fail("it belongs to scope '" + stored_scope + "'"), corrupt();
    }

    scope_state state;
    auto* wm = root->if_contains("watermark");
    if (!wm)
        return r.fail("field 'watermark' is missing"), corrupt();
    if (!wm->is_null()) {
        state.watermark.emplace();
        if (!r.token_field(*root, "watermark", *state.watermark))
            return corrupt();
    }
    auto* entries = root->if_contains("entries");
    if (!entries || !entries->is_array()) {
        return r.fail("field 'entries' is not an array"), corrupt();
    }
    std::set<std::string, std::less<>> keys;
    for (const auto& item : entries->get_array()) {
        auto* o = item.if_object();
        if (!o)
            return r.fail("an entry is not a JSON object"), corrupt();
        manifest_entry e;
        auto* durable = o->if_contains("durable");
        if (!r.u64_field(*o, "seq", e.seq) || !r.string_field(*o, "key", e.key) ||
            !r.string_field(*o, "db", e.db) || !r.string_field(*o, "coll", e.coll) ||
            !r.token_field(*o, "first", e.first) || !r.token_field(*o, "last", e.last) ||
            !r.u64_field(*o, "count", e.count)) {
            return r.fail("entry " + std::to_string(state.entries.size()) + ": " + r.why),
                   corrupt();
        }
        if (!durable || !durable->is_bool()) {
            return r.fail("entry '" + e.key + "': field 'durable' is not a boolean"), corrupt();
        }
        e.durable = durable->get_bool();
        if (!state.entries.empty() && state.entries.back().seq > e.seq) {
            return r.fail("entries are not in seq order at key '" + e.key + "'"), corrupt();
        }
        if (!keys.insert(e.key).second) {
            return r.fail("key '" + e.key + "' appears twice"), corrupt();
        }
        state.entries.push_back(std::move(e));
    }
    out = std::move(state);
    return decode_result::ok;
}

std::string escaped_stem(std::string_view scope_id) {
    std::string stem;
    for (char ch : scope_id) {
        auto c = static_cast<unsigned char>(ch);
        bool keep =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (keep) {
            stem += ch;
        } else {
            stem += '%';
            stem += hex_digits[c >> 4];
            stem += hex_digits[c & 0xf];
        }
    }
    if (stem.size() > max_stem) {
        // '~' is always escaped above, so a shortened name never equals an unshortened one.
        std::size_t cut = kept_stem;
        if (stem[cut - 1] == '%') {
            cut -= 1;
        } else if (stem[cut - 2] == '%') {
            cut -= 2;
        }
        stem.resize(cut);
        stem += '~';
        stem += sha256_hex(scope_id, 16);
    }
    return stem;
}

std::string move_aside_advice(const std::string& path) {
    return " penne left the file untouched. Restore it from a backup, or move it aside (mv " +
           path + " " + path +
           ".bad) to start this scope from scratch: the scope then resumes from its "
           "configured start position, which can repeat or skip events.";
}

std::string journal_advice(const std::string& path, std::uint64_t offset) {
    return " penne left the file untouched. Restore it from a backup; or keep the state "
           "before the damage with `truncate -s " +
           std::to_string(offset) + " " + path +
           "` (batches recorded after that point may be written again under other keys); or "
           "move it aside (mv " +
           path + " " + path +
           ".bad) to start this scope from scratch: the scope then resumes from its "
           "configured start position, which can repeat or skip events.";
}

}  // namespace

// One call waiting for the frame its operation was put in.
struct state_store::waiter {
    bool done = false;
    bool lead = false;  // this call writes the next group (and hands over afterwards)
    error_code ec;
    std::string message;
    scope_state* out = nullptr;  // a load(): filled from the state once the group is done
    asio::steady_timer* timer = nullptr;
};

struct state_store::pending_op {
    // monostate: a load(), which writes nothing but must wait for the scope to be read.
    // The entries of one record() or record_many() call, in order.
    std::variant<std::monostate, std::vector<manifest_entry>, commit_request> op;
};

namespace {

// The journal on disk as the store last left it.
struct journal_file {
    std::uint64_t file_size = 0;   // bytes in the journal; 0: there is none yet
    std::uint64_t valid_size = 0;  // its intact prefix (shorter after a torn tail)
    std::uint64_t last_seq = 0;    // number of its last intact frame
};

}  // namespace

// A scope read from disk by a blocking job, moved into its slot on the strand.
struct state_store::loaded_journal {
    detail::journal_state state;
    journal_file file;
};

// One frame to write in a blocking job: the bytes, built on the strand, and the file's layout;
// the job updates `file` and the flags, which the strand copies back into the slot.
struct state_store::append_job {
    std::string bytes;
    bool create = false;  // a whole new journal (header and snapshot first)
    journal_file file;
    error_code ec;
    bool reread = false;   // nothing is known about the file any more: read it again
    bool missing = false;  // removed behind our back: start it again from memory
};

struct state_store::scope_slot {
    // Touched only on the scope's strand; blocking jobs get copies (see append_job).
    bool loaded = false;
    detail::journal_state state;
    journal_file file;
    std::uint64_t next_compaction = 0;  // after a failed compaction: retry from this size
    // The group being gathered: its encoded operations, the operations themselves (applied
    // to `state` once durable) and the calls waiting for it. `flushing`: some call of this
    // scope is writing a group (or reading the journal); calls arriving meanwhile wait.
    bool flushing = false;
    std::string pending;
    std::vector<pending_op> ops;
    std::vector<waiter*> waiters;
};

state_store::state_store(std::filesystem::path dir, syscalls& sys)
    : state_store(std::move(dir), journal_options{}, sys) {}

state_store::state_store(std::filesystem::path dir, journal_options opts, syscalls& sys)
    : dir_(std::move(dir)), opts_(opts), sys_(sys) {}

state_store::~state_store() {
    // Every operation has completed (the lifetime rule): no blocking job can use the
    // descriptors closed below.
    if (dir_fd_ >= 0)
        sys_.close(dir_fd_);
    if (lock_fd_ >= 0)
        sys_.close(lock_fd_);
}

std::string state_store::describe() const {
    return "file:" + dir_.string();
}

std::string state_store::file_name(std::string_view scope_id) {
    return std::string(file_prefix) + escaped_stem(scope_id) + std::string(file_suffix);
}

std::string state_store::journal_name(std::string_view scope_id) {
    return std::string(file_prefix) + escaped_stem(scope_id) + std::string(journal_suffix);
}
error_code state_store::open(diagnostics& diag) {
    std::lock_guard lock(mutex_);
    if (opened_.load(std::memory_order_relaxed))
        return {};
    detail::io_failure fail;
    const std::string dir = dir_.string();
    const std::string advice =
        " Check that the directory exists or can be created and that "
        "the penne user may read and write it.";
    if (!detail::make_directories(sys_, dir_, fail)) {
        diag.message = "cannot create state directory: " + fail.describe() + "." + advice;
        return penne::errc::io_error;
    }
    detail::unique_fd dirfd;
    if (int err = detail::open_directory(sys_, dir_, dirfd)) {
        diag.message =
            "cannot open state directory " + dir + ": " + detail::errno_text(err) + "." + advice;
        return penne::errc::io_error;
    }
    int fd = sys_.openat(dirfd.get(), lock_file_name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        diag.message = "cannot create lock file " + (dir_ / lock_file_name).string() + ": " +
                       detail::errno_text(err) + "." + advice;
        return penne::errc::io_error;
    }
    detail::unique_fd lock_fd(sys_, fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            char pid[32] = {};
            ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
            std::string owner = n > 0 ? " (pid " + std::string(pid, std::size_t(n)) + ")" : "";
            diag.message = "state directory " + dir + " is locked by another process" + owner +
                           ": each penne instance needs its own state directory.";
            return errc::state_dir_in_use;
        }
        diag.message =
            "cannot lock " + (dir_ / lock_file_name).string() + ": " + detail::errno_text(err);
        return penne::errc::io_error;
    }
    // For the operator who finds the directory locked; losing it costs nothing.
    std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd, 0) == 0) {
        [[maybe_unused]] auto written = ::pwrite(fd, pid.data(), pid.size(), 0);
    }

    // Stale temp files are the remains of a crash mid-write; the real file is intact.
    std::error_code iter_ec;
    for (std::filesystem::directory_iterator it(dir_, iter_ec), end; !iter_ec && it != end;
         it.increment(iter_ec)) {
        std::string name = it->path().filename().string();
        if (detail::is_temp_name(name))
            sys_.unlinkat(dirfd.get(), name.c_str(), 0);
    }
    if (iter_ec) {
        diag.message =
            "cannot list state directory " + dir + ": " + iter_ec.message() + "." + advice;
        return penne::errc::io_error;
    }
    lock_fd_ = lock_fd.release();  // held until destruction: the flock lives with it
    dir_fd_ = dirfd.release();
    opened_.store(true, std::memory_order_release);  // publishes the descriptors
    return {};
}

state_store::scope_slot& state_store::slot_for(const std::string& scope_id) {
    std::lock_guard lock(mutex_);
    auto it = scopes_.find(scope_id);
    if (it == scopes_.end()) {
        it = scopes_.emplace(scope_id, std::make_unique<scope_slot>()).first;
    }
    return *it->second;
}

error_code state_store::read_scope(const std::string& scope_id, loaded_journal& out,
                                   diagnostics& diag) {
    const std::string name = journal_name(scope_id);
    const std::string path = (dir_ / name).string();
    std::string bytes;
    bool missing = false;
    detail::io_failure fail;
    if (!detail::read_file(sys_, dir_fd_, path, name, bytes, missing, fail)) {
        diag.message = "cannot read state of scope '" + scope_id + "': " + fail.describe() +
                       ". Check that the penne user may read and write " + dir_.string() + ".";
        return penne::errc::io_error;
    }
    if (missing)
        return migrate(scope_id, out, diag);

    auto r = detail::replay_journal(bytes, scope_id, out.state);
    switch (r.result) {
        case detail::replay_result::outcome::ok:
            break;
        case detail::replay_result::outcome::corrupt:
            diag.message = "state journal " + path + " of scope '" + scope_id +
                           "' is corrupt at byte offset " + std::to_string(r.bad_offset) + ": " +
                           r.why + "." + journal_advice(path, r.bad_offset);
            return penne::errc::state_corrupt;
        case detail::replay_result::outcome::newer_version:
            diag.message = "state journal " + path + " of scope '" + scope_id +
                           "' has format version " + std::to_string(r.version) +
                           ", but this penne reads only version " +
                           std::to_string(detail::journal_version) +
                           " (was it written by a newer penne?). Run a penne that reads it." +
                           move_aside_advice(path);
            return penne::errc::state_corrupt;
    }
    out.file = {.file_size = bytes.size(), .valid_size = r.valid_size, .last_seq = r.last_seq};
    // A JSON file next to a journal outlived a migration interrupted after the journal
    // became durable: the journal is the state.
    const std::string legacy = file_name(scope_id);
    if (sys_.unlinkat(dir_fd_, legacy.c_str(), 0) == 0)
        sys_.fsync(dir_fd_);
    return {};
}

// No journal yet: start from the JSON file of an earlier version, if there is one.
error_code state_store::migrate(const std::string& scope_id, loaded_journal& out,
                                diagnostics& diag) {
    const std::string name = file_name(scope_id);
    const std::string path = (dir_ / name).string();
    std::string text;
    bool missing = false;
    detail::io_failure fail;
    if (!detail::read_file(sys_, dir_fd_, path, name, text, missing, fail)) {
        diag.message = "cannot read state of scope '" + scope_id + "': " + fail.describe() +
                       ". Check that the penne user may read and write " + dir_.string() + ".";
        return penne::errc::io_error;
    }
    out.state.clear();
    out.file = {};
    if (missing)
        return {};  // a new scope: its first append creates the journal
    scope_state old;
    std::string why;
    std::int64_t version = 0;
    switch (decode_state(text, scope_id, old, why, version)) {
        case decode_result::ok:
            break;
        case decode_result::corrupt:
            diag.message = "state file " + path + " of scope '" + scope_id +
                           "' is corrupt: " + why + "." + move_aside_advice(path);
            return penne::errc::state_corrupt;
        case decode_result::newer_version:
            diag.message = "state file " + path + " of scope '" + scope_id +
                           "' has format version " + std::to_string(version) +
                           ", but this penne reads only version " + std::to_string(format_version) +
                           " (was it written by a newer penne?). Run a penne that reads "
                           "it." +
                           move_aside_advice(path);
            return penne::errc::state_corrupt;
    }
    detail::journal_state state;
    if (old.watermark) {
        commit_request wm{.durable_keys = {}, .watermark = old.watermark, .retire_keys = {}};
        state.commit(wm);
    }
    for (const auto& e : old.entries)
        state.record(e);
    std::string bytes;
    detail::append_journal_header(bytes);
    const auto frame = detail::begin_frame(bytes, 1);
    detail::append_snapshot(bytes, scope_id, state);
    detail::end_frame(bytes, frame);
    // The JSON file goes only once the journal holding the same state is durable; a crash
    // in between leaves both, and the journal wins on the next start.
    if (!detail::write_atomically(sys_, dir_fd_, dir_.string(), journal_name(scope_id), bytes,
                                  fail)) {
        diag.message = "cannot migrate state file " + path + " of scope '" + scope_id +
                       "' to a journal: " + fail.describe() +
                       ". The state file is still in place; the engine retries.";
        return penne::errc::io_error;
    }
    out.state = std::move(state);
    out.file = {.file_size = bytes.size(), .valid_size = bytes.size(), .last_seq = 1};
    if (sys_.unlinkat(dir_fd_, name.c_str(), 0) == 0)
        sys_.fsync(dir_fd_);
    return {};
}

// Writes one frame (or a whole new journal) and makes it durable. On failure the journal
// is cut back to what it held before, or, when even that fails, job.reread asks for the
// scope to be read again before its next operation.
void state_store::write_frame(const std::string& scope_id, append_job& job, diagnostics& diag) {
    const std::string name = journal_name(scope_id);
    const std::string path = (dir_ / name).string();
    if (job.create) {
        detail::io_failure fail;
        if (!detail::write_atomically(sys_, dir_fd_, dir_.string(), name, job.bytes, fail)) {
            // The rename may have happened before the directory fsync failed.
            job.reread = true;
            diag.message = "cannot save state of scope '" + scope_id + "': " + fail.describe() +
                           ". The previous state is still in place; the engine retries.";
            job.ec = penne::errc::io_error;
            return;
        }
        job.file = {.file_size = job.bytes.size(), .valid_size = job.bytes.size(), .last_seq = 1};
        return;
    }
    auto failed = [&](int err, const char* op) {
        diag.message = "cannot save state of scope '" + scope_id + "': " + op + " of " + path +
                       " failed: " + detail::errno_text(err) +
                       ". The previous state is still in place; the engine retries.";
        job.ec = penne::errc::io_error;
    };
    int raw = -1;
    for (;;) {
        raw = sys_.openat(dir_fd_, name.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0);
        if (raw >= 0 || errno != EINTR)
            break;
    }
    if (raw < 0 && errno == ENOENT) {
        job.missing = true;
        job.file = {};
        return;
    }
    if (raw < 0) {
        int err = errno;
        job.reread = true;  // whatever happened to the file, read it again
        return failed(err, "open");
    }
    detail::unique_fd fd(sys_, raw);
    const auto good = static_cast<off_t>(job.file.valid_size);
    if (job.file.file_size != job.file.valid_size) {
        // The torn tail of a crash: appending after it would bury it mid-file.
        if (sys_.ftruncate(fd.get(), good) != 0)
            return failed(errno, "truncating the torn tail");
        job.file.file_size = job.file.valid_size;
    }
    auto undo = [&](int err, const char* op) {
        // Cut the partial or unsynced frame off, so that the next frame follows an intact
        // one; when that fails too, nothing is known about the file any more.
        if (sys_.ftruncate(fd.get(), good) != 0)
            job.reread = true;
        return failed(err, op);
    };
    const char* p = job.bytes.data();
    std::size_t left = job.bytes.size();
    while (left > 0) {
        ssize_t n = sys_.write(fd.get(), p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return undo(errno, "write");
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (sys_.fdatasync(fd.get()) != 0)
        return undo(errno, "fdatasync");
    job.file.file_size = job.file.valid_size = job.file.valid_size + job.bytes.size();
    job.file.last_seq += 1;
}

// Appends one frame holding `ops` (encoded operations) and makes it durable; the caller
// applies the operations once this succeeded. The bytes are built here, on the strand
// (a new journal starts with a snapshot of the state), and written by a blocking job.
asio::awaitable<error_code> state_store::append(const std::string& scope_id, scope_slot& slot,
                                                const std::string& ops, diagnostics& diag) {
    for (;;) {
        append_job job;
        job.file = slot.file;
        job.create = slot.file.file_size == 0;
        if (job.create) {
            // A new journal: written whole (its snapshot and this frame's operations)
            // before it gets its name, so that a journal that exists always has its first
            // frame.
            detail::append_journal_header(job.bytes);
            const auto frame = detail::begin_frame(job.bytes, 1);
            detail::append_snapshot(job.bytes, scope_id, slot.state);
            job.bytes += ops;
            detail::end_frame(job.bytes, frame);
        } else {
            const auto frame = detail::begin_frame(job.bytes, slot.file.last_seq + 1);
            job.bytes += ops;
            detail::end_frame(job.bytes, frame);
        }
        auto work = [this, &scope_id, &job, &diag] { write_frame(scope_id, job, diag); };
        co_await detail::offload(opts_.blocking, work);
        slot.file = job.file;
        if (job.reread)
            slot.loaded = false;
        // Removed behind our back: the state in memory is what was durable, so the journal
        // starts again (create: never missing) rather than the scope from scratch.
        if (!job.missing)
            co_return job.ec;
    }
}

asio::awaitable<void> state_store::maybe_compact(const std::string& scope_id, scope_slot& slot) {
    const std::uint64_t live = slot.state.snapshot_bytes(scope_id) + detail::journal_header_size +
                               detail::frame_header_size;
    const std::uint64_t size = slot.file.file_size;
    if (size < opts_.compact_min_bytes || size < slot.next_compaction ||
        size / std::max(1u, opts_.compact_ratio) <= live)
        co_return;
    std::string bytes;
    bytes.reserve(live);
    detail::append_journal_header(bytes);
    const auto frame = detail::begin_frame(bytes, 1);
    detail::append_snapshot(bytes, scope_id, slot.state);
    detail::end_frame(bytes, frame);
    detail::io_failure fail;
    bool ok = false;
    auto work = [&] {
        ok = detail::write_atomically(sys_, dir_fd_, dir_.string(), journal_name(scope_id), bytes,
                                      fail);
    };
    co_await detail::offload(opts_.blocking, work);
    if (!ok) {
        // The operation that got here is durable either way; compaction is retried once
        // the journal has grown by half again. After a rename whose directory fsync failed
        // the file on disk is the new one: re-read it.
        slot.next_compaction = size + size / 2;
        if (fail.op == "fsync directory")
            slot.loaded = false;
        co_return;
    }
    slot.file = {.file_size = bytes.size(), .valid_size = bytes.size(), .last_seq = 1};
    slot.next_compaction = 0;
}

// Writes the group gathered so far: reads the scope first when it is not in memory (first
// use, or after a failure that left the file unknown), appends the operations as one frame,
// applies them, and completes the group's calls. Runs on the scope's strand; only the
// offloaded jobs leave it, and they touch no slot.
asio::awaitable<void> state_store::flush_group(const std::string& scope_id, scope_slot& slot) {
    std::string ops = std::move(slot.pending);
    auto applied = std::move(slot.ops);
    auto waiters = std::move(slot.waiters);
    slot.pending.clear();
    slot.ops.clear();
    slot.waiters.clear();
    diagnostics diag;
    error_code ec;
    // Every waiter of the group must complete, whatever happens: an exception (bad_alloc
    // in a blocking job or here) becomes a retryable error, and the file, whose state is
    // then unknown, is read again before the next append.
    try {
        if (!slot.loaded) {
            loaded_journal fresh;
            auto work = [this, &scope_id, &fresh, &ec, &diag] {
                ec = read_scope(scope_id, fresh, diag);
            };
            co_await detail::offload(opts_.blocking, work);
            if (!ec) {
                slot.state = std::move(fresh.state);
                slot.file = fresh.file;
                slot.next_compaction = 0;
                slot.loaded = true;
            }
        }
        if (!ec && !ops.empty())
            ec = co_await append(scope_id, slot, ops, diag);
        if (!ec && !applied.empty()) {
            for (auto& op : applied) {
                if (auto* entries = std::get_if<std::vector<manifest_entry>>(&op.op)) {
                    for (const auto& e : *entries)
                        slot.state.record(e);
                } else if (auto* c = std::get_if<commit_request>(&op.op)) {
                    slot.state.commit(*c);
                }
            }
            co_await maybe_compact(scope_id, slot);
        }
    } catch (const std::exception& e) {
        ec = penne::errc::io_error;
        diag.message = "state of scope '" + scope_id + "' not written: " + e.what();
        slot.loaded = false;
    }
    for (auto* w : waiters) {
        if (!ec && w->out)
            *w->out = slot.state.to_scope_state();
        w->done = true;
        w->ec = ec;
        w->message = diag.message;
        if (w->timer)
            w->timer->cancel();
    }
}

// Puts `op` in the scope's current group. Exactly one call of a scope is the leader at a
// time: it yields once, so that the calls overlapping it on the scope's strand join, then
// writes the group as one frame with one fdatasync (a blocking job). Calls arriving while it
// writes gather into the next group; when the leader's group is done it hands the lead to
// the first of them and returns, so no caller waits for more than the group before its
// own and its own.
asio::awaitable<error_code> state_store::submit(const std::string& scope_id, pending_op op,
                                                scope_state* out, diagnostics& diag) {
    if (!opened_.load(std::memory_order_acquire)) {
        error_code ec;
        auto work = [this, &ec, &diag] { ec = open(diag); };
        co_await detail::offload(opts_.blocking, work);
        if (ec)
            co_return ec;
    }
    scope_slot* slot = &slot_for(scope_id);
    if (out && slot->loaded) {
        // In memory: what the completed calls made durable (a group being written is not
        // applied until it is).
        *out = slot->state.to_scope_state();
        co_return error_code{};
    }
    if (auto* entries = std::get_if<std::vector<manifest_entry>>(&op.op)) {
        for (const auto& e : *entries)
            detail::append_record(slot->pending, e);
    } else if (auto* c = std::get_if<commit_request>(&op.op)) {
        detail::append_commit(slot->pending, *c);
    }
    if (!std::holds_alternative<std::monostate>(op.op))
        slot->ops.push_back(std::move(op));
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, asio::steady_timer::time_point::max());
    waiter w;
    w.out = out;
    w.timer = &timer;
    slot->waiters.push_back(&w);
    // Once queued the operation is written whatever the cancellation state: asio must not
    // throw out of the waits below.
    const bool throws = co_await asio::this_coro::throw_if_cancelled();
    co_await asio::this_coro::throw_if_cancelled(false);
    if (!slot->flushing) {
        slot->flushing = true;
        w.lead = true;
        co_await asio::post(ex, asio::use_awaitable);
    }
    // A cancellation only ends one wait early; the frame is being written anyway.
    while (!w.done && !w.lead) {
        auto [ignored] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ignored;
    }
    if (!w.done) {
        co_await flush_group(scope_id, *slot);
        if (slot->waiters.empty()) {
            slot->flushing = false;
        } else {
            waiter* next = slot->waiters.front();
            next->lead = true;
            next->timer->cancel();
        }
    }
    co_await asio::this_coro::throw_if_cancelled(throws);
    if (w.ec)
        diag.message = std::move(w.message);
    co_return w.ec;
}

asio::awaitable<error_code> state_store::load(const std::string& scope_id, scope_state& out,
                                              diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state load of scope '" + scope_id + "' cancelled before it started";
        co_return penne::errc::cancelled;
    }
    pending_op op;
    error_code ec = co_await submit(scope_id, std::move(op), &out, diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::record(const std::string& scope_id,
                                                const manifest_entry& entry, diagnostics& diag) {
    error_code ec = co_await record_many(scope_id, std::span(&entry, 1), diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::record_many(const std::string& scope_id,
                                                     std::span<const manifest_entry> entries,
                                                     diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "manifest record of scope '" + scope_id + "' cancelled before it started";
        co_return penne::errc::cancelled;
    }
    if (entries.empty())
        co_return error_code{};
    pending_op op{std::vector<manifest_entry>(entries.begin(), entries.end())};
    error_code ec = co_await submit(scope_id, std::move(op), nullptr, diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::commit(const std::string& scope_id,
                                                const commit_request& req, diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state commit of scope '" + scope_id + "' cancelled before it started";
        co_return penne::errc::cancelled;
    }
    pending_op op{req};
    error_code ec = co_await submit(scope_id, std::move(op), nullptr, diag);
    co_return ec;
}

}  // namespace penne::file
