// Fuzz target for the BSON → Extended JSON walker: any bytes, both modes. Besides memory
// safety (run under ASan/UBSan), it checks the walker's contract: a failed call leaves the
// output as it was, and an accepted document renders exactly as libbson renders it.
#include <penne/formats/ejson.hpp>

#include <bson/bson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using penne::formats::ejson_mode;
    // Most interesting inputs need a consistent outer frame; fix it up half of the time
    // (decided by the first byte) so the fuzzer spends its effort inside documents.
    std::string doc(reinterpret_cast<const char*>(data), size);
    if (size >= 6 && (data[0] & 1)) {
        doc.erase(0, 1);
        const auto n = static_cast<std::uint32_t>(doc.size());
        std::memcpy(doc.data(), &n, 4);
        doc.back() = '\0';
    }
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(doc.data());

    for (ejson_mode mode : {ejson_mode::relaxed, ejson_mode::canonical}) {
        std::string out = "sentinel";
        const bool ok = penne::formats::write_ejson(bytes, doc.size(), mode, out);
        if (!ok) {
            if (out != "sentinel")
                std::abort();
            continue;
        }
        if (out.compare(0, 8, "sentinel") != 0)
            std::abort();
        bson_t b;
        if (!bson_init_static(&b, bytes, doc.size()))
            std::abort();
        char* want = mode == ejson_mode::relaxed ? bson_as_relaxed_extended_json(&b, nullptr)
                                                 : bson_as_canonical_extended_json(&b, nullptr);
        if (!want || out.compare(8, std::string::npos, want) != 0) {
            std::fprintf(stderr, "walker and libbson disagree\nours:    %s\nlibbson: %s\n",
                         out.c_str() + 8, want ? want : "(rejected)");
            std::abort();
        }
        bson_free(want);
    }
    return 0;
}
