// The one translation unit that compiles Beast's out-of-line functions
// (BOOST_BEAST_SEPARATE_COMPILATION is set on penne_http and everything that links it), so
// the server, the client and their tests do not each compile them again.
#include <boost/beast/src.hpp>
// Asio's SSL implementation lives in penne::asio_ssl (cmake/asio_ssl_impl.cpp), shared with
// penne::mongo.
