/* bad_abi_v2 — a plugin built for a future major ABI: it exports
 * mbgw_plugin_v2 (and no mbgw_plugin_v1). A 1.x host must refuse it and
 * say which ABI it was built for. */
#include <mbgw/plugin.h>

static const struct mbgw_plugin desc = {
	.size = sizeof(struct mbgw_plugin),
	.abi_major = 2,
	.abi_minor = 0,
	.name = "from-the-future",
	.version = "2.0",
};

MBGW_EXPORT const struct mbgw_plugin *mbgw_plugin_v2(uint32_t major, uint32_t minor);
MBGW_EXPORT const struct mbgw_plugin *mbgw_plugin_v2(uint32_t major, uint32_t minor)
{
	(void)major;
	(void)minor;
	return &desc;
}
