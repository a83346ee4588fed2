# p2v capture / inspect: used-block map pieces on in-memory bytes, the FAT
# reader under the fuzzer, and whole captures of loop-attached disks built at
# test time (MBR: ext4, FAT32, swap, logical ext2; GPT: ext4, NTFS).
set(P2V_CAPTURE_UNIT_SOURCES
  ${PROJECT_SOURCE_DIR}/p2v/capture_rangemap.c
  ${PROJECT_SOURCE_DIR}/p2v/capture_sha256.c
  ${PROJECT_SOURCE_DIR}/p2v/capture_reader.c
  ${PROJECT_SOURCE_DIR}/p2v/fsmap_fat.c
  ${PROJECT_SOURCE_DIR}/p2v/fsmap_extio.c)

p2v_unit_test(unit_capture ${P2V_TEST_DIR}/unit_capture.c ${P2V_CAPTURE_UNIT_SOURCES})
target_link_libraries(unit_capture PRIVATE PkgConfig::EXT2FS)
target_include_directories(unit_capture PRIVATE ${PROJECT_SOURCE_DIR}/p2v)

p2v_fuzz_target(fuzz_fsmap_fat ${P2V_TEST_DIR}/fuzz_fsmap_fat.c ${P2V_TEST_DIR}/corpus/fsmap_fat)
target_sources(fuzz_fsmap_fat PRIVATE ${PROJECT_SOURCE_DIR}/p2v/capture_rangemap.c
  ${PROJECT_SOURCE_DIR}/p2v/fsmap_fat.c)
target_include_directories(fuzz_fsmap_fat PRIVATE ${PROJECT_SOURCE_DIR}/p2v)

p2v_shell_test(capture_mbr capture_mbr.sh TIMEOUT 300 LABELS capture)
p2v_shell_test(capture_gpt capture_gpt.sh TIMEOUT 300 LABELS capture)
p2v_shell_test(capture_mounted capture_mounted.sh TIMEOUT 300 LABELS capture)
p2v_shell_test(capture_readerr capture_readerr.sh TIMEOUT 300 LABELS capture)
p2v_shell_test(capture_cli capture_cli.sh TIMEOUT 120 LABELS capture)
# The loop-device tests share the kernel's loop devices: run them one at a time.
set_tests_properties(capture_mbr capture_gpt capture_mounted capture_readerr PROPERTIES
  RESOURCE_LOCK loopdev)

# The boot probe (p2v inspect's "boot:" line, verify's --firmware auto):
# GPT/MBR and the ESP's FAT directories under the fuzzer; disks built with
# sfdisk, mkfs.vfat and mtools read back against mdir.
p2v_fuzz_target(fuzz_bootdisk ${P2V_TEST_DIR}/fuzz_bootdisk.c ${P2V_TEST_DIR}/corpus/bootdisk)
target_sources(fuzz_bootdisk PRIVATE ${PROJECT_SOURCE_DIR}/p2v/bootdisk.c
  ${PROJECT_SOURCE_DIR}/p2v/fatdir.c ${PROJECT_SOURCE_DIR}/p2v/fsmap_fat.c
  ${PROJECT_SOURCE_DIR}/p2v/capture_rangemap.c)
target_include_directories(fuzz_bootdisk PRIVATE ${PROJECT_SOURCE_DIR}/p2v)
target_link_libraries(fuzz_bootdisk PRIVATE PkgConfig::ZLIB)
p2v_shell_test(inspect_boot inspect_boot.sh TIMEOUT 120 LABELS capture)
