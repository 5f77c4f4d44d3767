# The C client library, included by the top-level CMakeLists.txt once
# src/client/*.c exists. apogee_client_obj (the client sources, PIC) is built
# there; this file adds
#   - apogee_client_deps_obj: PIC copies of src/common and src/protocol, so both
#     libraries are self-contained for users outside this tree,
#   - apogee_client (libapogee.so) and apogee_client_static (libapogee.a),
#   - apogee.pc for pkg-config,
#   - the install rules (`cmake --install build --prefix DIR`: bin/apogee,
#     lib/libapogee.so with its soname links, lib/libapogee.a,
#     include/apogee/*.h, lib/pkgconfig/apogee.pc),
#   - the links of the `apogee` binary and of tests/unit/test_client*.c,
#   - the ABI checks of tests/lib (exported symbols, install + pkg-config).
#
# Every object in libapogee is compiled with hidden visibility: only the
# prototypes marked APG_EXPORT in include/apogee/*.h are exported.

# include/apogee/version.h states the version a program compiles against; it
# must be the project's.
file(STRINGS ${CMAKE_SOURCE_DIR}/include/apogee/version.h _apg_ver REGEX "^#define APG_VERSION \"")
string(REGEX REPLACE ".*\"(.*)\".*" "\\1" _apg_ver "${_apg_ver}")
if(NOT _apg_ver STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR "include/apogee/version.h says ${_apg_ver}, project() says ${PROJECT_VERSION}")
endif()

file(GLOB APOGEE_CLIENT_DEPS_SRC CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/src/common/*.c
  ${CMAKE_SOURCE_DIR}/src/protocol/*.c
  ${CMAKE_SOURCE_DIR}/src/protocol/filter/*.c)
add_library(apogee_client_deps_obj OBJECT ${APOGEE_CLIENT_DEPS_SRC})
set_property(TARGET apogee_client_deps_obj PROPERTY POSITION_INDEPENDENT_CODE ON)
set_target_properties(apogee_client_obj apogee_client_deps_obj PROPERTIES
  C_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(apogee_client_deps_obj PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/include ${CMAKE_BINARY_DIR}/gen)
target_link_libraries(apogee_client_deps_obj PUBLIC PkgConfig::UV PkgConfig::JANSSON ZLIB::ZLIB OpenSSL::SSL Threads::Threads)

add_library(apogee_client SHARED $<TARGET_OBJECTS:apogee_client_obj> $<TARGET_OBJECTS:apogee_client_deps_obj>)
set_target_properties(apogee_client PROPERTIES OUTPUT_NAME apogee VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
target_include_directories(apogee_client PUBLIC ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(apogee_client PRIVATE PkgConfig::UV PkgConfig::JANSSON ZLIB::ZLIB OpenSSL::SSL Threads::Threads m)

add_library(apogee_client_static STATIC $<TARGET_OBJECTS:apogee_client_obj> $<TARGET_OBJECTS:apogee_client_deps_obj>)
set_target_properties(apogee_client_static PROPERTIES OUTPUT_NAME apogee)
target_include_directories(apogee_client_static PUBLIC ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(apogee_client_static PUBLIC PkgConfig::UV PkgConfig::JANSSON ZLIB::ZLIB OpenSSL::SSL Threads::Threads m)

# apogee.pc finds its prefix from its own location (${pcfiledir}), so it is
# right for whatever --prefix the tree is installed to.
configure_file(${CMAKE_SOURCE_DIR}/src/client/apogee.pc.in ${CMAKE_BINARY_DIR}/apogee.pc @ONLY)

install(TARGETS apogee RUNTIME DESTINATION bin)
install(TARGETS apogee_client apogee_client_static LIBRARY DESTINATION lib ARCHIVE DESTINATION lib)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/apogee DESTINATION include)
install(FILES ${CMAKE_BINARY_DIR}/apogee.pc DESTINATION lib/pkgconfig)

# `apogee bench` (src/cli/bench.c, in apogee_core) calls the client.
target_link_libraries(apogee PRIVATE apogee_client_static)

# The unit-test targets are created after this file is included; link the
# client tests once the top-level directory has been processed.
function(apogee_client_link_tests)
  file(GLOB _client_tests ${CMAKE_SOURCE_DIR}/tests/unit/test_client*.c)
  foreach(t ${_client_tests})
    get_filename_component(name ${t} NAME_WE)
    if(TARGET ${name})
      target_link_libraries(${name} PRIVATE apogee_client_static)
    endif()
  endforeach()
  if(APOGEE_TESTS)
    add_test(NAME client_exports COMMAND sh ${CMAKE_SOURCE_DIR}/tests/lib/check_exports.sh
      $<TARGET_FILE:apogee_client> ${CMAKE_SOURCE_DIR}/include/apogee)
    # A sanitized libapogee.so cannot be loaded by a program built without
    # the sanitizer runtime: the install test runs on the normal build only.
    if(NOT APOGEE_SANITIZE)
      add_test(NAME client_install COMMAND sh ${CMAKE_SOURCE_DIR}/tests/lib/install_test.sh
        ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}/tests/lib/pkgconfig_smoke.c)
    endif()
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL apogee_client_link_tests)

# examples/*.c: one small program per client feature, built into
# <build>/examples/ and run by tests/integration/client_*.test.mjs.
file(GLOB APOGEE_EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*.c)
foreach(ex ${APOGEE_EXAMPLES})
  get_filename_component(name ${ex} NAME_WE)
  add_executable(example_${name} ${ex})
  set_target_properties(example_${name} PROPERTIES OUTPUT_NAME ${name}
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/examples)
  target_link_libraries(example_${name} PRIVATE apogee_client_static)
endforeach()
