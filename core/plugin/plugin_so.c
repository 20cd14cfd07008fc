/* plugin_so — see plugin_so.h. */
#include "plugin/plugin_so.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util_log.h"

static char g_private_dir[4096];
static atomic_uint g_seq;

int plugin_so_init(const char *private_dir)
{
	snprintf(g_private_dir, sizeof g_private_dir, "%s", private_dir);
	if (mkdir(private_dir, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

void plugin_so_cleanup(void)
{
	if (g_private_dir[0])
		rmdir(g_private_dir);
}

static int copy_file(const char *from, const char *to, char *err, size_t errcap)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errcap, "cannot open %s: %s", from, strerror(errno));
		return -1;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (out < 0) {
		snprintf(err, errcap, "cannot create private copy %s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t r;
	int rc = 0;
	while ((r = read(in, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0) {
				snprintf(err, errcap, "cannot write %s: %s", to, strerror(errno));
				rc = -1;
				goto out;
			}
			off += w;
		}
	}
	if (r < 0) {
		snprintf(err, errcap, "cannot read %s: %s", from, strerror(errno));
		rc = -1;
	}
out:
	close(in);
	if (close(out) < 0 && rc == 0) {
		snprintf(err, errcap, "cannot write %s: %s", to, strerror(errno));
		rc = -1;
	}
	if (rc < 0)
		unlink(to);
	return rc;
}

static bool is_elf(const char *path)
{
	unsigned char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t r = read(fd, magic, 4);
	close(fd);
	return r == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

struct plugin_so *plugin_so_open(const char *path, char *err, size_t errcap)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(err, errcap, "plugin file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errcap, "plugin file %s is not a regular file", path);
		return NULL;
	}
	if (!is_elf(path)) {
		snprintf(err, errcap, "plugin file %s is not a shared object (no ELF header)", path);
		return NULL;
	}
	struct plugin_so *so = calloc(1, sizeof *so);
	if (!so) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	atomic_init(&so->refs, 1);
	so->dev = st.st_dev;
	so->ino = st.st_ino;
	so->fsize = st.st_size;
	so->mtime = st.st_mtim;
	so->path = strdup(path);

	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t bl = strlen(base);
	if (bl > 3 && strcmp(base + bl - 3, ".so") == 0)
		bl -= 3;
	char priv[4096 + 300];
	snprintf(priv, sizeof priv, "%s/%.*s.%u.so", g_private_dir, (int)(bl > 200 ? 200 : bl), base,
		 atomic_fetch_add(&g_seq, 1) + 1);
	so->private_path = strdup(priv);
	if (!so->path || !so->private_path) {
		snprintf(err, errcap, "out of memory");
		goto out_free;
	}
	if (copy_file(path, priv, err, errcap) < 0)
		goto out_free;

	dlerror();
	so->handle = dlopen(priv, RTLD_NOW | RTLD_LOCAL);
	if (!so->handle) {
		const char *e = dlerror();
		snprintf(err, errcap, "plugin file %s cannot be loaded: %s", path, e ? e : "unknown error");
		goto out_unlink;
	}
	mbgw_plugin_entry_fn entry = (mbgw_plugin_entry_fn)dlsym(so->handle, MBGW_PLUGIN_ENTRY_NAME);
	if (!entry) {
		/* Say whether it is another ABI major or no plugin at all. */
		char other[32];
		for (int v = 2; v < 10; v++) {
			snprintf(other, sizeof other, "mbgw_plugin_v%d", v);
			if (dlsym(so->handle, other)) {
				snprintf(err, errcap, "plugin file %s was built for ABI %d (exports %s); this host speaks ABI %d",
					 path, v, other, MBGW_ABI_MAJOR);
				goto out_close;
			}
		}
		snprintf(err, errcap, "plugin file %s does not export %s: not an mbgw plugin "
			 "(define one with MBGW_PLUGIN_DEFINE from <mbgw/plugin.h>)", path, MBGW_PLUGIN_ENTRY_NAME);
		goto out_close;
	}
	const struct mbgw_plugin *d = entry(MBGW_ABI_MAJOR, MBGW_ABI_MINOR);
	if (!d) {
		snprintf(err, errcap, "plugin file %s: its entry point returned no description", path);
		goto out_close;
	}
	size_t min = offsetof(struct mbgw_plugin, name);
	if (d->size < min || d->abi_major != MBGW_ABI_MAJOR) {
		snprintf(err, errcap, "plugin file %s: unsupported plugin ABI %u.%u (size %u); this host speaks ABI %d.%d",
			 path, d->abi_major, d->abi_minor, d->size, MBGW_ABI_MAJOR, MBGW_ABI_MINOR);
		goto out_close;
	}
	/* Read only the part the plugin was built with; newer fields stay 0. */
	memset(&so->desc, 0, sizeof so->desc);
	memcpy(&so->desc, d, d->size < sizeof so->desc ? d->size : sizeof so->desc);
	if (d->abi_minor > MBGW_ABI_MINOR)
		log_info("plugin %s was built against SDK %u.%u, newer than this host's %d.%d; "
			 "it must check MBGW_HOST_HAS() for newer host functions",
			 path, d->abi_major, d->abi_minor, MBGW_ABI_MAJOR, MBGW_ABI_MINOR);
	if (!so->desc.name)
		so->desc.name = "unnamed";
	if (!so->desc.version)
		so->desc.version = "?";
	return so;

out_close:
	dlclose(so->handle);
out_unlink:
	unlink(priv);
out_free:
	free(so->path);
	free(so->private_path);
	free(so);
	return NULL;
}

void plugin_so_ref(struct plugin_so *so)
{
	atomic_fetch_add(&so->refs, 1);
}

void plugin_so_unref(struct plugin_so *so)
{
	if (atomic_fetch_sub(&so->refs, 1) != 1)
		return;
	log_info("unloading plugin %s %s (%s)", so->desc.name, so->desc.version, so->path);
	dlclose(so->handle);
	unlink(so->private_path);
	free(so->path);
	free(so->private_path);
	free(so);
}

bool plugin_so_same_file(const struct plugin_so *so, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return false;
	return st.st_dev == so->dev && st.st_ino == so->ino && st.st_size == so->fsize &&
	       st.st_mtim.tv_sec == so->mtime.tv_sec && st.st_mtim.tv_nsec == so->mtime.tv_nsec;
}
