#pragma once
// A counting global allocator for bench_micro (alloc_counter.cpp replaces operator new and
// delete for the whole binary): benches read allocations() before and after the code they
// measure. Counting is one relaxed atomic increment per allocation, which the other benches
// in the binary pay too (a few nanoseconds per allocation, and the hot path should have none).
//
// Thread safety: allocations() may be read from any thread.

#include <cstdint>

namespace penne::bench {

// Calls of the replaced operator new (all sizes, nothrow included) since the program began.
std::uint64_t allocations() noexcept;

}  // namespace penne::bench
