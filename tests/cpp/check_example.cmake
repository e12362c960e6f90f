# tests/cpp/check_example.cmake: runs an example program on a model and an input, and compares
# what it prints with the expected outputs (cmake -P, from a CTest test).
# Part of streamrnn, MIT licence.
#
# -D variables: EXAMPLE, MODEL, INPUT, CHUNK, EXPECTED, OUTPUT (where to keep what it printed),
# COMPARE (tests/cpp/compare_outputs), TOLERANCE, and EMULATOR: the cross-compiling emulator with
# its arguments joined by '|' (a list would split across -D), or empty.
string(REPLACE "|" ";" emulator "${EMULATOR}")
execute_process(COMMAND ${emulator} "${EXAMPLE}" "${MODEL}" "${INPUT}" "${CHUNK}"
                OUTPUT_FILE "${OUTPUT}" ERROR_VARIABLE errors RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${EXAMPLE} failed (${result}): ${errors}")
endif()
execute_process(COMMAND ${emulator} "${COMPARE}" "${OUTPUT}" "${EXPECTED}" "${TOLERANCE}" RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${OUTPUT} differs from ${EXPECTED}")
endif()
