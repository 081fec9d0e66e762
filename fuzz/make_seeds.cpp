// Writes a seed corpus for ejson_fuzz: change events and random documents covering every
// BSON type (the unit tests' generator), one file each: make_seeds <directory> [count].
#include "bson_corpus.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <directory> [count]\n", argv[0]);
        return 2;
    }
    const std::filesystem::path dir(argv[1]);
    const long count = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 500;
    std::filesystem::create_directories(dir);
    penne::formats::testing::corpus_generator gen(0x5eed);
    for (long i = 0; i < count; ++i) {
        auto b = (i % 3 == 0) ? gen.change_event() : gen.random_document();
        // Seeds start with an even byte: the target reads them as they are (see ejson_fuzz).
        std::ofstream out(dir / ("seed-" + std::to_string(i)), std::ios::binary);
        out.write(reinterpret_cast<const char*>(bson_get_data(b.get())), b->len);
    }
    std::printf("wrote %ld seeds to %s\n", count, dir.c_str());
    return 0;
}
