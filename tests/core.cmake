# imgfmt core, raw driver, copy engine and the image commands.
p2v_unit_test(unit_core ${P2V_TEST_DIR}/unit_core.c)
p2v_unit_test(unit_deflate ${P2V_TEST_DIR}/unit_deflate.c)
target_link_libraries(unit_deflate PRIVATE PkgConfig::ZLIB)
p2v_shell_test(cli_raw cli_raw.sh TIMEOUT 300)
# Probing as qemu-img's: no foreign signature is ever read as raw (issue 14).
p2v_shell_test(cli_probe cli_probe.sh TIMEOUT 300)
# Declared options (-o help, README, qemu-img), command tables, progress (issue 15).
p2v_shell_test(cli_options cli_options.sh TIMEOUT 300)
p2v_shell_test(cli_convert cli_convert.sh TIMEOUT 300)
p2v_shell_test(cli_convert_stdout cli_convert_stdout.sh TIMEOUT 300)
p2v_shell_test(cli_measure cli_measure.sh TIMEOUT 300)
p2v_shell_test(cli_resize cli_resize.sh TIMEOUT 300)
p2v_shell_test(cli_amend cli_amend.sh TIMEOUT 300)
p2v_shell_test(cli_dd cli_dd.sh TIMEOUT 300)
p2v_shell_test(cli_snapshot cli_snapshot.sh TIMEOUT 300)
# rebase and commit as qemu-img's on qcow2 chains, confined backing files.
p2v_shell_test(cli_chain cli_chain.sh TIMEOUT 300)
p2v_shell_test(cli_crash cli_crash.sh TIMEOUT 300)
p2v_shell_test(lock_qemu lock_qemu.sh TIMEOUT 120)
p2v_fuzz_target(fuzz_raw ${P2V_TEST_DIR}/fuzz_raw.c ${P2V_TEST_DIR}/corpus/raw)
p2v_fuzz_target(fuzz_deflate ${P2V_TEST_DIR}/fuzz_deflate.c ${P2V_TEST_DIR}/corpus/deflate)
# Every writable format in a row (issue 3): content and holes survive.
p2v_shell_test(format_chain format_chain.sh TIMEOUT 300)
# info / map / check / compare as qemu-img's: same jq expressions on both
# tools' JSON, check's exit codes and repairs (issue 15).
p2v_shell_test(qemu_compat qemu_compat.sh TIMEOUT 300)
# An LD_PRELOAD shim that ends a process at its Nth write (cli_crash):
# built without sanitizers, as it is loaded before their runtime.
add_library(crash_preload MODULE ${P2V_TEST_DIR}/crash_preload.c)
target_compile_options(crash_preload PRIVATE -fno-sanitize=all)
target_link_options(crash_preload PRIVATE -fno-sanitize=all)
set_target_properties(crash_preload PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
# Untrusted images reach no host file (issue 14): backing files and extents
# confined beneath the image's directory, checked per format under strace.
p2v_shell_test(confine confine.sh TIMEOUT 300)
# Whatever an image names, no descriptor it opens leads outside its sandbox.
p2v_fuzz_target(fuzz_confine ${P2V_TEST_DIR}/fuzz_confine.c ${P2V_TEST_DIR}/corpus/confine)
