#include "detail/parquet_thrift.hpp"

#include <stdexcept>

namespace penne::formats::parquet_detail {

void append_varint(std::uint64_t v, std::string& out) {
    char buf[10];
    std::size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = static_cast<char>((v & 0x7F) | 0x80);
        v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out.append(buf, n);
}

void compact_writer::begin_struct() {
    if (depth_ == max_depth)
        throw std::logic_error("compact_writer: structs nested too deeply");
    last_ids_[depth_++] = 0;
}

void compact_writer::end_struct() {
    if (depth_ == 0)
        throw std::logic_error("compact_writer: end_struct without begin_struct");
    --depth_;
    *out_ += '\0';  // field stop
}

void compact_writer::field_header(std::int16_t id, compact_type t) {
    if (depth_ == 0)
        throw std::logic_error("compact_writer: field outside a struct");
    std::int16_t& last = last_ids_[depth_ - 1];
    const int delta = int{id} - int{last};
    if (delta > 0 && delta <= 15) {
        *out_ += static_cast<char>((delta << 4) | static_cast<int>(t));
    } else {
        *out_ += static_cast<char>(t);
        append_varint(zigzag(id), *out_);
    }
    last = id;
}

void compact_writer::field_bool(std::int16_t id, bool v) {
    field_header(id, v ? compact_type::bool_true : compact_type::bool_false);
}

void compact_writer::field_i8(std::int16_t id, std::int8_t v) {
    field_header(id, compact_type::i8);
    *out_ += static_cast<char>(v);
}

void compact_writer::field_i16(std::int16_t id, std::int16_t v) {
    field_header(id, compact_type::i16);
    append_varint(zigzag(v), *out_);
}

void compact_writer::field_i32(std::int16_t id, std::int32_t v) {
    field_header(id, compact_type::i32);
    append_varint(zigzag(v), *out_);
}

void compact_writer::field_i64(std::int16_t id, std::int64_t v) {
    field_header(id, compact_type::i64);
    append_varint(zigzag(v), *out_);
}

void compact_writer::field_binary(std::int16_t id, std::string_view v) {
    field_header(id, compact_type::binary);
    element_binary(v);
}

void compact_writer::begin_field_struct(std::int16_t id) {
    field_header(id, compact_type::structure);
    begin_struct();
}

void compact_writer::begin_field_list(std::int16_t id, compact_type element, std::size_t size) {
    field_header(id, compact_type::list);
    const auto t = static_cast<unsigned>(element);
    if (size < 15) {
        *out_ += static_cast<char>((size << 4) | t);
    } else {
        *out_ += static_cast<char>(0xF0 | t);
        append_varint(size, *out_);
    }
}

void compact_writer::element_i32(std::int32_t v) {
    append_varint(zigzag(v), *out_);
}

void compact_writer::element_binary(std::string_view v) {
    append_varint(v.size(), *out_);
    out_->append(v);
}

}  // namespace penne::formats::parquet_detail
