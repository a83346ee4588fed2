# p2v boot / verify: the verdict logic (unit) and boots of the sample disks
# under the QEMU TCG engine (shell).
p2v_unit_test(unit_verdict ${P2V_TEST_DIR}/unit_verdict.c
  ${PROJECT_SOURCE_DIR}/p2v/verdict.c ${PROJECT_SOURCE_DIR}/p2v/common.c
  ${PROJECT_SOURCE_DIR}/p2v/opts.c)
target_include_directories(unit_verdict PRIVATE ${PROJECT_SOURCE_DIR}/p2v)
p2v_shell_test(verify_tiny_qcow2 verify_tiny_qcow2.sh TIMEOUT 300 LABELS verify)
p2v_shell_test(verify_no_virtio verify_no_virtio.sh TIMEOUT 300 LABELS verify)
p2v_shell_test(verify_no_boot verify_no_boot.sh TIMEOUT 400 LABELS verify)
p2v_shell_test(verify_boot_console verify_boot_console.sh TIMEOUT 300 LABELS verify)
p2v_shell_test(verify_stop verify_stop.sh TIMEOUT 120 LABELS verify)
p2v_shell_test(verify_root_write verify_root_write.sh TIMEOUT 300 LABELS verify)
p2v_shell_test(verify_login verify_login.sh TIMEOUT 300 LABELS verify)
