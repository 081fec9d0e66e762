#pragma once
// The JSON lines format (DESIGN §9, the default): one change event per line, the event
// document exactly as MongoDB sent it, as MongoDB Extended JSON (relaxed by default,
// canonical optional) in libbson's spelling. Outer compression is applied by the engine
// when the batch seals (encoder_info::compresses_itself is false).
//
// Thread safety: the factory is immutable and may be shared; each batch encoder belongs to
// one strand. Lifetimes: an encoder copies what it needs from an event during append().
// Allocation: the batch buffer grows geometrically; encoding an event allocates nothing
// once the buffer has room.

#include <penne/encoder.hpp>
#include <penne/formats/ejson.hpp>

#include <cstddef>
#include <memory>
#include <string_view>

namespace penne::formats {

struct jsonl_options {
    ejson_mode mode = ejson_mode::relaxed;
    // Bytes reserved when a batch opens (a guess at the batch size avoids early regrowth).
    std::size_t initial_capacity = 64 * 1024;
};

class jsonl_encoder_factory final : public encoder_factory {
public:
    explicit jsonl_encoder_factory(jsonl_options opts = {}) noexcept : opts_(opts) {}

    encoder_info info() const noexcept override;
    std::unique_ptr<batch_encoder> open(std::string_view object_key) const override;

    const jsonl_options& options() const noexcept { return opts_; }

private:
    jsonl_options opts_;
};

}  // namespace penne::formats
