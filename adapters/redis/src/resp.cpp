#include <penne/redis/resp.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <new>

namespace penne::redis {
namespace {

// hiredis builds replies through these callbacks. A root value is heap-allocated and
// becomes the reader's pending reply; a child is appended to its parent's elements and
// lives inside it. hiredis only keeps pointers to the containers still being filled, and a
// container's vector grows only while none of its children is open, so those pointers stay
// valid. hiredis frees only root objects (freeObject on its pending reply).
value* attach(const redisReadTask* task) {
    if (task->parent == nullptr)
        return new (std::nothrow) value;
    auto* parent = static_cast<value*>(task->parent->obj);
    return &parent->elements.emplace_back();
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
    value* v = attach(task);
    if (!v)
        return nullptr;
    switch (task->type) {
        case REDIS_REPLY_STATUS:
            v->kind = value_kind::status;
            break;
        case REDIS_REPLY_ERROR:
            v->kind = value_kind::error;
            break;
        default:
            v->kind = value_kind::bulk;
            break;
    }
    v->text.assign(str, len);
    return v;
}

void* create_array(const redisReadTask* task, int elements) {
    value* v = attach(task);
    if (!v)
        return nullptr;
    v->kind = value_kind::array;
    // The count comes from the peer: reserve a bounded amount, grow as elements arrive.
    v->elements.reserve(static_cast<std::size_t>(std::clamp(elements, 0, 1024)));
    return v;
}

void* create_integer(const redisReadTask* task, long long n) {
    value* v = attach(task);
    if (!v)
        return nullptr;
    v->kind = value_kind::integer;
    v->integer = n;
    return v;
}

void* create_nil(const redisReadTask* task) {
    value* v = attach(task);
    if (v)
        v->kind = value_kind::nil;
    return v;
}

void free_object(void* obj) {
    delete static_cast<value*>(obj);
}

redisReplyObjectFunctions value_functions = {create_string, create_array, create_integer,
                                             create_nil, free_object};

void render(const value& v, std::string& out) {
    switch (v.kind) {
        case value_kind::nil:
            out += "nil";
            return;
        case value_kind::integer:
            out += std::to_string(v.integer);
            return;
        case value_kind::status:
            out += v.text;
            return;
        case value_kind::error:
            out += "(error) " + v.text;
            return;
        case value_kind::bulk:
            out += '"';
            for (char c : v.text) {
                const auto u = static_cast<unsigned char>(c);
                if (c == '"' || c == '\\') {
                    out += '\\';
                    out += c;
                } else if (u < 0x20 || u >= 0x7f) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out += "\\x";
                    out += hex[u >> 4];
                    out += hex[u & 0xf];
                } else {
                    out += c;
                }
            }
            out += '"';
            return;
        case value_kind::array:
            out += '[';
            for (std::size_t i = 0; i < v.elements.size(); ++i) {
                if (i)
                    out += ", ";
                render(v.elements[i], out);
            }
            out += ']';
            return;
    }
}

}  // namespace

std::string to_string(const value& v) {
    std::string out;
    render(v, out);
    return out;
}

void append_command(std::string& out, std::span<const std::string_view> argv) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (auto a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    char* cmd = nullptr;
    const int n =
        redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
    if (n < 0 || cmd == nullptr)
        throw std::bad_alloc();  // the formatter fails only when malloc does
    out.append(cmd, static_cast<std::size_t>(n));
    redisFreeCommand(cmd);
}

std::string encode_command(std::span<const std::string_view> argv) {
    std::string out;
    append_command(out, argv);
    return out;
}

void request::push(std::initializer_list<std::string_view> argv) {
    push(std::span<const std::string_view>(argv.begin(), argv.size()));
}

void request::push(std::span<const std::string_view> argv) {
    append_command(payload_, argv);
    ++count_;
}

void request::push(std::span<const std::string> argv) {
    std::vector<std::string_view> views(argv.begin(), argv.end());
    push(std::span<const std::string_view>(views));
}

struct reply_parser::impl {
    redisReader* reader = nullptr;
    std::string error;

    impl() { make(); }
    ~impl() { redisReaderFree(reader); }

    void make() {
        reader = redisReaderCreateWithFunctions(&value_functions);
        if (!reader)
            throw std::bad_alloc();
    }
};

reply_parser::reply_parser() : impl_(std::make_unique<impl>()) {}
reply_parser::~reply_parser() = default;
reply_parser::reply_parser(reply_parser&&) noexcept = default;
reply_parser& reply_parser::operator=(reply_parser&&) noexcept = default;

error_code reply_parser::feed(std::string_view bytes) {
    if (!impl_->error.empty())
        return make_error_code(errc::protocol_error);
    if (bytes.empty())
        return {};
    if (redisReaderFeed(impl_->reader, bytes.data(), bytes.size()) != REDIS_OK) {
        impl_->error = impl_->reader->errstr;
        return make_error_code(errc::protocol_error);
    }
    return {};
}

bool reply_parser::next(value& out, error_code& ec) {
    ec.clear();
    if (!impl_->error.empty()) {
        ec = make_error_code(errc::protocol_error);
        return false;
    }
    void* reply = nullptr;
    if (redisReaderGetReply(impl_->reader, &reply) != REDIS_OK) {
        impl_->error = impl_->reader->errstr;
        if (impl_->error.empty())
            impl_->error = "malformed reply";
        ec = make_error_code(errc::protocol_error);
        return false;
    }
    if (!reply)
        return false;
    std::unique_ptr<value> owned(static_cast<value*>(reply));
    out = std::move(*owned);
    return true;
}

std::string reply_parser::error_text() const {
    return impl_->error;
}

void reply_parser::reset() {
    redisReaderFree(impl_->reader);
    impl_->reader = nullptr;
    impl_->error.clear();
    impl_->make();
}

}  // namespace penne::redis
