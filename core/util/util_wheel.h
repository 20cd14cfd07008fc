/* util_wheel — a hierarchical timer wheel: O(1) arm and cancel, and no
 * work per tick for timers that are not due.
 *
 * Used by each worker for its connections' timeouts (handshake, heartbeat,
 * pong, close), so that a worker with a million idle connections does not
 * visit them every tick. Time is cut into ticks of tick_ms; a timer fires
 * at the first tick boundary at or after its expiry, never before.
 *
 * Levels: level 0 has WHEEL_SLOTS slots of one tick each; each further
 * level has slots WHEEL_LEVEL_FACTOR times as wide. A timer goes, once, to
 * the finest level whose span covers its delay, in the slot that is
 * processed at its expiry rounded up to that level's slot width, and is
 * never moved again ("non-cascading", as in Linux since 4.8). So a timer
 * within (WHEEL_SLOTS - 1) ticks fires exactly at its tick; a longer one
 * may fire up to one slot width of its level late: at most
 * WHEEL_LEVEL_FACTOR / (WHEEL_SLOTS - 1), about 1.6%, of its delay (a
 * 30 s heartbeat at 100 ms ticks: at most 300 ms late). Delays beyond
 * wheel_max_delay_ms() are shortened to it.
 *
 * A timer is a two-pointer node embedded in its owner (container_of style);
 * the wheel allocates nothing. Not thread-safe: one owner thread.
 */
#ifndef MBGW_UTIL_WHEEL_H
#define MBGW_UTIL_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WHEEL_SLOT_BITS 8
#define WHEEL_SLOTS (1u << WHEEL_SLOT_BITS)
#define WHEEL_LEVEL_SHIFT 2                     /* each level 4 times coarser */
#define WHEEL_LEVEL_FACTOR (1u << WHEEL_LEVEL_SHIFT)
#define WHEEL_LEVELS 7

struct wheel_timer {
	struct wheel_timer *next;
	struct wheel_timer **pprev;     /* NULL when not armed */
};

struct wheel {
	uint64_t tick_ms;
	uint64_t clk;                   /* last tick processed */
	size_t count;                   /* armed timers */
	uint64_t pending[WHEEL_LEVELS][WHEEL_SLOTS / 64]; /* non-empty slots */
	struct wheel_timer *slots[WHEEL_LEVELS][WHEEL_SLOTS];
};

/* Called for each timer that fires; the timer is already disarmed and may
 * be armed again (or any other timer armed or cancelled) from here. */
typedef void (*wheel_fire_fn)(struct wheel_timer *t, void *arg);

/* An empty wheel whose clock starts at now_ms. tick_ms > 0. */
void wheel_init(struct wheel *w, uint64_t tick_ms, uint64_t now_ms);

/* A zeroed timer is a valid disarmed one; so is one after wheel_timer_init. */
static inline void wheel_timer_init(struct wheel_timer *t)
{
	t->next = NULL;
	t->pprev = NULL;
}

static inline bool wheel_timer_armed(const struct wheel_timer *t)
{
	return t->pprev != NULL;
}

/* Arms t to fire at when_ms (moving it if it was armed). A time already
 * past fires at the next tick. O(1). */
void wheel_arm(struct wheel *w, struct wheel_timer *t, uint64_t when_ms);

/* Disarms t; a no-op if it is not armed. O(1). */
void wheel_cancel(struct wheel *w, struct wheel_timer *t);

/* Fires, in tick order, every timer due at or before now_ms. Returns how
 * many fired. */
size_t wheel_advance(struct wheel *w, uint64_t now_ms, wheel_fire_fn fire, void *arg);

/* Milliseconds from now_ms until the next tick at which a timer may fire
 * (0 if one is due already), or -1 when no timer is armed. A poll timeout
 * for the owner's event loop. */
int64_t wheel_timeout_ms(const struct wheel *w, uint64_t now_ms);

/* The longest delay a timer keeps (about 29 hours at 100 ms ticks). */
uint64_t wheel_max_delay_ms(const struct wheel *w);

#endif
