#pragma once
// The write side of the Thrift compact protocol, which is how Parquet serializes its
// metadata (the footer's FileMetaData and every PageHeader; parquet.thrift in the Apache
// Parquet format). Only what the Parquet writer needs: structs, fields of type bool, i8,
// i16, i32, i64 and binary, and lists of i32, binary or structs.
//
// Encoding rules implemented here: integers are zigzag varints (i8 is one raw byte); a
// field header is one byte (id delta << 4 | type) when the id is 1..15 above the previous
// field of the same struct, otherwise the type byte followed by the zigzag varint id; bool
// fields carry their value in the type nibble (1 true, 2 false); a struct ends with a zero
// byte; a list header is one byte (size << 4 | element type) for sizes below 15, otherwise
// 0xF0 | element type followed by the varint size; binary is a varint length and the bytes.
//
// Usage: begin_struct() … fields … end_struct() for the top level and for each struct in a
// list; begin_field_struct(id) … end_struct() for a struct-valued field. The writer keeps
// one "last field id" per open struct, so nested structs and lists of structs restore the
// enclosing struct's id delta correctly.
//
// Thread safety: none; one writer per output string. Lifetimes: `out` must outlive the
// writer. Misuse (more than max_depth open structs, end_struct() without begin) is a
// programming error and throws std::logic_error.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace penne::formats::parquet_detail {

// Type ids of the compact protocol (field headers and list element types).
enum class compact_type : std::uint8_t {
    bool_true = 1,
    bool_false = 2,
    i8 = 3,
    i16 = 4,
    i32 = 5,
    i64 = 6,
    dbl = 7,
    binary = 8,
    list = 9,
    set = 10,
    map = 11,
    structure = 12,
};

// Appends `v` as an unsigned LEB128 varint (7 bits per byte, low bits first).
void append_varint(std::uint64_t v, std::string& out);

// Zigzag mapping of a signed integer onto an unsigned one (0,-1,1,-2 → 0,1,2,3).
constexpr std::uint64_t zigzag(std::int64_t v) noexcept {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

class compact_writer {
public:
    static constexpr std::size_t max_depth = 16;

    explicit compact_writer(std::string& out) noexcept : out_(&out) {}

    void begin_struct();
    void end_struct();

    void field_bool(std::int16_t id, bool v);
    void field_i8(std::int16_t id, std::int8_t v);
    void field_i16(std::int16_t id, std::int16_t v);
    void field_i32(std::int16_t id, std::int32_t v);
    void field_i64(std::int16_t id, std::int64_t v);
    void field_binary(std::int16_t id, std::string_view v);
    // A struct-valued field: writes the header and opens the struct (close with end_struct).
    void begin_field_struct(std::int16_t id);
    // A list-valued field: writes the header; then write exactly `size` elements.
    void begin_field_list(std::int16_t id, compact_type element, std::size_t size);

    // List elements.
    void element_i32(std::int32_t v);
    void element_binary(std::string_view v);

    std::size_t depth() const noexcept { return depth_; }

private:
    void field_header(std::int16_t id, compact_type t);

    std::string* out_;
    std::array<std::int16_t, max_depth> last_ids_{};
    std::size_t depth_ = 0;
};

}  // namespace penne::formats::parquet_detail
