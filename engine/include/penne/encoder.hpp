#pragma once
// Encoders turn change events into the bytes of an object (DESIGN §9). An encoder_factory
// describes a format; it opens one batch_encoder per open batch, so an idle collection
// owns no encoder state. Events are encoded on append: the batch never keeps events.
//
// Determinism: for the same events in the same order, finish() must produce the same
// bytes (exactly-once replay overwrites objects with identical content).
//
// Thread safety: a batch_encoder is used by one strand at a time; factories are immutable
// after construction and may be shared.

#include <penne/error.hpp>
#include <penne/event.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace penne {

class batch_encoder {
public:
    virtual ~batch_encoder() = default;
    // Encodes one event. An error (unencodable_event) leaves the batch unchanged.
    virtual error_code append(const change_event& ev, diagnostics& diag) = 0;
    // Encoded bytes of the batch so far (what the bytes limit counts).
    virtual std::size_t buffered_bytes() const noexcept = 0;
    // Memory the batch holds: its buffers' capacity, which grows ahead of buffered_bytes().
    // The pipeline's memory bound (max_buffered_bytes) counts this. Default: buffered_bytes().
    virtual std::size_t held_bytes() const noexcept { return buffered_bytes(); }
    // A hint before the first append: the batch will probably grow to about `bytes` encoded
    // bytes (its collection's previous batch did). Encoders that write into one buffer
    // reserve it, so it does not grow by doubling, which copies the bytes written so far
    // every time and leaves up to half of the last buffer unused. Default: ignored.
    virtual void reserve(std::size_t /*bytes*/) {}
    // Completes the object and moves its bytes into `out` (replacing its content). The
    // encoder is spent afterwards.
    virtual void finish(std::string& out) = 0;
};

struct encoder_info {
    std::string_view extension;      // "jsonl", "csv", "parquet", "avro"
    std::string_view content_type;   // "application/x-ndjson", …
    bool compresses_itself = false;  // parquet/avro compress inside; no outer compression
};

class encoder_factory {
public:
    virtual ~encoder_factory() = default;
    virtual encoder_info info() const noexcept = 0;
    // `object_key` is passed so formats can derive per-object constants (Avro sync
    // markers) deterministically from it.
    virtual std::unique_ptr<batch_encoder> open(std::string_view object_key) const = 0;
};

}  // namespace penne
