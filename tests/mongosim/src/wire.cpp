#include <mongosim/wire.hpp>

#include <array>
#include <cstring>
#include <string_view>

namespace mongosim {
namespace {

class wire_category_impl final : public penne::classified_category {
public:
    const char* name() const noexcept override { return "mongosim.wire"; }
    std::string message(int ev) const override {
        switch (static_cast<wire_errc>(ev)) {
            case wire_errc::truncated:
                return "message shorter than its contents claim";
            case wire_errc::bad_length:
                return "messageLength out of range";
            case wire_errc::unsupported_opcode:
                return "unsupported opCode";
            case wire_errc::bad_flags:
                return "unsupported OP_MSG flag bits";
            case wire_errc::bad_section:
                return "malformed OP_MSG section";
            case wire_errc::bad_bson:
                return "malformed or oversized BSON document";
            case wire_errc::bad_checksum:
                return "OP_MSG checksum mismatch";
            case wire_errc::bad_query:
                return "OP_QUERY is only accepted on <db>.$cmd";
            case wire_errc::bad_compression:
                return "OP_COMPRESSED message that cannot be decompressed";
        }
        return "unknown mongosim wire error";
    }
    // A malformed message poisons the stream position; retrying on the same connection
    // cannot help, and a client that resends the same bytes gets the same answer.
    bool retryable(int) const noexcept override { return false; }
};

constexpr std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr auto crc_table = make_crc_table();

// Little-endian cursor over the message; every read is checked against the end.
class reader {
public:
    explicit reader(std::span<const std::uint8_t> b) : b_(b) {}
    std::size_t remaining() const noexcept { return b_.size() - pos_; }
    std::size_t pos() const noexcept { return pos_; }
    bool i32(std::int32_t& v) {
        std::uint32_t u;
        if (!u32(u))
            return false;
        v = static_cast<std::int32_t>(u);
        return true;
    }
    bool u32(std::uint32_t& v) {
        if (remaining() < 4)
            return false;
        v = std::uint32_t(b_[pos_]) | std::uint32_t(b_[pos_ + 1]) << 8 |
            std::uint32_t(b_[pos_ + 2]) << 16 | std::uint32_t(b_[pos_ + 3]) << 24;
        pos_ += 4;
        return true;
    }
    bool u8(std::uint8_t& v) {
        if (remaining() < 1)
            return false;
        v = b_[pos_++];
        return true;
    }
    bool cstring(std::string_view& s) {
        const auto* begin = b_.data() + pos_;
        const void* nul = std::memchr(begin, 0, remaining());
        if (nul == nullptr)
            return false;
        std::size_t n = static_cast<const std::uint8_t*>(nul) - begin;
        s = {reinterpret_cast<const char*>(begin), n};
        pos_ += n + 1;
        return true;
    }
    // A BSON document at the cursor, validated and copied out.
    error_code document(bson_ptr& out, std::int32_t max_size) {
        if (remaining() < 5)
            return wire_errc::truncated;
        std::int32_t len;
        std::memcpy(&len, b_.data() + pos_, 4);  // LE host (x86/arm64 Linux)
        if (len < 5 || len > max_size)
            return wire_errc::bad_bson;
        if (static_cast<std::size_t>(len) > remaining())
            return wire_errc::truncated;
        bson_t view;
        if (!bson_init_static(&view, b_.data() + pos_, static_cast<std::size_t>(len)))
            return wire_errc::bad_bson;
        std::size_t offset = 0;
        if (!bson_validate(&view, BSON_VALIDATE_NONE, &offset))
            return wire_errc::bad_bson;
        out = copy_bson(&view);
        pos_ += static_cast<std::size_t>(len);
        return {};
    }

private:
    std::span<const std::uint8_t> b_;
    std::size_t pos_ = 0;
};

void put_i32(std::vector<std::uint8_t>& out, std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
}

void put_header(std::vector<std::uint8_t>& out, std::int32_t length, std::int32_t request_id,
                std::int32_t response_to, std::int32_t op) {
    put_i32(out, length);
    put_i32(out, request_id);
    put_i32(out, response_to);
    put_i32(out, op);
}

std::string db_of(const bson_t* cmd) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, cmd, "$db") && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, nullptr);
    return {};
}

error_code decode_msg(std::span<const std::uint8_t> message, request& out) {
    reader r(message.subspan(header_size));
    if (!r.u32(out.flags))
        return wire_errc::truncated;
    // Bits 0-15 are "required": a receiver that does not know one must fail.
    constexpr std::uint32_t known = flag_checksum_present | flag_more_to_come;
    if ((out.flags & 0xFFFFu & ~known) != 0)
        return wire_errc::bad_flags;

    std::size_t end = message.size() - header_size;
    if (out.flags & flag_checksum_present) {
        if (message.size() < header_size + 4 + 4)
            return wire_errc::truncated;
        std::uint32_t expected;
        std::memcpy(&expected, message.data() + message.size() - 4, 4);
        if (crc32c(message.first(message.size() - 4)) != expected)
            return wire_errc::bad_checksum;
        end -= 4;
    }
    reader sections(message.subspan(header_size, end).subspan(4));

    bson_ptr body;
    struct sequence {
        std::string id;
        std::vector<bson_ptr> docs;
    };
    std::vector<sequence> seqs;
    while (sections.remaining() > 0) {
        std::uint8_t kind;
        sections.u8(kind);
        if (kind == 0) {
            if (body)
                return wire_errc::bad_section;
            if (auto ec = sections.document(body, max_bson_size + command_size_slack))
                return ec;
        } else if (kind == 1) {
            std::int32_t size;
            if (!sections.i32(size))
                return wire_errc::truncated;
            if (size < 5 || static_cast<std::size_t>(size - 4) > sections.remaining())
                return wire_errc::bad_section;
            std::size_t stop = sections.pos() + static_cast<std::size_t>(size - 4);
            sequence s;
            std::string_view id;
            if (!sections.cstring(id) || sections.pos() > stop)
                return wire_errc::bad_section;
            s.id.assign(id);
            if (s.id.empty())
                return wire_errc::bad_section;
            while (sections.pos() < stop) {
                bson_ptr doc;
                if (auto ec = sections.document(doc, max_bson_size))
                    return ec;
                if (sections.pos() > stop)
                    return wire_errc::bad_section;
                s.docs.push_back(std::move(doc));
            }
            seqs.push_back(std::move(s));
        } else {
            return wire_errc::bad_section;
        }
    }
    if (!body)
        return wire_errc::bad_section;

    if (!seqs.empty()) {
        // Fold each sequence into the body as an array, unless the body already has a field of
        // that name (ambiguous: mongod rejects it too).
        for (const auto& s : seqs) {
            bson_iter_t it;
            if (bson_iter_init_find(&it, body.get(), s.id.c_str()))
                return wire_errc::bad_section;
            bson_t arr;
            bson_append_array_begin(body.get(), s.id.data(), static_cast<int>(s.id.size()), &arr);
            char buf[16];
            for (std::size_t i = 0; i < s.docs.size(); ++i) {
                const char* key;
                std::size_t klen =
                    bson_uint32_to_string(static_cast<std::uint32_t>(i), &key, buf, sizeof buf);
                bson_append_document(&arr, key, static_cast<int>(klen), s.docs[i].get());
            }
            bson_append_array_end(body.get(), &arr);
        }
    }
    out.db = db_of(body.get());
    out.command = std::move(body);
    return {};
}

error_code decode_query(std::span<const std::uint8_t> message, request& out) {
    reader r(message.subspan(header_size));
    std::int32_t flags, skip, nreturn;
    std::string_view ns;
    if (!r.i32(flags) || !r.cstring(ns) || !r.i32(skip) || !r.i32(nreturn))
        return wire_errc::truncated;
    constexpr std::string_view suffix = ".$cmd";
    if (ns.size() <= suffix.size() || ns.substr(ns.size() - suffix.size()) != suffix)
        return wire_errc::bad_query;
    bson_ptr query;
    if (auto ec = r.document(query, max_bson_size + command_size_slack))
        return ec;
    if (r.remaining() > 0) {  // optional returnFieldsSelector, ignored for commands
        bson_ptr fields;
        if (auto ec = r.document(fields, max_bson_size))
            return ec;
        if (r.remaining() > 0)
            return wire_errc::truncated;
    }
    // Drivers wrap the command as {$query: {...}, $readPreference: ...} for some topologies.
    bson_iter_t it;
    if (bson_iter_init_find(&it, query.get(), "$query") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        std::uint32_t len;
        const std::uint8_t* data;
        bson_iter_document(&it, &len, &data);
        bson_t inner;
        if (!bson_init_static(&inner, data, len))
            return wire_errc::bad_bson;
        query = copy_bson(&inner);
    }
    out.flags = 0;
    out.legacy = true;
    out.db.assign(ns.substr(0, ns.size() - suffix.size()));
    out.command = std::move(query);
    return {};
}

error_code decode_compressed(std::span<const std::uint8_t> message, request& out) {
    reader r(message.subspan(header_size));
    std::int32_t original_op, size;
    std::uint8_t id;
    if (!r.i32(original_op) || !r.i32(size) || !r.u8(id))
        return wire_errc::truncated;
    if (original_op != op_msg && original_op != op_query)
        return wire_errc::unsupported_opcode;
    if (size < 0 || size > max_message_size - static_cast<std::int32_t>(header_size))
        return wire_errc::bad_length;
    if (id > static_cast<std::uint8_t>(compressor::zstd))
        return wire_errc::bad_compression;
    const auto c = static_cast<compressor>(id);
    std::vector<std::uint8_t> inner;
    if (auto ec =
            decompress(c, message.subspan(header_size + 9), static_cast<std::size_t>(size), inner))
        return ec;
    // Rebuild the original message: the same header with the original opCode and length.
    std::vector<std::uint8_t> plain;
    plain.reserve(header_size + inner.size());
    put_header(plain, static_cast<std::int32_t>(header_size + inner.size()), out.header.request_id,
               out.header.response_to, original_op);
    plain.insert(plain.end(), inner.begin(), inner.end());
    out.header.op_code = original_op;
    out.header.length = static_cast<std::int32_t>(plain.size());
    auto ec = original_op == op_msg ? decode_msg(plain, out) : decode_query(plain, out);
    if (!ec)
        out.compressed_with = c;
    return ec;
}

}  // namespace

const penne::classified_category& wire_category() noexcept {
    static const wire_category_impl cat;
    return cat;
}

std::uint32_t crc32c(std::span<const std::uint8_t> bytes) noexcept {
    std::uint32_t c = 0xFFFFFFFFu;
    for (auto b : bytes)
        c = crc_table[(c ^ b) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

error_code decode_header(std::span<const std::uint8_t> bytes, message_header& out) {
    reader r(bytes);
    if (!r.i32(out.length) || !r.i32(out.request_id) || !r.i32(out.response_to) ||
        !r.i32(out.op_code))
        return wire_errc::truncated;
    if (out.length < static_cast<std::int32_t>(header_size) || out.length > max_message_size)
        return wire_errc::bad_length;
    return {};
}

error_code decode_request(std::span<const std::uint8_t> message, request& out) {
    if (auto ec = decode_header(message, out.header))
        return ec;
    if (static_cast<std::size_t>(out.header.length) != message.size())
        return wire_errc::bad_length;
    switch (out.header.op_code) {
        case op_msg:
            return decode_msg(message, out);
        case op_query:
            return decode_query(message, out);
        case op_compressed:
            return decode_compressed(message, out);
        default:
            return wire_errc::unsupported_opcode;
    }
}

std::vector<std::uint8_t> encode_compressed(std::span<const std::uint8_t> message, compressor c) {
    std::vector<std::uint8_t> out;
    reader r(message);
    message_header h;
    r.i32(h.length);
    r.i32(h.request_id);
    r.i32(h.response_to);
    r.i32(h.op_code);
    const auto body = message.subspan(header_size);
    out.reserve(header_size + 9 + body.size() / 2);
    put_header(out, 0, h.request_id, h.response_to, op_compressed);
    put_i32(out, h.op_code);
    put_i32(out, static_cast<std::int32_t>(body.size()));
    out.push_back(static_cast<std::uint8_t>(c));
    if (compress(c, body, out)) {
        // Compression of well-formed bytes cannot fail short of memory exhaustion; the
        // uncompressed message is always a valid answer.
        return {message.begin(), message.end()};
    }
    const auto total = static_cast<std::uint32_t>(out.size());
    for (int i = 0; i < 4; ++i)
        out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(total >> (8 * i));
    return out;
}

std::vector<std::uint8_t> encode_msg_reply(std::int32_t request_id, std::int32_t response_to,
                                           const bson_t& reply, std::uint32_t flags) {
    std::vector<std::uint8_t> out;
    const auto total = static_cast<std::int32_t>(header_size + 4 + 1 + reply.len);
    out.reserve(static_cast<std::size_t>(total));
    put_header(out, total, request_id, response_to, op_msg);
    put_i32(out, static_cast<std::int32_t>(flags));
    out.push_back(0);
    const std::uint8_t* data = bson_get_data(&reply);
    out.insert(out.end(), data, data + reply.len);
    return out;
}

std::vector<std::uint8_t> encode_legacy_reply(std::int32_t request_id, std::int32_t response_to,
                                              const bson_t& reply) {
    std::vector<std::uint8_t> out;
    const auto total = static_cast<std::int32_t>(header_size + 4 + 8 + 4 + 4 + reply.len);
    out.reserve(static_cast<std::size_t>(total));
    put_header(out, total, request_id, response_to, op_reply);
    put_i32(out, 8);  // responseFlags: AwaitCapable
    put_i32(out, 0);  // cursorID (int64)
    put_i32(out, 0);
    put_i32(out, 0);  // startingFrom
    put_i32(out, 1);  // numberReturned
    const std::uint8_t* data = bson_get_data(&reply);
    out.insert(out.end(), data, data + reply.len);
    return out;
}

}  // namespace mongosim
