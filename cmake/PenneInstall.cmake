# Installation and the CMake package (`find_package(penne 1.0 REQUIRED)` then
# `target_link_libraries(app PRIVATE penne::penne)`): headers, static libraries, the
# exported targets and penneConfig.cmake / penneConfigVersion.cmake.
#
# Every library in penne::penne's link closure is exported under the name of its in-tree
# alias (penne_engine → penne::engine, …), so a consumer sees the same names whether it uses
# the installed package or add_subdirectory/FetchContent.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PENNE_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/penne"
    CACHE STRING "Where penneConfig.cmake is installed (relative to the prefix)")

# target → exported name. Targets that this build tree leaves out (PENNE_SKIP, no hiredis)
# are simply not installed.
set(_penne_exported
    penne_asio=asio
    penne_asio_ssl=asio_ssl
    penne_engine=engine
    penne_formats=formats
    penne_file=file
    penne_mongo=mongo
    penne_redis=redis
    penne_http=http
    penne_s3_core=s3_core
    penne_s3=s3
    penne_lib=library
    penne_all=penne)
set(_penne_install_targets "")
foreach(pair ${_penne_exported})
    string(REPLACE "=" ";" pair "${pair}")
    list(GET pair 0 target)
    list(GET pair 1 name)
    if(TARGET ${target})
        set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
        target_include_directories(${target} INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
        list(APPEND _penne_install_targets ${target})
    endif()
endforeach()

install(TARGETS ${_penne_install_targets}
    EXPORT penneTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Public headers: every room's include/ tree (each holds only include/penne/…) and the
# generated version header.
foreach(dir include engine/include adapters/formats/include adapters/file/include
            adapters/mongo/include adapters/redis/include adapters/s3/include http/include)
    if(IS_DIRECTORY "${PROJECT_SOURCE_DIR}/${dir}")
        penne_skipped(${dir} skip)
        if(NOT skip)
            install(DIRECTORY "${PROJECT_SOURCE_DIR}/${dir}/"
                DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development
                FILES_MATCHING PATTERN "*.hpp")
        endif()
    endif()
endforeach()
install(FILES "${PROJECT_BINARY_DIR}/generated/penne/version.hpp"
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/penne COMPONENT development)

install(EXPORT penneTargets
    NAMESPACE penne::
    DESTINATION ${PENNE_INSTALL_CMAKEDIR}
    COMPONENT development)

# What the exported targets link: the package finds the same dependencies again.
set(PENNE_PACKAGE_HAS_REDIS OFF)
if(TARGET penne_redis)
    set(PENNE_PACKAGE_HAS_REDIS ON)
endif()
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/penneConfig.cmake.in"
    "${PROJECT_BINARY_DIR}/package/penneConfig.cmake"
    INSTALL_DESTINATION ${PENNE_INSTALL_CMAKEDIR})
# 1.x releases keep the public API (semantic versioning): any 1.y satisfies a request for 1.x
# with x <= y.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/package/penneConfigVersion.cmake"
    VERSION ${PROJECT_VERSION}
    COMPATIBILITY SameMajorVersion)
install(FILES
    "${PROJECT_BINARY_DIR}/package/penneConfig.cmake"
    "${PROJECT_BINARY_DIR}/package/penneConfigVersion.cmake"
    DESTINATION ${PENNE_INSTALL_CMAKEDIR}
    COMPONENT development)
