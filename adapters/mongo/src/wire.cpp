#include <penne/mongo/wire.hpp>

#include <algorithm>
#include <cstring>

namespace penne::mongo::wire {
namespace {

std::int32_t load_i32(const std::uint8_t* p) noexcept {
    return static_cast<std::int32_t>(std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 |
                                     std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24);
}

std::int64_t load_i64(const std::uint8_t* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = v << 8 | p[i];
    return static_cast<std::int64_t>(v);
}

void put_i32(std::vector<std::uint8_t>& out, std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    out.insert(out.end(), {std::uint8_t(u), std::uint8_t(u >> 8), std::uint8_t(u >> 16),
                           std::uint8_t(u >> 24)});
}

void patch_i32(std::vector<std::uint8_t>& out, std::size_t at, std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    out[at] = std::uint8_t(u);
    out[at + 1] = std::uint8_t(u >> 8);
    out[at + 2] = std::uint8_t(u >> 16);
    out[at + 3] = std::uint8_t(u >> 24);
}

void put_bytes(std::vector<std::uint8_t>& out, byte_view b) {
    out.insert(out.end(), b.begin(), b.end());
}

void put_cstring(std::vector<std::uint8_t>& out, std::string_view s) {
    out.insert(out.end(), s.begin(), s.end());
    out.push_back(0);
}

// Starts a frame: reserves the header and returns its offset for the final length.
std::size_t begin_frame(std::vector<std::uint8_t>& out, std::int32_t request_id, opcode op) {
    std::size_t start = out.size();
    put_i32(out, 0);
    put_i32(out, request_id);
    put_i32(out, 0);
    put_i32(out, static_cast<std::int32_t>(op));
    return start;
}

void end_frame(std::vector<std::uint8_t>& out, std::size_t start) {
    patch_i32(out, start, static_cast<std::int32_t>(out.size() - start));
}

// Length of the BSON document at `p` when it fits in `avail` bytes and is terminated.
std::size_t document_length(const std::uint8_t* p, std::size_t avail) noexcept {
    if (avail < 5)
        return 0;
    std::int32_t len = load_i32(p);
    if (len < 5 || static_cast<std::size_t>(len) > avail || p[len - 1] != 0)
        return 0;
    return static_cast<std::size_t>(len);
}

error_code malformed() noexcept {
    return make_error_code(client_errc::malformed_message);
}

}  // namespace

message_header read_header(byte_view b) noexcept {
    return {load_i32(b.data()), load_i32(b.data() + 4), load_i32(b.data() + 8),
            load_i32(b.data() + 12)};
}

void encode_op_msg(std::vector<std::uint8_t>& out, std::int32_t request_id, std::uint32_t flags,
                   byte_view body, std::span<const sequence_ref> sequences) {
    std::size_t start = begin_frame(out, request_id, opcode::msg);
    put_i32(out, static_cast<std::int32_t>(flags));
    out.push_back(0);
    put_bytes(out, body);
    for (const auto& seq : sequences) {
        out.push_back(1);
        std::size_t size_at = out.size();
        put_i32(out, 0);
        put_cstring(out, seq.identifier);
        for (const auto& d : seq.documents)
            put_bytes(out, d);
        patch_i32(out, size_at, static_cast<std::int32_t>(out.size() - size_at));
    }
    end_frame(out, start);
}

error_code decode_op_msg(byte_view frame, op_msg_view& out) {
    out.sequences.clear();
    out.body = {};
    if (frame.size() < header_size)
        return make_error_code(client_errc::message_too_short);
    out.header = read_header(frame);
    if (static_cast<std::size_t>(out.header.message_length) != frame.size())
        return malformed();
    if (out.header.op_code != static_cast<std::int32_t>(opcode::msg))
        return make_error_code(client_errc::unexpected_opcode);
    if (frame.size() < header_size + 4)
        return malformed();
    out.flags = static_cast<std::uint32_t>(load_i32(frame.data() + header_size));
    // Bits 0-15 are "required": an unknown one means we cannot read the message safely.
    constexpr std::uint32_t known_required = msg_flag::checksum_present | msg_flag::more_to_come;
    if ((out.flags & 0xffffu & ~known_required) != 0)
        return malformed();

    std::size_t end = frame.size();
    if (out.flags & msg_flag::checksum_present) {
        if (end < header_size + 4 + 4)
            return malformed();
        end -= 4;
    }
    std::size_t pos = header_size + 4;
    bool have_body = false;
    while (pos < end) {
        std::uint8_t kind = frame[pos++];
        if (kind == 0) {
            std::size_t len = document_length(frame.data() + pos, end - pos);
            if (len == 0 || have_body)
                return malformed();
            out.body = frame.subspan(pos, len);
            have_body = true;
            pos += len;
        } else if (kind == 1) {
            if (end - pos < 4)
                return malformed();
            std::int32_t size = load_i32(frame.data() + pos);
            if (size < 5 || static_cast<std::size_t>(size) > end - pos)
                return malformed();
            std::size_t sec_end = pos + static_cast<std::size_t>(size);
            std::size_t id_begin = pos + 4;
            const auto* nul = static_cast<const std::uint8_t*>(
                std::memchr(frame.data() + id_begin, 0, sec_end - id_begin));
            if (!nul)
                return malformed();
            std::size_t id_end = static_cast<std::size_t>(nul - frame.data());
            std::size_t docs = id_end + 1;
            for (std::size_t p = docs; p < sec_end;) {
                std::size_t len = document_length(frame.data() + p, sec_end - p);
                if (len == 0)
                    return malformed();
                p += len;
            }
            out.sequences.push_back(
                {std::string_view(reinterpret_cast<const char*>(frame.data() + id_begin),
                                  id_end - id_begin),
                 frame.subspan(docs, sec_end - docs)});
            pos = sec_end;
        } else {
            return malformed();
        }
    }
    if (!have_body)
        return malformed();
    return {};
}

void encode_op_query(std::vector<std::uint8_t>& out, std::int32_t request_id, std::int32_t flags,
                     std::string_view full_collection_name, std::int32_t skip,
                     std::int32_t number_to_return, byte_view query) {
    std::size_t start = begin_frame(out, request_id, opcode::query);
    put_i32(out, flags);
    put_cstring(out, full_collection_name);
    put_i32(out, skip);
    put_i32(out, number_to_return);
    put_bytes(out, query);
    end_frame(out, start);
}

error_code decode_op_reply(byte_view frame, op_reply_view& out) {
    constexpr std::size_t fixed = header_size + 4 + 8 + 4 + 4;
    if (frame.size() < header_size)
        return make_error_code(client_errc::message_too_short);
    out.header = read_header(frame);
    if (static_cast<std::size_t>(out.header.message_length) != frame.size())
        return malformed();
    if (out.header.op_code != static_cast<std::int32_t>(opcode::reply))
        return make_error_code(client_errc::unexpected_opcode);
    if (frame.size() < fixed)
        return malformed();
    const std::uint8_t* p = frame.data() + header_size;
    out.response_flags = load_i32(p);
    out.cursor_id = load_i64(p + 4);
    out.starting_from = load_i32(p + 12);
    out.number_returned = load_i32(p + 16);
    if (out.number_returned < 1)
        return malformed();
    std::size_t len = document_length(frame.data() + fixed, frame.size() - fixed);
    if (len == 0)
        return malformed();
    out.first_document = frame.subspan(fixed, len);
    return {};
}

error_code decode_op_compressed(byte_view frame, op_compressed_view& out) {
    out = op_compressed_view{};
    if (frame.size() < header_size)
        return make_error_code(client_errc::message_too_short);
    out.header = read_header(frame);
    if (static_cast<std::size_t>(out.header.message_length) != frame.size())
        return malformed();
    if (out.header.op_code != static_cast<std::int32_t>(opcode::compressed))
        return make_error_code(client_errc::unexpected_opcode);
    if (frame.size() < compressed_prefix_size)
        return malformed();
    const std::uint8_t* p = frame.data() + header_size;
    out.original_opcode = load_i32(p);
    out.uncompressed_size = load_i32(p + 4);
    out.compressor = p[8];
    if (out.original_opcode == static_cast<std::int32_t>(opcode::compressed) ||
        out.uncompressed_size < 0)
        return malformed();
    out.payload = frame.subspan(compressed_prefix_size);
    return {};
}

std::span<std::uint8_t> frame_reader::prepare() {
    if (failed_ || ready())
        return {};
    if (buf_.size() < need_) {
        if (buf_.capacity() < need_) {
            // Exactly the frame's size: vector growth would double the capacity, and reply
            // buffers kept for reuse would hold up to twice the largest reply each (32 MiB
            // for a 16 MiB getMore), outside the pipeline's memory bound.
            std::vector<std::uint8_t> room;
            room.reserve(need_);
            room.assign(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(filled_));
            buf_.swap(room);
        }
        buf_.resize(need_);
    }
    return {buf_.data() + filled_, need_ - filled_};
}

error_code frame_reader::commit(std::size_t n) {
    if (failed_)
        return failed_;
    filled_ += std::min(n, need_ - filled_);
    if (!have_header_ && filled_ == header_size) {
        std::int32_t len = load_i32(buf_.data());
        if (len < static_cast<std::int32_t>(header_size)) {
            failed_ = make_error_code(client_errc::message_too_short);
        } else if (static_cast<std::uint32_t>(len) > max_) {
            failed_ = make_error_code(client_errc::message_too_large);
        } else {
            have_header_ = true;
            need_ = static_cast<std::size_t>(len);
        }
    }
    return failed_;
}

std::size_t frame_reader::feed(byte_view in, error_code& ec) {
    std::size_t used = 0;
    ec = failed_;
    while (!ec && used < in.size() && !ready()) {
        auto dst = prepare();
        std::size_t n = std::min(dst.size(), in.size() - used);
        std::memcpy(dst.data(), in.data() + used, n);
        used += n;
        ec = commit(n);
    }
    return used;
}

void frame_reader::take(std::vector<std::uint8_t>& out) {
    buf_.resize(filled_);
    out.swap(buf_);
    // buf_ now holds the caller's old buffer. Its bytes stay (its size is not cleared):
    // prepare() only grows it, so a reused buffer is not zero-filled again for every
    // frame (a 16 MiB getMore reply would be memset before each read).
    filled_ = 0;
    need_ = header_size;
    have_header_ = false;
}

void frame_reader::reset() noexcept {
    filled_ = 0;  // buf_ keeps its size for the next frame (see take())
    need_ = header_size;
    have_header_ = false;
    failed_.clear();
}

}  // namespace penne::mongo::wire
