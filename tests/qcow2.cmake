# qcow2: round trips checked by qemu-img and qcowinfo, reading qemu-made
# images, hostile headers, and the fuzz harness.
p2v_shell_test(qcow2_roundtrip qcow2_roundtrip.sh TIMEOUT 600)
p2v_shell_test(qcow2_qemu_images qcow2_qemu_images.sh TIMEOUT 300)
p2v_shell_test(qcow2_hostile qcow2_hostile.sh TIMEOUT 300)
p2v_fuzz_target(fuzz_qcow2 ${P2V_TEST_DIR}/fuzz_qcow2.c ${P2V_TEST_DIR}/corpus/qcow2)
p2v_unit_test(unit_qcow2 ${P2V_TEST_DIR}/unit_qcow2.c)
p2v_shell_test(qcow2_qemu_read qcow2_qemu_read.sh TIMEOUT 300)
p2v_shell_test(qcow2_bad qcow2_bad.sh TIMEOUT 300)
p2v_shell_test(qcow2_cost qcow2_cost.sh TIMEOUT 600)
