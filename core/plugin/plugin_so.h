/* plugin_so — loading and unloading plugin shared objects.
 *
 * The dynamic loader hands back the already-loaded object when asked for a
 * path (or file) it has seen, so a rebuilt plugin under the same name
 * would silently keep running its old code. Every load therefore copies
 * the file to a unique private path first (<private dir>/<name>.<n>.so)
 * and dlopens that, with RTLD_NOW | RTLD_LOCAL: symbols resolve at load,
 * and one plugin's symbols never satisfy another's. The copy is removed
 * when the object is closed, so /proc/<pid>/maps shows exactly which
 * builds are mapped.
 *
 * Errors name the file and what is wrong with it: missing, not a shared
 * object, no entry symbol, an ABI this host does not speak.
 * Called from the main thread (start-up, reload) and, for the last
 * unref, from whichever thread retires the instance.
 */
#ifndef MBGW_PLUGIN_SO_H
#define MBGW_PLUGIN_SO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <mbgw/plugin.h>

struct plugin_so {
	atomic_int refs;
	char *path;               /* as configured, resolved */
	char *private_path;       /* the copy that was dlopened */
	void *handle;
	struct mbgw_plugin desc;  /* the plugin's description, zero-extended */
	dev_t dev;                /* identity of the file when loaded */
	ino_t ino;
	off_t fsize;
	struct timespec mtime;
};

/* Sets the directory for private copies (created if missing). Returns 0
 * or -1 with errno. Call once at start-up; plugin_so_cleanup removes it. */
int plugin_so_init(const char *private_dir);
void plugin_so_cleanup(void);

/* Loads a plugin file. Returns a new object with one reference, or NULL
 * with a reason in err[errcap]. */
struct plugin_so *plugin_so_open(const char *path, char *err, size_t errcap);
void plugin_so_ref(struct plugin_so *so);
/* Drops a reference; at zero dlcloses and removes the private copy. */
void plugin_so_unref(struct plugin_so *so);

/* True if the file at path is still the file so was loaded from (same
 * inode, size and modification time). */
bool plugin_so_same_file(const struct plugin_so *so, const char *path);

#endif
