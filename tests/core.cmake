# imgfmt core, raw driver, copy engine and the image commands.
p2v_unit_test(unit_core ${P2V_TEST_DIR}/unit_core.c)
p2v_unit_test(unit_deflate ${P2V_TEST_DIR}/unit_deflate.c)
target_link_libraries(unit_deflate PRIVATE PkgConfig::ZLIB)
p2v_shell_test(cli_raw cli_raw.sh TIMEOUT 300)
p2v_shell_test(lock_qemu lock_qemu.sh TIMEOUT 120)
p2v_fuzz_target(fuzz_raw ${P2V_TEST_DIR}/fuzz_raw.c ${P2V_TEST_DIR}/corpus/raw)
p2v_fuzz_target(fuzz_deflate ${P2V_TEST_DIR}/fuzz_deflate.c ${P2V_TEST_DIR}/corpus/deflate)
# Every writable format in a row (issue 3): content and holes survive.
p2v_shell_test(format_chain format_chain.sh TIMEOUT 300)
