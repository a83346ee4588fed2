# vmm-min tests: device models without KVM (unit_vmm_*), tiny guests and the
# SeaBIOS boot-sector probe on KVM (vmm_*.sh through tests/guests/vmm_runner),
# and the virtio-blk queue fuzz harness.
if(TARGET vmmmin)
  add_executable(vmm_runner ${P2V_TEST_DIR}/guests/vmm_runner.c)
  target_link_libraries(vmm_runner PRIVATE vmmmin)
  set_target_properties(vmm_runner PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)

  file(GLOB VMM_UNIT_TESTS CONFIGURE_DEPENDS ${P2V_TEST_DIR}/unit_vmm_*.c)
  foreach(src ${VMM_UNIT_TESTS})
    get_filename_component(name ${src} NAME_WE)
    p2v_unit_test(${name} ${src})
    target_link_libraries(${name} PRIVATE vmmmin)
  endforeach()

  file(GLOB VMM_SHELL_TESTS CONFIGURE_DEPENDS ${P2V_TEST_DIR}/vmm_*.sh)
  foreach(script ${VMM_SHELL_TESTS})
    get_filename_component(name ${script} NAME_WE)
    get_filename_component(file ${script} NAME)
    p2v_shell_test(${name} ${file} TIMEOUT 300 LABELS vmm)
  endforeach()

  # vmm-min against the firmware's own tables (needs /dev/kvm; the
  # hardware-virtualization test bed runs it too)
  p2v_unit_test(vmm_fwtables ${P2V_TEST_DIR}/vmm_fwtables.c)
  target_link_libraries(vmm_fwtables PRIVATE vmmmin)
  set_tests_properties(vmm_fwtables PROPERTIES LABELS vmm)

  # The hardware-virtualization test bed (tests/hwvirt): one L1 guest under
  # QEMU TCG with emulated SVM boots the samples in vmm-min as on a server
  # with AMD-V; the migrated Debian samples come from the migrate tests.
  if(TARGET drvinject)
    p2v_shell_test(hwvirt_boots hwvirt_boots.sh TIMEOUT 4800 LABELS "hwvirt;slow")
    set_tests_properties(hwvirt_boots PROPERTIES
      FIXTURES_REQUIRED "migrated_debian;migrated_gpt;migrated_lvm")
  endif()

  p2v_fuzz_target(fuzz_virtio_blk ${P2V_TEST_DIR}/fuzz_virtio_blk.c ${P2V_TEST_DIR}/guests/vblk-seeds)
  target_link_libraries(fuzz_virtio_blk PRIVATE vmmmin)
  p2v_fuzz_target(fuzz_vmm_devices ${P2V_TEST_DIR}/fuzz_vmm_devices.c ${P2V_TEST_DIR}/corpus/vmm_devices)
  target_link_libraries(fuzz_vmm_devices PRIVATE vmmmin)
endif()
