// The one translation unit that compiles Asio's implementation
// (BOOST_ASIO_SEPARATE_COMPILATION is set on every target that links penne::asio).
#include <boost/asio/impl/src.hpp>
