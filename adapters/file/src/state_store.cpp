#include <penne/file/error.hpp>
#include <penne/file/state_store.hpp>
#include <penne/memory_state_store.hpp>

#include "detail/posix_io.hpp"

#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <set>

namespace penne::file {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::string_view format_tag = "penne.scope_state";
constexpr const char* lock_file_name = ".penne-state.lock";
constexpr std::string_view file_prefix = "scope-";
constexpr std::string_view file_suffix = ".json";
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

json::value token_to_json(const resume_token& t) {
    return json::value(t.to_hex());
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

std::string encode_state(const std::string& scope_id, const scope_state& state) {
    json::object root;
    root["format"] = format_tag;
    root["version"] = state_store::format_version;
    root["scope"] = scope_id;
    root["watermark"] = state.watermark ? token_to_json(*state.watermark) : json::value(nullptr);
    json::array entries;
    entries.reserve(state.entries.size());
    for (const auto& e : state.entries) {
        json::object o;
        o["seq"] = e.seq;
        o["key"] = e.key;
        o["db"] = e.db;
        o["coll"] = e.coll;
        o["first"] = token_to_json(e.first);
        o["last"] = token_to_json(e.last);
        o["count"] = e.count;
        o["durable"] = e.durable;
        entries.emplace_back(std::move(o));
    }
    root["entries"] = std::move(entries);
    std::string text = json::serialize(root);
    text += '\n';
    return text;
}

std::string move_aside_advice(const std::string& path) {
    return " penne left the file untouched. Restore it from a backup, or move it aside (mv " +
           path + " " + path +
           ".bad) to start this scope from scratch: the scope then resumes from its "
           "configured start position, which can repeat or skip events.";
}

}  // namespace

state_store::state_store(std::filesystem::path dir, syscalls& sys)
    : dir_(std::move(dir)), sys_(sys) {}

state_store::~state_store() {
    if (lock_fd_ >= 0)
        sys_.close(lock_fd_);
}

std::string state_store::describe() const {
    return "file:" + dir_.string();
}

std::string state_store::file_name(std::string_view scope_id) {
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
    return std::string(file_prefix) + stem + std::string(file_suffix);
}

error_code state_store::open(diagnostics& diag) {
    std::lock_guard lock(mutex_);
    if (opened_)
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
    opened_ = true;
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

error_code state_store::read_scope(const std::string& scope_id, scope_slot& slot,
                                   diagnostics& diag) {
    const std::string name = file_name(scope_id);
    const std::string path = (dir_ / name).string();
    detail::unique_fd dirfd;
    if (int err = detail::open_directory(sys_, dir_, dirfd)) {
        diag.message = "cannot read state of scope '" + scope_id + "': opening directory " +
                       dir_.string() + " failed: " + detail::errno_text(err);
        return penne::errc::io_error;
    }
    std::string text;
    bool missing = false;
    detail::io_failure fail;
    if (!detail::read_file(sys_, dirfd.get(), path, name, text, missing, fail)) {
        diag.message = "cannot read state of scope '" + scope_id + "': " + fail.describe() +
                       ". Check that the penne user may read and write " + dir_.string() + ".";
        return penne::errc::io_error;
    }
    scope_state state;
    if (!missing) {
        std::string why;
        std::int64_t version = 0;
        switch (decode_state(text, scope_id, state, why, version)) {
            case decode_result::ok:
                break;
            case decode_result::corrupt:
                diag.message = "state file " + path + " of scope '" + scope_id +
                               "' is corrupt: " + why + "." + move_aside_advice(path);
                return penne::errc::state_corrupt;
            case decode_result::newer_version:
                diag.message = "state file " + path + " of scope '" + scope_id +
                               "' has format version " + std::to_string(version) +
                               ", but this penne reads only version " +
                               std::to_string(format_version) +
                               " (was it written by a newer penne?). Run a penne that reads "
                               "it." +
                               move_aside_advice(path);
                return penne::errc::state_corrupt;
        }
    }
    slot.state = std::move(state);
    slot.loaded = true;
    return {};
}

error_code state_store::write_scope(const std::string& scope_id, scope_slot& slot, scope_state next,
                                    diagnostics& diag) {
    // Whatever happens below, the disk may now differ from the cache (the rename can
    // succeed and the directory fsync fail), so a failure makes the next call re-read.
    slot.loaded = false;
    const std::string text = encode_state(scope_id, next);
    detail::unique_fd dirfd;
    if (int err = detail::open_directory(sys_, dir_, dirfd)) {
        diag.message = "cannot save state of scope '" + scope_id + "': opening directory " +
                       dir_.string() + " failed: " + detail::errno_text(err);
        return penne::errc::io_error;
    }
    detail::io_failure fail;
    if (!detail::write_atomically(sys_, dirfd.get(), dir_.string(), file_name(scope_id), text,
                                  fail)) {
        diag.message = "cannot save state of scope '" + scope_id + "': " + fail.describe() +
                       ". The previous state is still in place; the engine retries.";
        return penne::errc::io_error;
    }
    slot.state = std::move(next);
    slot.loaded = true;
    return {};
}

// The scope's in-memory copy, read from disk on first use (after opening the directory).
error_code state_store::loaded_slot(const std::string& scope_id, scope_slot*& slot,
                                    diagnostics& diag) {
    if (auto ec = open(diag))
        return ec;
    slot = &slot_for(scope_id);
    if (!slot->loaded) {
        if (auto ec = read_scope(scope_id, *slot, diag))
            return ec;
    }
    return {};
}

asio::awaitable<error_code> state_store::load(const std::string& scope_id, scope_state& out,
                                              diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state load of scope '" + scope_id + "' cancelled before it started";
        co_return penne::errc::cancelled;
    }
    scope_slot* slot = nullptr;
    if (auto ec = loaded_slot(scope_id, slot, diag))
        co_return ec;
    out = slot->state;
    co_return error_code{};
}

asio::awaitable<error_code> state_store::record(const std::string& scope_id,
                                                const manifest_entry& entry, diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "manifest record of scope '" + scope_id + "' cancelled before it started";
        co_return penne::errc::cancelled;
    }
    scope_slot* slot = nullptr;
    if (auto ec = loaded_slot(scope_id, slot, diag))
        co_return ec;
    scope_state next = slot->state;
    apply_record(next, entry);
    co_return write_scope(scope_id, *slot, std::move(next), diag);
}

asio::awaitable<error_code> state_store::commit(const std::string& scope_id,
                                                const commit_request& req, diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state commit of scope '" + scope_id + "' cancelled before it started";
        co_return penne::errc::cancelled;
    }
    scope_slot* slot = nullptr;
    if (auto ec = loaded_slot(scope_id, slot, diag))
        co_return ec;
    scope_state next = slot->state;
    apply_commit(next, req);
    co_return write_scope(scope_id, *slot, std::move(next), diag);
}

}  // namespace penne::file
