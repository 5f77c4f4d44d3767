# The fault-injection suite's programs (scripts/faults.sh), built with the
# tests only: faultload (load driver with an ack log, and verifier; on the
# public client API) and libapg_faultshim.so (an LD_PRELOAD library that
# fails a chosen msync/fsync/fdatasync/pwrite/write). Both land in
# <build>/tests/faults/.
add_executable(faultload ${CMAKE_SOURCE_DIR}/tests/faults/faultload.c)
target_link_libraries(faultload PRIVATE apogee_client_static ZLIB::ZLIB)
add_library(apg_faultshim SHARED ${CMAKE_SOURCE_DIR}/tests/faults/faultshim.c)
target_link_libraries(apg_faultshim PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(faultload apg_faultshim PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/faults
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/faults)
