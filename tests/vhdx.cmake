# VHDX driver tests: unit tests, round trips against qemu-img / vhdiinfo,
# log replay cross-checked with qemu, hostile files, and the fuzz harness
# (its seed corpus is generated into the build dir by gen_corpus_vhdx.sh).
p2v_unit_test(unit_vhdx ${P2V_TEST_DIR}/unit_vhdx.c)
p2v_shell_test(vhdx_roundtrip vhdx_roundtrip.sh TIMEOUT 300)
p2v_shell_test(vhdx_qemu_images vhdx_qemu_images.sh TIMEOUT 300)
p2v_shell_test(vhdx_log vhdx_log.sh TIMEOUT 300)
p2v_shell_test(vhdx_hostile vhdx_hostile.sh TIMEOUT 300)

set(P2V_VHDX_CORPUS ${PROJECT_BINARY_DIR}/corpus/vhdx)
p2v_shell_test(vhdx_gen_corpus gen_corpus_vhdx.sh TIMEOUT 120)
set_tests_properties(vhdx_gen_corpus PROPERTIES FIXTURES_SETUP vhdx_corpus)
p2v_fuzz_target(fuzz_vhdx ${P2V_TEST_DIR}/fuzz_vhdx.c ${P2V_VHDX_CORPUS})
set_tests_properties(fuzz_vhdx PROPERTIES FIXTURES_REQUIRED vhdx_corpus)
