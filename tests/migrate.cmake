# p2v migrate: capture -> inject -> verify.  A disk with no OS stops at the
# inject step and leaves nothing behind; the "physical" Debian sample goes
# from a loop device to a verified, bootable qcow2 (label slow).
if(TARGET drvinject)
  p2v_shell_test(migrate_fail migrate_fail.sh TIMEOUT 600)
  p2v_shell_test(migrate_debian migrate_debian.sh TIMEOUT 1800 LABELS slow)
  # the other variants of the sample (GPT, root on LVM, dracut), each to
  # another output format (label slow: a cold sample build and a migrate each)
  p2v_shell_test(migrate_gpt_vpc migrate_variants.sh TIMEOUT 2400 LABELS slow ARGS gpt vpc)
  p2v_shell_test(migrate_lvm_vmdk migrate_variants.sh TIMEOUT 2400 LABELS slow ARGS lvm vmdk)
  p2v_shell_test(migrate_dracut_qcow2 migrate_variants.sh TIMEOUT 2400 LABELS slow ARGS dracut qcow2)
  # the sample installed as on UEFI: FAIL before (no fallback path, fresh
  # OVMF variable store), migrate from a loop device PASS with OVMF
  p2v_shell_test(migrate_uefi_qcow2 migrate_uefi.sh TIMEOUT 2400 LABELS slow)
  # their outputs are what the hardware-virtualization test bed boots in vmm-min
  set_tests_properties(migrate_debian PROPERTIES FIXTURES_SETUP migrated_debian)
  set_tests_properties(migrate_gpt_vpc PROPERTIES FIXTURES_SETUP migrated_gpt)
  set_tests_properties(migrate_lvm_vmdk PROPERTIES FIXTURES_SETUP migrated_lvm)
endif()
