# NBD sources, targets, TLS-PSK and faults over loopback with nbdkit (issue 17).
p2v_shell_test(nbd nbd.sh TIMEOUT 300)
p2v_shell_test(nbd_serve nbd_serve.sh TIMEOUT 300)
p2v_shell_test(nbd_capture nbd_capture.sh TIMEOUT 300)
