# p2v migrate: capture -> inject -> verify.  A disk with no OS stops at the
# inject step and leaves nothing behind; the "physical" Debian sample goes
# from a loop device to a verified, bootable qcow2 (label slow).
if(TARGET drvinject)
  p2v_shell_test(migrate_fail migrate_fail.sh TIMEOUT 600)
  p2v_shell_test(migrate_debian migrate_debian.sh TIMEOUT 1800 LABELS slow)
endif()
