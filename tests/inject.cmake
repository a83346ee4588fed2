# drivers-inject: the pure rewriting and registry functions, p2v inject's
# command line, a fake Windows 7 disk, and the physical Debian sample made
# to boot on virtio end to end (label slow: about 7 minutes, 11 without the
# sample cache).
if(TARGET drvinject)
  p2v_unit_test(unit_inject ${P2V_TEST_DIR}/unit_inject.c)
  target_link_libraries(unit_inject PRIVATE drvinject)
  add_executable(unit_inject_tool ${P2V_TEST_DIR}/unit_inject_tool.c)
  target_link_libraries(unit_inject_tool PRIVATE drvinject)
  p2v_shell_test(inject_cli inject_cli.sh TIMEOUT 300)
  p2v_shell_test(inject_windows inject_windows.sh TIMEOUT 900)
  set_property(TEST inject_windows APPEND PROPERTY ENVIRONMENT "INJECT_TOOL=$<TARGET_FILE:unit_inject_tool>")
  p2v_shell_test(inject_debian inject_debian.sh TIMEOUT 1500 LABELS slow)
endif()
