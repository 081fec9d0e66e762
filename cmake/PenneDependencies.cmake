# Every external dependency is found here, once. Debian 12 packages (scripts/install-deps.sh).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json url)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
pkg_check_modules(BSON REQUIRED IMPORTED_TARGET libbson-1.0)
pkg_check_modules(MONGOC REQUIRED IMPORTED_TARGET libmongoc-1.0)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(HIREDIS IMPORTED_TARGET hiredis)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(pugixml CONFIG REQUIRED)  # pugixml::pugixml (S3 XML)
find_package(Snappy CONFIG REQUIRED)   # Snappy::snappy (Parquet/Avro codecs)
if(PENNE_BUILD_TESTS)
    find_package(GTest REQUIRED)
endif()
if(PENNE_BUILD_BENCH)
    find_package(benchmark REQUIRED)
endif()

# Asio is compiled once (separate compilation) instead of in every translation unit that
# includes it: on two cores this is the difference between minutes and tens of minutes.
add_library(penne_asio STATIC "${CMAKE_CURRENT_LIST_DIR}/asio_impl.cpp")
target_compile_definitions(penne_asio PUBLIC BOOST_ASIO_SEPARATE_COMPILATION BOOST_ASIO_NO_DEPRECATED)
target_link_libraries(penne_asio PUBLIC Boost::headers Threads::Threads)
add_library(penne::asio ALIAS penne_asio)

# Asio's SSL implementation, compiled once for every TLS user (penne::http, penne::mongo,
# mongosim): a binary linking several of them must not define these symbols twice.
add_library(penne_asio_ssl STATIC "${CMAKE_CURRENT_LIST_DIR}/asio_ssl_impl.cpp")
target_link_libraries(penne_asio_ssl PUBLIC penne_asio OpenSSL::SSL OpenSSL::Crypto)
add_library(penne::asio_ssl ALIAS penne_asio_ssl)
