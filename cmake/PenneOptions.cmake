# Warning flags shared by every penne target: penne_target_defaults(<target>).
function(penne_target_defaults target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-missing-field-initializers)
    # g++ 12 at -O2 reports Asio's coroutine-frame operator delete as mismatched with the
    # frame's operator new (both are Asio's recycling allocator): a known false positive.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        target_compile_options(${target} PRIVATE -Wno-mismatched-new-delete)
    endif()
    if(PENNE_WARNINGS_AS_ERRORS)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()

# PENNE_SKIP: components to leave out of this build tree (for example "mongo;mongosim"),
# matched against directory names. Handy while one room is mid-change.
set(PENNE_SKIP "" CACHE STRING "Components (directory names) to leave out of the build")
function(penne_skipped dir out)
    set(skipped FALSE)
    foreach(s ${PENNE_SKIP})
        if(dir MATCHES "(^|/)${s}$")
            set(skipped TRUE)
        endif()
    endforeach()
    set(${out} ${skipped} PARENT_SCOPE)
endfunction()
