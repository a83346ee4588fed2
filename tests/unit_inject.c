/* drivers-inject without a guest: device-name parsing and rewriting to
 * UUID=, the serial console, and the registry injection on a hive written
 * from scratch and read back with hivex. */
#include "inject.h"
#include "unit.h"

#include <errno.h>
#include <hivex.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static const struct drvinject_devmap map[] = {
	{ "/dev/sda1", "11111111-aaaa-4bbb-8ccc-000000000001" },
	{ "/dev/sda2", "22222222-aaaa-4bbb-8ccc-000000000002" },
	{ "/dev/sda5", "55555555-aaaa-4bbb-8ccc-000000000005" },
	{ "/dev/sdb1", "b1b1b1b1-aaaa-4bbb-8ccc-0000000000b1" },
};
enum { MAP_LEN = sizeof(map) / sizeof(map[0]) };
#define U1 "UUID=11111111-aaaa-4bbb-8ccc-000000000001"
#define U2 "UUID=22222222-aaaa-4bbb-8ccc-000000000002"
#define U5 "UUID=55555555-aaaa-4bbb-8ccc-000000000005"

static void test_parse_device(void)
{
	unsigned d, p;
	CHECK_EQ(drvinject_parse_device("/dev/sda1", &d, &p), 0);
	CHECK_EQ(d, 0); CHECK_EQ(p, 1);
	CHECK_EQ(drvinject_parse_device("/dev/sdb12", &d, &p), 0);
	CHECK_EQ(d, 1); CHECK_EQ(p, 12);
	CHECK_EQ(drvinject_parse_device("/dev/sdaa3", &d, &p), 0);
	CHECK_EQ(d, 26); CHECK_EQ(p, 3);
	CHECK_EQ(drvinject_parse_device("/dev/hdc2", &d, &p), 0);
	CHECK_EQ(d, 2); CHECK_EQ(p, 2);
	CHECK_EQ(drvinject_parse_device("/dev/cciss/c0d1p2", &d, &p), 0);
	CHECK_EQ(d, 1); CHECK_EQ(p, 2);
	CHECK_EQ(drvinject_parse_device("/dev/nvme0n1p3", &d, &p), 0);
	CHECK_EQ(d, 0); CHECK_EQ(p, 3);
	CHECK_EQ(drvinject_parse_device("/dev/xvda1", &d, &p), 0);
	CHECK_EQ(d, 0); CHECK_EQ(p, 1);
	CHECK_EQ(drvinject_parse_device("/dev/sda", &d, &p), 0);
	CHECK_EQ(p, 0);
	CHECK_EQ(drvinject_parse_device("/dev/mapper/vg-root", &d, &p), -EINVAL);
	CHECK_EQ(drvinject_parse_device("/dev/sda0", &d, &p), -EINVAL);
	CHECK_EQ(drvinject_parse_device("/dev/sda1x", &d, &p), -EINVAL);
	CHECK_EQ(drvinject_parse_device("/dev/nvme0n0p1", &d, &p), -EINVAL);
	CHECK_EQ(drvinject_parse_device("/dev/sdabcd1", &d, &p), -EINVAL);
	CHECK_EQ(drvinject_parse_device("/dev/sda123456", &d, &p), -EINVAL);
	CHECK_EQ(drvinject_parse_device("UUID=1234", &d, &p), -EINVAL);
}

static void expect_rewrite(const char *in, enum drvinject_text_kind kind, const char *want,
			   unsigned want_n)
{
	char *out = NULL;
	unsigned n = 99;
	CHECK_EQ(drvinject_rewrite_devices(in, kind, map, MAP_LEN, &out, &n), 0);
	CHECK(out && !strcmp(out, want));
	if (out && strcmp(out, want))
		fprintf(stderr, "got:\n%s\nwant:\n%s\n", out, want);
	CHECK_EQ(n, want_n);
	free(out);
}

static void test_fstab(void)
{
	expect_rewrite("# /dev/sda1 was the installer's root\n"
		       "/dev/sda1 / ext4 errors=remount-ro 0 1\n"
		       "\t/dev/sda2\tnone swap sw 0 0\n"
		       "/dev/hda5 /home ext4 defaults 0 2\n"
		       "/dev/sdc1 /mnt ext4 defaults 0 2\n"
		       "UUID=abcd /boot ext4 defaults 0 2\n"
		       "/dev/sda10 /x ext4 defaults 0 2\n"
		       "proc /proc proc defaults 0 0",
		       DRVINJECT_FSTAB,
		       "# /dev/sda1 was the installer's root\n"
		       U1 " / ext4 errors=remount-ro 0 1\n"
		       "\t" U2 "\tnone swap sw 0 0\n"
		       U5 " /home ext4 defaults 0 2\n"
		       "/dev/sdc1 /mnt ext4 defaults 0 2\n"
		       "UUID=abcd /boot ext4 defaults 0 2\n"
		       "/dev/sda10 /x ext4 defaults 0 2\n"
		       "proc /proc proc defaults 0 0", 3);
	/* cciss and nvme names of the same partitions */
	expect_rewrite("/dev/cciss/c0d0p1 / ext4 defaults 0 1\n/dev/nvme0n1p2 none swap sw 0 0\n",
		       DRVINJECT_FSTAB, U1 " / ext4 defaults 0 1\n" U2 " none swap sw 0 0\n", 2);
	expect_rewrite("", DRVINJECT_FSTAB, "", 0);
}

static void test_crypttab(void)
{
	expect_rewrite("cryptroot /dev/sda5 none luks,discard\n# sda2 /dev/sda2\n",
		       DRVINJECT_CRYPTTAB, "cryptroot " U5 " none luks,discard\n# sda2 /dev/sda2\n", 1);
}

static void test_grub(void)
{
	expect_rewrite("menuentry 'Debian' {\n"
		       "\tlinux /boot/vmlinuz-6.1 root=/dev/sda1 ro resume=/dev/sda2 quiet\n"
		       "\tinitrd /boot/initrd.img-6.1\n"
		       "\tlinux /boot/vmlinuz-6.1 noroot=/dev/sda1 root=/dev/sda1\n"
		       "}\n",
		       DRVINJECT_KERNEL_CMDLINE,
		       "menuentry 'Debian' {\n"
		       "\tlinux /boot/vmlinuz-6.1 root=" U1 " ro resume=" U2 " quiet\n"
		       "\tinitrd /boot/initrd.img-6.1\n"
		       "\tlinux /boot/vmlinuz-6.1 noroot=/dev/sda1 root=" U1 "\n"
		       "}\n", 3);
	expect_rewrite("GRUB_CMDLINE_LINUX=\"root=/dev/sda1\"\nGRUB_CMDLINE_LINUX_DEFAULT='resume=/dev/hda2'\n",
		       DRVINJECT_KERNEL_CMDLINE,
		       "GRUB_CMDLINE_LINUX=\"root=" U1 "\"\nGRUB_CMDLINE_LINUX_DEFAULT='resume=" U2 "'\n", 2);
	expect_rewrite("root=/dev/sdz9 root=", DRVINJECT_KERNEL_CMDLINE, "root=/dev/sdz9 root=", 0);
}

static void expect_serial(const char *in, const char *want, unsigned want_n)
{
	char *out = NULL;
	unsigned n = 99;
	CHECK_EQ(drvinject_add_serial_console(in, &out, &n), 0);
	CHECK(out && !strcmp(out, want));
	if (out && strcmp(out, want))
		fprintf(stderr, "got:\n%s\nwant:\n%s\n", out, want);
	CHECK_EQ(n, want_n);
	free(out);
}

static void test_serial_console(void)
{
	expect_serial("GRUB_CMDLINE_LINUX=\"\"\nGRUB_TIMEOUT=5\n",
		      "GRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200\"\nGRUB_TIMEOUT=5\n", 1);
	expect_serial("GRUB_CMDLINE_LINUX=\"quiet\"\n",
		      "GRUB_CMDLINE_LINUX=\"quiet console=tty0 console=ttyS0,115200\"\n", 1);
	expect_serial("\tlinux /vmlinuz root=UUID=x ro\n\tinitrd /initrd\n",
		      "\tlinux /vmlinuz root=UUID=x ro console=tty0 console=ttyS0,115200\n\tinitrd /initrd\n", 1);
	expect_serial("  APPEND root=/dev/sda1\n", "  APPEND root=/dev/sda1 console=tty0 console=ttyS0,115200\n", 1);
	/* already there: unchanged */
	expect_serial("\tlinux /vmlinuz console=ttyS0 ro\n", "\tlinux /vmlinuz console=ttyS0 ro\n", 0);
	expect_serial("GRUB_CMDLINE_LINUX=\"unterminated\n", "GRUB_CMDLINE_LINUX=\"unterminated\n", 0);
}

/* ---- registry ---- */

static hive_node_h child_path(hive_h *h, const char *const *names)
{
	hive_node_h n = hivex_root(h);
	for (; n && *names; names++)
		n = hivex_node_get_child(h, n, *names);
	return n;
}

static void check_string(hive_h *h, hive_node_h n, const char *name, hive_type want_t,
			 const char *want)
{
	hive_value_h v = n ? hivex_node_get_value(h, n, name) : 0;
	CHECK(v != 0);
	if (!v)
		return;
	hive_type t;
	size_t len;
	CHECK_EQ(hivex_value_type(h, v, &t, &len), 0);
	CHECK_EQ(t, want_t);
	CHECK_EQ(len, (strlen(want) + 1) * 2);
	char *s = hivex_value_string(h, v);
	CHECK(s && !strcmp(s, want));
	free(s);
}

static void check_dword(hive_h *h, hive_node_h n, const char *name, int32_t want)
{
	hive_value_h v = n ? hivex_node_get_value(h, n, name) : 0;
	CHECK(v != 0);
	if (!v)
		return;
	hive_type t;
	size_t len;
	CHECK_EQ(hivex_value_type(h, v, &t, &len), 0);
	CHECK_EQ(t, hive_t_REG_DWORD);
	CHECK_EQ(hivex_value_dword(h, v), want);
}

/* A SYSTEM hive as Windows has it: Select\Current=2, ControlSet002\Services. */
static void make_system_hive(const char *path)
{
	char err[256];
	CHECK_EQ(drvinject_win_hive_create(path, err, sizeof(err)), 0);
	hive_h *h = hivex_open(path, HIVEX_OPEN_WRITE);
	CHECK(h != NULL);
	if (!h)
		return;
	hive_node_h sel = hivex_node_add_child(h, hivex_root(h), "Select");
	uint8_t two[4] = { 2, 0, 0, 0 };
	hive_set_value v = { .key = "Current", .t = hive_t_REG_DWORD, .len = 4, .value = (char *)two };
	CHECK_EQ(hivex_node_set_value(h, sel, &v, 0), 0);
	hive_node_h cs = hivex_node_add_child(h, hivex_root(h), "ControlSet002");
	CHECK(cs && hivex_node_add_child(h, cs, "Services"));
	CHECK_EQ(hivex_commit(h, NULL, 0), 0);
	hivex_close(h);
}

static void check_services(hive_h *h)
{
	static const char *const viostor[] = { "ControlSet002", "Services", "viostor", NULL };
	static const char *const vioscsi[] = { "ControlSet002", "Services", "vioscsi", NULL };
	hive_node_h n = child_path(h, viostor);
	CHECK(n != 0);
	check_dword(h, n, "Start", 0);
	check_dword(h, n, "Type", 1);
	check_dword(h, n, "ErrorControl", 1);
	check_string(h, n, "Group", hive_t_REG_SZ, "SCSI miniport");
	check_string(h, n, "ImagePath", hive_t_REG_EXPAND_SZ, "system32\\drivers\\viostor.sys");
	n = child_path(h, vioscsi);
	check_string(h, n, "ImagePath", hive_t_REG_EXPAND_SZ, "system32\\drivers\\vioscsi.sys");
}

static void test_registry_win7(const char *path)
{
	char err[256];
	make_system_hive(path);
	CHECK_EQ(drvinject_win_registry_add_virtio(path, 6, 1, err, sizeof(err)), 0);
	hive_h *h = hivex_open(path, 0);
	CHECK(h != NULL);
	if (!h)
		return;
	check_services(h);
	static const char *const cdd[] = { "ControlSet002", "Control", "CriticalDeviceDatabase",
					   "pci#ven_1af4&dev_1001&subsys_00021af4&rev_00", NULL };
	hive_node_h n = child_path(h, cdd);
	CHECK(n != 0);
	check_string(h, n, "Service", hive_t_REG_SZ, "viostor");
	check_string(h, n, "ClassGUID", hive_t_REG_SZ, "{4D36E97B-E325-11CE-BFC1-08002BE10318}");
	static const char *const modern[] = { "ControlSet002", "Control", "CriticalDeviceDatabase",
					      "pci#ven_1af4&dev_1042&subsys_11001af4&rev_01", NULL };
	check_string(h, child_path(h, modern), "Service", hive_t_REG_SZ, "viostor");
	/* nothing in ControlSet001: Select\Current said 2 */
	CHECK(hivex_node_get_child(h, hivex_root(h), "ControlSet001") == 0);
	CHECK(hivex_node_get_child(h, hivex_root(h), "DriverDatabase") == 0);
	hivex_close(h);
}

static void test_registry_win10(const char *path)
{
	char err[256];
	make_system_hive(path);
	CHECK_EQ(drvinject_win_registry_add_virtio(path, 10, 0, err, sizeof(err)), 0);
	/* a second run leaves one set of keys with the same values */
	CHECK_EQ(drvinject_win_registry_add_virtio(path, 10, 0, err, sizeof(err)), 0);
	hive_h *h = hivex_open(path, 0);
	CHECK(h != NULL);
	if (!h)
		return;
	check_services(h);
	static const char *const ids[] = { "DriverDatabase", "DeviceIds", "PCI",
					   "VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00", NULL };
	hive_node_h n = child_path(h, ids);
	hive_value_h v = n ? hivex_node_get_value(h, n, "viostor.inf") : 0;
	CHECK(v != 0);
	if (v) {
		hive_type t;
		size_t len;
		char *data = hivex_value_value(h, v, &t, &len);
		CHECK_EQ(t, hive_t_REG_BINARY);
		CHECK_EQ(len, 4);
		CHECK(data && !memcmp(data, "\x01\xff\x00\x00", 4));
		free(data);
	}
	static const char *const cs[] = { "ControlSet002", "Control", NULL };
	CHECK(child_path(h, cs) == 0);  /* no CriticalDeviceDatabase on 8+ */
	hive_node_h services = child_path(h, (const char *const[]){ "ControlSet002", "Services", NULL });
	hive_node_h *kids = services ? hivex_node_children(h, services) : NULL;
	size_t nkids = 0;
	while (kids && kids[nkids])
		nkids++;
	CHECK_EQ(nkids, 2);
	free(kids);
	hivex_close(h);
}

static void test_registry_refusals(const char *path)
{
	char err[256] = "";
	make_system_hive(path);
	CHECK_EQ(drvinject_win_registry_add_virtio(path, 11, 0, err, sizeof(err)), -ENOTSUP);
	CHECK(strstr(err, "11.0") != NULL);
	CHECK_EQ(drvinject_win_registry_add_virtio(path, 4, 0, err, sizeof(err)), -ENOTSUP);
	CHECK(drvinject_win_registry_add_virtio("/nonexistent/SYSTEM", 10, 0, err, sizeof(err)) < 0);
	CHECK(strstr(err, "/nonexistent/SYSTEM") != NULL);
	/* not a hive */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("regf but not really", f);
		fclose(f);
	}
	CHECK(drvinject_win_registry_add_virtio(path, 10, 0, err, sizeof(err)) < 0);
	CHECK_EQ(drvinject_win_dir_name(6, 1, false, NULL) ? 0 : 1, 0);
	CHECK(!strcmp(drvinject_win_dir_name(6, 1, false, NULL), "w7"));
	CHECK(!strcmp(drvinject_win_dir_name(6, 3, true, NULL), "2k12R2"));
	CHECK(!strcmp(drvinject_win_dir_name(10, 0, false, "Windows 11 Pro"), "w11"));
	CHECK(!strcmp(drvinject_win_dir_name(10, 0, true, "Windows Server 2019 Standard"), "2k19"));
	CHECK(drvinject_win_dir_name(7, 0, false, NULL) == NULL);
}

/* The removable path as Debian's grub-install builds it (grub2
 * 2.06-13, util/grub-install.c with debian/patches/grub-install-extra-
 * removable.patch): with shim, \EFI\BOOT gets shim as BOOTX64.EFI,
 * grubx64.efi and mmx64.efi, never fbx64.efi (shim would run it and it
 * resets the machine after writing NVRAM entries); without shim, GRUB
 * itself is BOOTX64.EFI. */
static void test_efi_plan(void)
{
	static const char *const shim_dir[] = { "BOOTX64.CSV", "fbx64.efi", "grub.cfg", "grubx64.efi",
						 "mmx64.efi", "shimx64.efi" };
	static const char *const grub_dir[] = { "grubx64.efi" };
	static const char *const win_dir[] = { "BCD", "bootmgfw.efi", "bootmgr.efi", "memtest.efi" };
	static const char *const upper[] = { "GRUBX64.EFI", "SHIMX64.EFI" };
	static const char *const none[] = { "grub.cfg", "README" };
	struct drvinject_efi_plan p;
	char stub[512];

	CHECK_EQ(drvinject_efi_plan(false, "EFI/debian", shim_dir, 6, &p), 0);
	CHECK_EQ(p.n, 4);
	CHECK(!strcmp(p.copy[0].from, "EFI/debian/shimx64.efi") && !strcmp(p.copy[0].to, "EFI/BOOT/BOOTX64.EFI"));
	CHECK(!strcmp(p.copy[1].from, "EFI/debian/grubx64.efi") && !strcmp(p.copy[1].to, "EFI/BOOT/grubx64.efi"));
	CHECK(!strcmp(p.copy[2].from, "EFI/debian/mmx64.efi") && !strcmp(p.copy[2].to, "EFI/BOOT/mmx64.efi"));
	CHECK(!strcmp(p.copy[3].from, "EFI/debian/grub.cfg") && !strcmp(p.copy[3].to, "EFI/BOOT/grub.cfg"));
	CHECK(!p.write_stub);
	for (unsigned i = 0; i < p.n; i++)
		CHECK(strstr(p.copy[i].from, "fbx64") == NULL);

	CHECK_EQ(drvinject_efi_plan(false, "EFI/debian", grub_dir, 1, &p), 0);
	CHECK_EQ(p.n, 1);
	CHECK(!strcmp(p.copy[0].to, "EFI/BOOT/BOOTX64.EFI"));
	CHECK(p.write_stub);

	/* FAT keeps the case it was given: the names are matched without it. */
	CHECK_EQ(drvinject_efi_plan(false, "EFI/ubuntu", upper, 2, &p), 0);
	CHECK(!strcmp(p.copy[0].from, "EFI/ubuntu/SHIMX64.EFI"));
	CHECK(!strcmp(p.copy[1].from, "EFI/ubuntu/GRUBX64.EFI") && !strcmp(p.copy[1].to, "EFI/BOOT/grubx64.efi"));

	CHECK_EQ(drvinject_efi_plan(true, "EFI/Microsoft/Boot", win_dir, 4, &p), 0);
	CHECK_EQ(p.n, 1);
	CHECK(!strcmp(p.copy[0].from, "EFI/Microsoft/Boot/bootmgfw.efi"));
	CHECK(!strcmp(p.copy[0].to, "EFI/BOOT/BOOTX64.EFI"));
	CHECK(!p.write_stub);
	CHECK_EQ(drvinject_efi_plan(false, "EFI/Microsoft/Boot", win_dir, 4, &p), -ENOENT);
	CHECK_EQ(drvinject_efi_plan(false, "EFI/x", none, 2, &p), -ENOENT);

	/* The stub is what Debian's grub-install writes beside a signed GRUB. */
	CHECK_EQ(drvinject_grub_stub("dd1b16fa-2ca0-4f6a-8e80-a883ae0963ba", "/boot/grub", stub, sizeof(stub)), 0);
	CHECK(strstr(stub, "\nsearch.fs_uuid dd1b16fa-2ca0-4f6a-8e80-a883ae0963ba root\n"
			   "set prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n") != NULL);
	CHECK_EQ(drvinject_grub_stub("dd1b; reboot", "/boot/grub", stub, sizeof(stub)), -EINVAL);
	CHECK_EQ(drvinject_grub_stub("", "/boot/grub", stub, sizeof(stub)), -EINVAL);
	CHECK_EQ(drvinject_grub_stub("1234-ABCD", "/gr'ub", stub, sizeof(stub)), -EINVAL);
}

int main(void)
{
	char path[] = "/tmp/p2v-unit-hive.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	test_parse_device();
	test_fstab();
	test_crypttab();
	test_grub();
	test_serial_console();
	test_efi_plan();
	test_registry_win7(path);
	test_registry_win10(path);
	test_registry_refusals(path);
	unlink(path);
	UNIT_DONE();
}
