// The one translation unit that compiles Asio's SSL implementation
// (BOOST_ASIO_SEPARATE_COMPILATION is set through penne::asio). Every TLS user — penne::http's
// client, penne::mongo's connections, mongosim — links penne::asio_ssl instead of compiling
// it itself, so a binary that links several of them holds these symbols exactly once.
#include <boost/asio/ssl/impl/src.hpp>
