/* Registering the virtio storage drivers in a Windows SYSTEM hive (hivex).
 *
 * What is written, in the current control set (Select\Current):
 *   Services\viostor, Services\vioscsi: Type=1 (kernel driver), Start=0
 *     (boot), ErrorControl=1, Group="SCSI miniport", ImagePath=
 *     system32\drivers\<name>.sys (REG_EXPAND_SZ).  A boot-start service is
 *     loaded by the boot loader whether or not PnP knows the device yet.
 *   Windows before 8 (NT < 6.2): Control\CriticalDeviceDatabase\pci#ven_1af4&...
 *     (legacy and modern virtio PCI IDs) with Service and ClassGUID, so
 *     the boot device is bound to the service on first boot.
 *   Windows 8 and later (NT >= 6.2), which dropped the CriticalDeviceDatabase:
 *     DriverDatabase\DeviceIds\PCI\VEN_1AF4&... with "<name>.inf" = 01 ff 00 00,
 *     pointing PnP at the driver's INF; the driver package itself is copied
 *     next to the .sys by the caller, and Windows completes the PnP install
 *     once it has booted from the boot-start service. */
#include "inject.h"

#include <errno.h>
#include <hivex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCSI_ADAPTER_CLASS_GUID "{4D36E97B-E325-11CE-BFC1-08002BE10318}"

struct virtio_storage_driver {
	const char *service;
	const char *pci_ids[2];   /* legacy (transitional) and modern virtio device */
};

static const struct virtio_storage_driver storage_drivers[] = {
	{ "viostor", { "VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00",
		       "VEN_1AF4&DEV_1042&SUBSYS_11001AF4&REV_01" } },
	{ "vioscsi", { "VEN_1AF4&DEV_1004&SUBSYS_00081AF4&REV_00",
		       "VEN_1AF4&DEV_1048&SUBSYS_11001AF4&REV_01" } },
};

struct reg_ctx {
	hive_h *h;
	char *err;
	size_t err_bytes;
};

static int reg_fail(struct reg_ctx *c, const char *what, const char *name)
{
	int e = errno ? errno : EIO;
	snprintf(c->err, c->err_bytes, "registry: %s '%s': %s", what, name, strerror(e));
	return -e;
}

/* The child key `name` of parent, created when missing; 0 on error. */
static hive_node_h reg_key(struct reg_ctx *c, hive_node_h parent, const char *name)
{
	errno = 0;
	hive_node_h node = hivex_node_get_child(c->h, parent, name);
	if (node || errno)
		return node;
	return hivex_node_add_child(c->h, parent, name);
}

static int reg_set(struct reg_ctx *c, hive_node_h node, const char *name, hive_type t,
		   const void *data, size_t len)
{
	hive_set_value v = { .key = (char *)name, .t = t, .len = len, .value = (char *)data };
	if (hivex_node_set_value(c->h, node, &v, 0) < 0)
		return reg_fail(c, "setting value", name);
	return 0;
}

static int reg_set_dword(struct reg_ctx *c, hive_node_h node, const char *name, uint32_t v)
{
	uint8_t le[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	return reg_set(c, node, name, hive_t_REG_DWORD, le, sizeof(le));
}

/* REG_SZ / REG_EXPAND_SZ: UTF-16LE with its terminating NUL. */
static int reg_set_string(struct reg_ctx *c, hive_node_h node, const char *name, hive_type t,
			  const char *ascii)
{
	char buf[512];
	size_t n = strlen(ascii);
	if ((n + 1) * 2 > sizeof(buf)) {
		snprintf(c->err, c->err_bytes, "registry: value '%s' of %zu characters is too long",
			 name, n);
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++) {
		buf[2 * i] = ascii[i];
		buf[2 * i + 1] = 0;
	}
	return reg_set(c, node, name, t, buf, (n + 1) * 2);
}

/* "ControlSet001" from Select\Current, defaulting to 1 when absent. */
static int reg_current_control_set(struct reg_ctx *c, char *name, size_t name_bytes)
{
	int32_t current = 1;
	hive_node_h select = hivex_node_get_child(c->h, hivex_root(c->h), "Select");
	hive_value_h v = select ? hivex_node_get_value(c->h, select, "Current") : 0;
	if (v) {
		errno = 0;
		current = hivex_value_dword(c->h, v);
		if (errno || current < 1 || current > 999) {
			snprintf(c->err, c->err_bytes, "registry: Select\\Current = %d is not a control set",
				 (int)current);
			return -EINVAL;
		}
	}
	snprintf(name, name_bytes, "ControlSet%03d", (int)current);
	return 0;
}

static int reg_add_service(struct reg_ctx *c, hive_node_h services, const char *name)
{
	char image[128];
	hive_node_h svc = reg_key(c, services, name);
	if (!svc)
		return reg_fail(c, "creating key Services\\", name);
	snprintf(image, sizeof(image), "system32\\drivers\\%s.sys", name);
	int r = reg_set_dword(c, svc, "Type", 1);
	if (!r)
		r = reg_set_dword(c, svc, "Start", 0);
	if (!r)
		r = reg_set_dword(c, svc, "ErrorControl", 1);
	if (!r)
		r = reg_set_string(c, svc, "Group", hive_t_REG_SZ, "SCSI miniport");
	if (!r)
		r = reg_set_string(c, svc, "ImagePath", hive_t_REG_EXPAND_SZ, image);
	return r;
}

/* CriticalDeviceDatabase\pci#ven_1af4&dev_1001&subsys_00021af4&rev_00 */
static int reg_add_critical_device(struct reg_ctx *c, hive_node_h cdd, const char *pci_id,
				   const char *service)
{
	char name[96];
	int n = snprintf(name, sizeof(name), "pci#%s", pci_id);
	for (int i = 0; i < n; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			name[i] = (char)(name[i] - 'A' + 'a');
	hive_node_h key = reg_key(c, cdd, name);
	if (!key)
		return reg_fail(c, "creating key CriticalDeviceDatabase\\", name);
	int r = reg_set_string(c, key, "Service", hive_t_REG_SZ, service);
	if (!r)
		r = reg_set_string(c, key, "ClassGUID", hive_t_REG_SZ, SCSI_ADAPTER_CLASS_GUID);
	return r;
}

/* DriverDatabase\DeviceIds\PCI\VEN_1AF4&... : "<service>.inf" = 01 ff 00 00 */
static int reg_add_device_id(struct reg_ctx *c, hive_node_h pci, const char *pci_id,
			     const char *service)
{
	static const uint8_t rank[4] = { 0x01, 0xff, 0x00, 0x00 };
	char inf[64];
	hive_node_h key = reg_key(c, pci, pci_id);
	if (!key)
		return reg_fail(c, "creating key DriverDatabase\\DeviceIds\\PCI\\", pci_id);
	snprintf(inf, sizeof(inf), "%s.inf", service);
	return reg_set(c, key, inf, hive_t_REG_BINARY, rank, sizeof(rank));
}

static bool win_version_known(int major, int minor)
{
	return (major == 5 && (minor == 1 || minor == 2)) ||
	       (major == 6 && minor >= 0 && minor <= 3) || (major == 10 && minor == 0);
}

static int reg_add_pnp_entries(struct reg_ctx *c, hive_node_h ccs, bool before_win8)
{
	hive_node_h parent;
	if (before_win8) {
		hive_node_h control = reg_key(c, ccs, "Control");
		parent = control ? reg_key(c, control, "CriticalDeviceDatabase") : 0;
	} else {
		hive_node_h db = reg_key(c, hivex_root(c->h), "DriverDatabase");
		hive_node_h ids = db ? reg_key(c, db, "DeviceIds") : 0;
		parent = ids ? reg_key(c, ids, "PCI") : 0;
	}
	if (!parent)
		return reg_fail(c, "creating key",
				before_win8 ? "Control\\CriticalDeviceDatabase"
					    : "DriverDatabase\\DeviceIds\\PCI");
	for (size_t d = 0; d < sizeof(storage_drivers) / sizeof(storage_drivers[0]); d++) {
		for (size_t i = 0; i < 2; i++) {
			const char *id = storage_drivers[d].pci_ids[i];
			const char *svc = storage_drivers[d].service;
			int r = before_win8 ? reg_add_critical_device(c, parent, id, svc)
					    : reg_add_device_id(c, parent, id, svc);
			if (r)
				return r;
		}
	}
	return 0;
}

static int reg_edit(struct reg_ctx *c, bool before_win8)
{
	char ccs_name[32];
	int r = reg_current_control_set(c, ccs_name, sizeof(ccs_name));
	if (r)
		return r;
	hive_node_h ccs = reg_key(c, hivex_root(c->h), ccs_name);
	hive_node_h services = ccs ? reg_key(c, ccs, "Services") : 0;
	if (!services)
		return reg_fail(c, "opening key", ccs_name);
	for (size_t d = 0; d < sizeof(storage_drivers) / sizeof(storage_drivers[0]); d++) {
		r = reg_add_service(c, services, storage_drivers[d].service);
		if (r)
			return r;
	}
	return reg_add_pnp_entries(c, ccs, before_win8);
}

int drvinject_win_registry_add_virtio(const char *hive_path, int major, int minor,
				      char *err, size_t err_bytes)
{
	if (!win_version_known(major, minor)) {
		snprintf(err, err_bytes,
			 "Windows NT %d.%d is not a version p2v knows (XP 5.1 to 11 10.0): "
			 "refusing to edit its registry", major, minor);
		return -ENOTSUP;
	}
	struct reg_ctx c = { .err = err, .err_bytes = err_bytes };
	c.h = hivex_open(hive_path, HIVEX_OPEN_WRITE);
	if (!c.h) {
		int e = errno ? errno : EIO;
		snprintf(err, err_bytes, "%s: not a registry hive hivex can open: %s", hive_path,
			 strerror(e));
		return -e;
	}
	bool before_win8 = major < 6 || (major == 6 && minor < 2);
	int r = reg_edit(&c, before_win8);
	if (!r && hivex_commit(c.h, NULL, 0) < 0)
		r = reg_fail(&c, "writing hive", hive_path);
	hivex_close(c.h);
	return r;
}

const char *drvinject_win_dir_name(int major, int minor, bool server, const char *product_name)
{
	const char *p = product_name ? product_name : "";
	if (major == 5)
		return minor == 1 ? "xp" : minor == 2 ? "2k3" : NULL;
	if (major == 6) {
		static const char *const client[] = { "vista", "w7", "w8", "w8.1" };
		static const char *const srv[] = { "2k8", "2k8R2", "2k12", "2k12R2" };
		return minor >= 0 && minor <= 3 ? (server ? srv : client)[minor] : NULL;
	}
	if (major == 10 && minor == 0) {
		if (!server)
			return strstr(p, "Windows 11") ? "w11" : "w10";
		if (strstr(p, "2025"))
			return "2k25";
		if (strstr(p, "2022"))
			return "2k22";
		return strstr(p, "2019") ? "2k19" : "2k16";
	}
	return NULL;
}
