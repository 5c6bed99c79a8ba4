# ctest script: generate a synthetic predictions file, run the example on it, check it found poses.
# Inputs: GENERATOR, PRINTER, WORK_DIR.
set(predictions "${WORK_DIR}/synthetic.kprd")
execute_process(COMMAND "${GENERATOR}" "${predictions}" RESULT_VARIABLE generated)
if(NOT generated EQUAL 0)
    message(FATAL_ERROR "kapao_synthetic_predictions failed (${generated})")
endif()
foreach(preset val demo)
    execute_process(COMMAND "${PRINTER}" "${predictions}" --preset ${preset}
                    RESULT_VARIABLE printed OUTPUT_VARIABLE output)
    if(NOT printed EQUAL 0)
        message(FATAL_ERROR "kapao_print_poses --preset ${preset} failed (${printed})")
    endif()
    # 3 people in image 0 and 4 in image 1 were generated; both must come back.
    if(NOT output MATCHES "image 0 poses [1-9]" OR NOT output MATCHES "image 1 poses [1-9]")
        message(FATAL_ERROR "no poses found with --preset ${preset}:\n${output}")
    endif()
endforeach()
