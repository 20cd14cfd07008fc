/* abi_probe — a shared object whose exported functions mention every type
 * of the plugin ABI, so libabigail can record the ABI of <mbgw/plugin.h>
 * (a header made of structs and function-pointer tables, with no library
 * of its own). Built from the current SDK headers and compared with
 * abidiff against the committed baseline (mbgw-abi-1.xml); see run-abidiff.sh.
 */
#include <mbgw/plugin.h>

__attribute__((visibility("default"))) size_t abi_probe_host(const struct mbgw_host *h);
__attribute__((visibility("default"))) size_t abi_probe_plugin(const struct mbgw_plugin *p);
__attribute__((visibility("default"))) size_t abi_probe_message(const struct mbgw_message *m,
								const struct mbgw_attr *a);
__attribute__((visibility("default"))) size_t abi_probe_upgrade(const struct mbgw_upgrade *u,
								struct mbgw_verdict *v);
__attribute__((visibility("default"))) mbgw_plugin_entry_fn abi_probe_entry(mbgw_conn_id id);

size_t abi_probe_host(const struct mbgw_host *h) { return h ? h->size : sizeof *h; }
size_t abi_probe_plugin(const struct mbgw_plugin *p) { return p ? p->size : sizeof *p; }
size_t abi_probe_message(const struct mbgw_message *m, const struct mbgw_attr *a)
{
	return (m ? m->size : sizeof *m) + (a ? a->key_len : sizeof *a);
}
size_t abi_probe_upgrade(const struct mbgw_upgrade *u, struct mbgw_verdict *v)
{
	return (u ? u->size : sizeof *u) + (v ? v->size : sizeof *v);
}
mbgw_plugin_entry_fn abi_probe_entry(mbgw_conn_id id) { (void)id; return 0; }
