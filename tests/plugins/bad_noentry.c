/* bad_noentry — a valid shared object that is no mbgw plugin: it exports a
 * function, but not the entry symbol mbgw_plugin_v1. */
#include <mbgw/plugin.h>

MBGW_EXPORT int mbgw_not_a_plugin(void);
MBGW_EXPORT int mbgw_not_a_plugin(void)
{
	return 42;
}
