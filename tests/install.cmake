# cmake --install: files, the library's exports and SONAME, pkg-config, the
# manual pages against p2v --help, the bash completion (issue 15).
p2v_shell_test(install install.sh TIMEOUT 300)
