#pragma once
// SASLprep (RFC 4013, a profile of stringprep, RFC 3454) for SCRAM-SHA-256 passwords, which
// MongoDB drivers must prepare before deriving keys. SCRAM-SHA-1 passwords are never prepared
// (MongoDB hashes them as given), and user names are not prepared by any driver.
//
// What is done: the input must be valid UTF-8 (no overlongs, no surrogates); the "commonly
// mapped to nothing" characters (table B.1: soft hyphen, zero-width joiners, variation
// selectors, BOM, …) are removed; non-ASCII spaces (C.1.2) become U+0020; the prohibited
// characters of C.1.2 through C.9 (controls, private use, non-characters, surrogates,
// characters inappropriate for plain text or canonical representation, bidi formatting,
// tags) are rejected.
// What is not done: NFKC normalisation (it needs the Unicode decomposition tables), the
// check for unassigned code points (A.1) and the bidirectional rule (section 6, tables
// D.1/D.2). A password containing characters that NFKC changes (full-width letters,
// ligatures, decomposed accents, …) therefore derives a different key than a driver that
// normalises; all-ASCII passwords and already-NFKC text are unaffected.
//
// Thread safety: a pure function. The output holds the secret: callers clear it after use.

#include <penne/error.hpp>

#include <string>
#include <string_view>

namespace penne::mongo {

// Writes the prepared form of `in` to `out`. Fails with client_errc::invalid_password when
// `in` is not UTF-8 or holds a prohibited character; `out` is then empty. The error carries
// no part of the input.
error_code saslprep(std::string_view in, std::string& out);

}  // namespace penne::mongo
