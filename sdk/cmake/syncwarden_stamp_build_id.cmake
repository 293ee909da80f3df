# cmake -DLIB=libx.so -DOBJCOPY=objcopy -P syncwarden_stamp_build_id.cmake
# Replaces the 16 placeholder bytes of section .sw_build_id in a just-linked
# connector with the first 16 hex digits of the library's SHA-256, taken with
# the placeholder in place (the step runs right after each link). A library
# without the section (no SW_CONNECTOR) fails the build.
file(SHA256 "${LIB}" hash)
string(SUBSTRING "${hash}" 0 16 id)
set(tmp "${LIB}.build-id")
file(WRITE "${tmp}" "${id}")
execute_process(COMMAND "${OBJCOPY}" --update-section ".sw_build_id=${tmp}" "${LIB}"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
file(REMOVE "${tmp}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "stamping the build id into ${LIB} failed (does it use SW_CONNECTOR?): ${err}")
endif()
