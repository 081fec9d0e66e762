#include <penne/mongo/dns.hpp>

#include <algorithm>
#include <cctype>

namespace penne::mongo::dns {
namespace {

class category_impl final : public penne::classified_category {
public:
    const char* name() const noexcept override { return "penne.mongo.dns"; }

    std::string message(int ev) const override {
        switch (static_cast<dns_errc>(ev)) {
            case dns_errc::malformed:
                return "malformed DNS message";
            case dns_errc::bad_pointer:
                return "DNS name compression pointer out of bounds or looping";
            case dns_errc::name_too_long:
                return "DNS name or label too long";
            case dns_errc::invalid_name:
                return "invalid DNS name";
            case dns_errc::not_a_response:
                return "DNS message is not a query response";
            case dns_errc::id_mismatch:
                return "DNS reply answers another query";
            case dns_errc::question_mismatch:
                return "DNS reply is for another question";
            case dns_errc::format_error:
                return "DNS server could not read the query (FORMERR)";
            case dns_errc::server_failure:
                return "DNS server failure (SERVFAIL)";
            case dns_errc::name_error:
                return "DNS name does not exist (NXDOMAIN)";
            case dns_errc::not_implemented:
                return "DNS server does not implement the query (NOTIMP)";
            case dns_errc::refused:
                return "DNS server refused the query (REFUSED)";
            case dns_errc::other_rcode:
                return "DNS server returned an error";
            case dns_errc::no_answer:
                return "DNS name has no record of the requested type";
            case dns_errc::truncated:
                return "DNS reply truncated";
            case dns_errc::no_server:
                return "no DNS server configured";
        }
        return "DNS error " + std::to_string(ev);
    }

    // A failing server may answer on the next try; a missing name or a broken message will
    // not change.
    bool retryable(int code) const noexcept override {
        return static_cast<dns_errc>(code) == dns_errc::server_failure;
    }
};

constexpr std::size_t header_size = 12;

std::uint16_t get16(std::span<const std::uint8_t> b, std::size_t at) {
    return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

std::uint32_t get32(std::span<const std::uint8_t> b, std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
           (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

// Reads the (possibly compressed) name at `pos`; `pos` moves past the name's bytes in the
// record (not past the bytes reached through pointers).
error_code read_name(std::span<const std::uint8_t> b, std::size_t& pos, std::string& out) {
    out.clear();
    std::size_t at = pos;
    // Every pointer must point before the start of the name segment that holds it: the
    // walk then strictly moves backwards at each jump and must end.
    std::size_t segment_start = pos;
    bool jumped = false;
    int jumps = 0;
    std::size_t wire_length = 1;  // the root label's zero byte
    for (;;) {
        if (at >= b.size())
            return make_error_code(dns_errc::malformed);
        const std::uint8_t len = b[at];
        if ((len & 0xc0) == 0xc0) {
            if (at + 1 >= b.size())
                return make_error_code(dns_errc::malformed);
            const std::size_t target = static_cast<std::size_t>(((len & 0x3f) << 8) | b[at + 1]);
            if (target >= segment_start || ++jumps > max_pointer_jumps)
                return make_error_code(dns_errc::bad_pointer);
            if (!jumped)
                pos = at + 2;
            jumped = true;
            at = target;
            segment_start = target;
            continue;
        }
        if ((len & 0xc0) != 0)
            return make_error_code(dns_errc::malformed);  // 0x40/0x80: extended labels
        if (len == 0) {
            if (!jumped)
                pos = at + 1;
            return {};
        }
        if (at + 1 + len > b.size())
            return make_error_code(dns_errc::malformed);
        wire_length += len + 1u;
        if (wire_length > max_name_length)
            return make_error_code(dns_errc::name_too_long);
        if (!out.empty())
            out.push_back('.');
        out.append(reinterpret_cast<const char*>(b.data() + at + 1), len);
        at += 1u + len;
    }
}

error_code read_question(std::span<const std::uint8_t> b, std::size_t& pos, question& q) {
    if (auto ec = read_name(b, pos, q.name))
        return ec;
    if (pos + 4 > b.size())
        return make_error_code(dns_errc::malformed);
    q.type = get16(b, pos);
    q.klass = get16(b, pos + 2);
    pos += 4;
    return {};
}

// Decodes the RDATA of `r` (of `len` bytes at `pos`). Names inside RDATA may be compressed
// and must not run past the record.
error_code read_rdata(std::span<const std::uint8_t> b, std::size_t pos, std::size_t len,
                      record& r) {
    const std::size_t end = pos + len;
    switch (static_cast<rtype>(r.type)) {
        case rtype::a:
            if (len != 4)
                return make_error_code(dns_errc::malformed);
            std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(pos), 4, r.address.begin());
            return {};
        case rtype::aaaa:
            if (len != 16)
                return make_error_code(dns_errc::malformed);
            std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(pos), 16, r.address.begin());
            return {};
        case rtype::cname: {
            std::size_t at = pos;
            if (auto ec = read_name(b, at, r.target))
                return ec;
            return at == end ? error_code{} : make_error_code(dns_errc::malformed);
        }
        case rtype::srv: {
            if (len < 7)
                return make_error_code(dns_errc::malformed);
            r.priority = get16(b, pos);
            r.weight = get16(b, pos + 2);
            r.port = get16(b, pos + 4);
            std::size_t at = pos + 6;
            if (auto ec = read_name(b, at, r.target))
                return ec;
            return at == end ? error_code{} : make_error_code(dns_errc::malformed);
        }
        case rtype::txt: {
            if (len == 0)
                return make_error_code(dns_errc::malformed);
            std::size_t at = pos;
            while (at < end) {
                const std::size_t n = b[at];
                if (at + 1 + n > end)
                    return make_error_code(dns_errc::malformed);
                r.strings.emplace_back(reinterpret_cast<const char*>(b.data() + at + 1), n);
                at += 1 + n;
            }
            return {};
        }
    }
    return {};  // a type we do not interpret: kept with its type only
}

error_code read_record(std::span<const std::uint8_t> b, std::size_t& pos, record& r) {
    if (auto ec = read_name(b, pos, r.name))
        return ec;
    if (pos + 10 > b.size())
        return make_error_code(dns_errc::malformed);
    r.type = get16(b, pos);
    r.klass = get16(b, pos + 2);
    r.ttl = get32(b, pos + 4);
    const std::size_t len = get16(b, pos + 8);
    pos += 10;
    if (pos + len > b.size())
        return make_error_code(dns_errc::malformed);
    if (auto ec = read_rdata(b, pos, len, r))
        return ec;
    pos += len;
    return {};
}

char lower(char c) noexcept {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string_view strip_dot(std::string_view s) noexcept {
    if (!s.empty() && s.back() == '.')
        s.remove_suffix(1);
    return s;
}

}  // namespace

const penne::classified_category& error_category() noexcept {
    static const category_impl instance;
    return instance;
}

std::string_view to_string(rtype t) noexcept {
    switch (t) {
        case rtype::a:
            return "A";
        case rtype::cname:
            return "CNAME";
        case rtype::txt:
            return "TXT";
        case rtype::aaaa:
            return "AAAA";
        case rtype::srv:
            return "SRV";
    }
    return "?";
}

bool same_name(std::string_view a, std::string_view b) noexcept {
    a = strip_dot(a);
    b = strip_dot(b);
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

error_code encode_query(std::string_view name, rtype type, std::uint16_t id,
                        std::vector<std::uint8_t>& out) {
    name = strip_dot(name);
    if (name.empty())
        return make_error_code(dns_errc::invalid_name);
    if (name.size() + 2 > max_name_length)
        return make_error_code(dns_errc::name_too_long);
    std::vector<std::uint8_t> q;
    q.reserve(header_size + name.size() + 6);
    put16(q, id);
    put16(q, 0x0100);  // standard query, recursion desired
    put16(q, 1);       // one question
    put16(q, 0);
    put16(q, 0);
    put16(q, 0);
    std::size_t start = 0;
    while (start <= name.size()) {
        auto dot = name.find('.', start);
        if (dot == std::string_view::npos)
            dot = name.size();
        const std::size_t len = dot - start;
        if (len == 0)
            return make_error_code(dns_errc::invalid_name);
        if (len > max_label_length)
            return make_error_code(dns_errc::name_too_long);
        q.push_back(static_cast<std::uint8_t>(len));
        q.insert(q.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                 name.begin() + static_cast<std::ptrdiff_t>(dot));
        start = dot + 1;
    }
    q.push_back(0);
    put16(q, static_cast<std::uint16_t>(type));
    put16(q, 1);  // IN
    out.insert(out.end(), q.begin(), q.end());
    return {};
}

error_code decode_message(std::span<const std::uint8_t> b, message& out) {
    out = message{};
    if (b.size() < header_size)
        return make_error_code(dns_errc::malformed);
    header& h = out.header;
    h.id = get16(b, 0);
    const std::uint16_t flags = get16(b, 2);
    h.response = (flags & 0x8000) != 0;
    h.opcode = static_cast<std::uint8_t>((flags >> 11) & 0x0f);
    h.authoritative = (flags & 0x0400) != 0;
    h.truncated = (flags & 0x0200) != 0;
    h.recursion_desired = (flags & 0x0100) != 0;
    h.recursion_available = (flags & 0x0080) != 0;
    h.rcode = static_cast<std::uint8_t>(flags & 0x0f);
    h.question_count = get16(b, 4);
    h.answer_count = get16(b, 6);
    h.authority_count = get16(b, 8);
    h.additional_count = get16(b, 10);

    std::size_t pos = header_size;
    // A truncated reply may end anywhere: keep the complete entries and stop there.
    auto cut = [&](const error_code& ec) {
        return h.truncated && ec == dns_errc::malformed ? error_code{} : ec;
    };
    for (std::uint16_t i = 0; i < h.question_count; ++i) {
        question q;
        if (auto ec = read_question(b, pos, q))
            return cut(ec);
        out.questions.push_back(std::move(q));
    }
    struct section {
        std::uint16_t count;
        std::vector<record>* into;
    };
    for (auto [count, into] :
         {section{h.answer_count, &out.answers}, section{h.authority_count, &out.authorities},
          section{h.additional_count, &out.additionals}}) {
        for (std::uint16_t i = 0; i < count; ++i) {
            record r;
            if (auto ec = read_record(b, pos, r))
                return cut(ec);
            into->push_back(std::move(r));
        }
    }
    if (pos != b.size() && !h.truncated)
        return make_error_code(dns_errc::malformed);  // trailing bytes
    return {};
}

error_code check_reply(const message& m, std::uint16_t id, std::string_view name, rtype type) {
    if (!m.header.response || m.header.opcode != 0)
        return make_error_code(dns_errc::not_a_response);
    if (m.header.id != id)
        return make_error_code(dns_errc::id_mismatch);
    if (m.questions.size() != 1 || !same_name(m.questions[0].name, name) ||
        m.questions[0].type != static_cast<std::uint16_t>(type))
        return make_error_code(dns_errc::question_mismatch);
    switch (m.header.rcode) {
        case 0:
            return {};
        case 1:
            return make_error_code(dns_errc::format_error);
        case 2:
            return make_error_code(dns_errc::server_failure);
        case 3:
            return make_error_code(dns_errc::name_error);
        case 4:
            return make_error_code(dns_errc::not_implemented);
        case 5:
            return make_error_code(dns_errc::refused);
        default:
            return make_error_code(dns_errc::other_rcode);
    }
}

std::vector<const record*> answers_for(const message& m, std::string_view name, rtype type) {
    std::vector<const record*> found;
    std::string current(strip_dot(name));
    const auto wanted = static_cast<std::uint16_t>(type);
    for (int link = 0; link <= 8; ++link) {
        const record* alias = nullptr;
        for (const auto& r : m.answers) {
            if (!same_name(r.name, current))
                continue;
            if (r.type == wanted)
                found.push_back(&r);
            else if (r.type == static_cast<std::uint16_t>(rtype::cname) && !alias)
                alias = &r;
        }
        if (!found.empty() || !alias || type == rtype::cname)
            break;
        current = alias->target;
    }
    return found;
}

}  // namespace penne::mongo::dns
