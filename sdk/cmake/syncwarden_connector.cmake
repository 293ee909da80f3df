# syncwarden_add_connector(NAME source.cpp...)
# Builds a connector as a MODULE library with hidden visibility, so only the
# entry symbol is exported. The build id is a hash of the sources and the
# build type: the same code builds the same id, changed code a new one. Set
# SW_BUILD_ID on the target's compile definitions yourself to override it.
get_filename_component(_sw_inc "${CMAKE_CURRENT_LIST_DIR}/../include" ABSOLUTE)
if(NOT EXISTS "${_sw_inc}/syncwarden/connector.h")  # installed: lib/cmake/syncwarden_sdk
  get_filename_component(_sw_inc "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
endif()
set(SYNCWARDEN_SDK_INCLUDE_DIR "${_sw_inc}" CACHE INTERNAL "SDK headers, hashed into build ids")
function(syncwarden_add_connector name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE syncwarden::sdk)
  set_target_properties(${name} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    PREFIX "lib")
  set(material "${CMAKE_BUILD_TYPE};${CMAKE_CXX_FLAGS}")
  foreach(h connector.h connector.hpp)
    if(EXISTS "${SYNCWARDEN_SDK_INCLUDE_DIR}/syncwarden/${h}")
      file(SHA256 "${SYNCWARDEN_SDK_INCLUDE_DIR}/syncwarden/${h}" hh)
      string(APPEND material ";${hh}")
    endif()
  endforeach()
  foreach(src IN LISTS ARGN)
    get_filename_component(abs "${src}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(EXISTS "${abs}")
      file(SHA256 "${abs}" h)
      string(APPEND material ";${h}")
      set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${abs}")
    endif()
  endforeach()
  string(SHA256 id "${material}")
  string(SUBSTRING "${id}" 0 16 id)
  target_compile_definitions(${name} PRIVATE "SW_BUILD_ID=\"${id}\"")
  target_link_options(${name} PRIVATE "LINKER:--no-undefined")
endfunction()
