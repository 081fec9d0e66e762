// Fuzz target for the DNS message decoder that mongodb+srv:// lookups run over replies from
// the network (adapters/mongo/src/dns.cpp): whole-message decoding with name compression,
// the reply check against a query, the CNAME-following answer filter, and the seedlist
// rules applied to whatever SRV and TXT records decoded. Each input is also decoded with
// the TC flag forced on, which takes the "keep what is complete" path at every cut.
//
// Built with clang and -fsanitize=fuzzer it is a libFuzzer target; otherwise fuzz/replay_main.cpp
// replays the seed corpus (corpus_dns/) so CI runs it under g++.

#include <penne/mongo/dns.hpp>
#include <penne/mongo/srv.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace penne::mongo;

void exercise(const std::vector<std::uint8_t>& bytes) {
    dns::message m;
    if (dns::decode_message(bytes, m))
        return;
    const std::string name = m.questions.empty() ? "x.example.com" : m.questions[0].name;
    (void)dns::check_reply(m, m.header.id, name, dns::rtype::srv);
    for (auto type :
         {dns::rtype::a, dns::rtype::aaaa, dns::rtype::cname, dns::rtype::txt, dns::rtype::srv})
        (void)dns::answers_for(m, name, type);

    uri_info uri;
    uri.srv_host = "rs.example.com";
    std::vector<dns::record> srv;
    std::vector<std::string> txt;
    for (const auto& r : m.answers) {
        if (r.type == static_cast<std::uint16_t>(dns::rtype::srv))
            srv.push_back(r);
        if (r.type == static_cast<std::uint16_t>(dns::rtype::txt)) {
            std::string joined;
            for (const auto& s : r.strings)
                joined += s;
            txt.push_back(std::move(joined));
        }
    }
    penne::diagnostics diag;
    (void)apply_srv_txt(txt, uri, diag);
    uri.srv_max_hosts = static_cast<int>(bytes.size() % 4);
    uri.replica_set.clear();
    (void)srv_seeds(srv, uri, static_cast<std::uint32_t>(bytes.size()), diag);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> bytes(data, data + size);
    exercise(bytes);
    if (bytes.size() >= 4) {
        bytes[2] |= 0x02;  // TC
        exercise(bytes);
    }
    return 0;
}
