#!/bin/bash
# p2v boot: the guest's COM1 reaches stdout, the guest powers off and boot
# returns; on a terminal Ctrl-] q stops the guest early and the terminal is
# restored; the image is not written without --writable.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
IMG=$(sample_disk tiny make-tiny-disk.sh)
before=$(sha256sum < "$IMG")
rc=0
timeout 120 "$P2V" boot "$IMG" --engine qemu < /dev/null > "$TMP/out" 2> "$TMP/err" || rc=$?
cat "$TMP/err"
[ "$rc" -eq 0 ] || fail "boot exited $rc"
grep -q '^P2V-TINY-OK' "$TMP/out" || fail "the guest console did not reach stdout"
grep -q 'Ctrl-\] then q quits' "$TMP/err" || fail "no escape key hint"

# On a terminal: raw mode while the guest runs, Ctrl-] q quits at once (long
# before the marker), and the terminal settings come back afterwards.
python3 - "$P2V" "$IMG" <<'PY' || fail "the terminal console misbehaved"
import os, pty, select, sys, termios, time
p2v, img = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(p2v, [p2v, "boot", img, "--engine", "qemu"])
before = termios.tcgetattr(fd)
out, during, t0 = b"", None, time.time()
while time.time() - t0 < 60:
    if select.select([fd], [], [], 0.2)[0]:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if during is None and b"Booting" in out:
        during = termios.tcgetattr(fd)
        os.write(fd, b"\x1dq")
_, st = os.waitpid(pid, 0)
after = termios.tcgetattr(fd)
elapsed = time.time() - t0
print(out.decode(errors="replace")[-300:])
assert during is not None, "the guest's GRUB never showed"
assert not during[3] & termios.ICANON and not during[3] & termios.ECHO, "not raw while running"
assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, st
assert b"P2V-TINY-OK" not in out, "Ctrl-] q did not stop the guest"
assert b"console closed" in out
assert after == before, "terminal settings not restored"
assert elapsed < 30, elapsed
print("pty: raw while running, quit in %.1f s, terminal restored" % elapsed)
PY
[ "$(sha256sum < "$IMG")" = "$before" ] || fail "boot without --writable modified the image"
echo "ok: boot console, escape key, read-only by default"
