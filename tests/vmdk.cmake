# VMDK driver: unit tests, CLI round trips against qemu-img / vmdkinfo,
# hostile input, fuzz harness (replays the seed corpus without P2V_FUZZ).
p2v_unit_test(unit_vmdk ${P2V_TEST_DIR}/unit_vmdk.c)
p2v_shell_test(vmdk_roundtrip vmdk_roundtrip.sh TIMEOUT 300)
p2v_shell_test(vmdk_hostile vmdk_hostile.sh TIMEOUT 300)
# Grain table entry 1: zeroed only with the header flag (issue 14).
p2v_shell_test(vmdk_zero_grain vmdk_zero_grain.sh TIMEOUT 300)
p2v_fuzz_target(fuzz_vmdk ${P2V_TEST_DIR}/fuzz_vmdk.c ${P2V_TEST_DIR}/corpus/vmdk)
p2v_shell_test(vmdk_cost vmdk_cost.sh TIMEOUT 600)
