# vpc (VHD) driver: unit tests, round trips through p2v and qemu-img, hostile
# images, differencing chains, and the fuzz harness with its seed corpus.
p2v_unit_test(unit_vhd ${P2V_TEST_DIR}/unit_vhd.c)
p2v_shell_test(vhd_convert vhd_convert.sh TIMEOUT 300)
p2v_shell_test(vhd_diff vhd_diff.sh TIMEOUT 120)
p2v_shell_test(vhd_hostile vhd_hostile.sh TIMEOUT 120)
p2v_fuzz_target(fuzz_vhd ${P2V_TEST_DIR}/fuzz_vhd.c ${P2V_TEST_DIR}/corpus/vhd)
