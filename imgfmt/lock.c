/* Image locking compatible with QEMU's file-posix locks, so that p2v does
 * not read an image a running VM is writing, nor write one QEMU has open.
 *
 * QEMU takes shared open-file-description locks (F_OFD_SETLK, F_RDLCK) on
 * single bytes: 100 + i for each permission bit i it holds, 200 + i for each
 * permission it does not let others have.  Bits: 0 consistent read,
 * 1 write, 2 write-unchanged, 3 resize.  A holder conflicts with another if
 * one holds a permission the other does not share.  p2v asks for:
 *   reader: holds consistent-read, does not share write or resize;
 *   writer: holds consistent-read, write and resize, shares only reads.
 * Locks live as long as the descriptor; -U (IMGFMT_OPEN_FORCE_SHARE) skips
 * them, as qemu-img's -U does. */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

enum { PERM_BASE = 100, SHARED_BASE = 200 };
enum { BIT_READ = 0, BIT_WRITE = 1, BIT_WRITE_UNCHANGED = 2, BIT_RESIZE = 3, N_BITS = 4 };

static const char *const bit_names[N_BITS] = { "consistent read", "write", "write unchanged",
					       "resize" };

/* Does any other open file description hold a lock on byte off? */
static int byte_taken(int fd, unsigned off, bool *taken)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	*taken = fl.l_type != F_UNLCK;
	return 0;
}

static int byte_lock(int fd, unsigned off)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* perm: bits we hold; unshared: bits we refuse to others. */
static int check_conflicts(int fd, unsigned perm, unsigned unshared, char *msg, size_t msg_bytes)
{
	for (unsigned i = 0; i < N_BITS; i++) {
		bool other_unshares = false, other_holds = false;
		int r = 0;
		if (perm & (1u << i))
			r = byte_taken(fd, SHARED_BASE + i, &other_unshares);
		if (r == 0 && (unshared & (1u << i)))
			r = byte_taken(fd, PERM_BASE + i, &other_holds);
		if (r < 0)
			return r;
		if (other_unshares || other_holds) {
			snprintf(msg, msg_bytes,
				 "another process holds a conflicting \"%s\" lock on the image "
				 "(a running VM or qemu-img?); use -U to read it anyway",
				 bit_names[i]);
			return -EBUSY;
		}
	}
	return 0;
}

int imgfmt_lock_fd(int fd, bool writable, char *msg, size_t msg_bytes)
{
	unsigned perm = 1u << BIT_READ, unshared = 1u << BIT_WRITE | 1u << BIT_RESIZE;
	int r = 0;

	if (writable) {
		perm |= 1u << BIT_WRITE | 1u << BIT_RESIZE;
		unshared |= 1u << BIT_WRITE_UNCHANGED;
	}
	/* lock first, then look: two openers racing both see each other */
	for (unsigned i = 0; r == 0 && i < N_BITS; i++) {
		if (perm & (1u << i))
			r = byte_lock(fd, PERM_BASE + i);
		if (r == 0 && (unshared & (1u << i)))
			r = byte_lock(fd, SHARED_BASE + i);
	}
	if (r == 0)
		r = check_conflicts(fd, perm, unshared, msg, msg_bytes);
	if (r == -EINVAL || r == -ENOLCK || r == -EOPNOTSUPP)
		return 0; /* the file system has no OFD locks (some FUSE/NFS): go on unlocked */
	if (r < 0 && r != -EBUSY)
		snprintf(msg, msg_bytes, "locking the image: %s", strerror(-r));
	return r;
}
