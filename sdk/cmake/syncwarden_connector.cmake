# syncwarden_add_connector(NAME source.cpp...)
# Builds a connector as a MODULE library with hidden visibility, so only the
# entry symbol is exported. The build id is a hash of the linked library
# (with the id's placeholder in it), stamped in after the link: the same
# inputs build the same id, any changed input (a source, a header it
# includes, a static library, a flag) a new one. Set SW_BUILD_ID on the
# target's compile definitions yourself to override it.
get_filename_component(_sw_inc "${CMAKE_CURRENT_LIST_DIR}/../include" ABSOLUTE)
if(NOT EXISTS "${_sw_inc}/syncwarden/connector.h")  # installed: lib/cmake/syncwarden_sdk
  get_filename_component(_sw_inc "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
endif()
set(SYNCWARDEN_SDK_INCLUDE_DIR "${_sw_inc}" CACHE INTERNAL "SDK headers")
function(syncwarden_add_connector name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE syncwarden::sdk)
  set_target_properties(${name} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    PREFIX "lib")
  # The build id: a hash of the linked library, stamped into it after the
  # link (see connector.hpp, SW_BUILD_ID_STAMP), so that it covers every
  # input: all sources, every header they include, static libraries, flags.
  # A SW_BUILD_ID compile definition set on the target wins.
  target_compile_definitions(${name} PRIVATE SW_BUILD_ID_STAMP)
  if(NOT _SW_OBJCOPY)
    find_program(_SW_OBJCOPY NAMES ${CMAKE_OBJCOPY} objcopy REQUIRED)
  endif()
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -DLIB=$<TARGET_FILE:${name}> -DOBJCOPY=${_SW_OBJCOPY}
            -P ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/syncwarden_stamp_build_id.cmake
    VERBATIM)
  target_link_options(${name} PRIVATE "LINKER:--no-undefined")
endfunction()
