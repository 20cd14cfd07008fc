/* bad_abi_major2 — exports the v1 entry symbol but describes itself as
 * ABI 2.0: the host must check abi_major, not only the symbol's name. */
#include <mbgw/plugin.h>

static int never(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		 void **state, char *err, size_t errcap)
{
	(void)h;
	(void)inst;
	(void)settings;
	(void)state;
	(void)err;
	(void)errcap;
	__builtin_trap(); /* init of a refused plugin must never run */
}

static const struct mbgw_plugin desc = {
	.size = sizeof(struct mbgw_plugin),
	.abi_major = 2,
	.abi_minor = 0,
	.name = "liar",
	.version = "2.0",
	.init = never,
};

MBGW_EXPORT const struct mbgw_plugin *mbgw_plugin_v1(uint32_t major, uint32_t minor);
MBGW_EXPORT const struct mbgw_plugin *mbgw_plugin_v1(uint32_t major, uint32_t minor)
{
	(void)major;
	(void)minor;
	return &desc;
}
