# syncwarden_add_connector(NAME source.cpp...)
# Builds a connector as a MODULE library with hidden visibility, so only the
# entry symbol is exported. The build id is a hash of the sources and the
# build type: the same code builds the same id, changed code a new one. Set
# SW_BUILD_ID on the target's compile definitions yourself to override it.
function(syncwarden_add_connector name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE syncwarden::sdk)
  set_target_properties(${name} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    PREFIX "lib")
  set(material "${CMAKE_BUILD_TYPE};${CMAKE_CXX_FLAGS}")
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
