/* test_util_wheel — the workers' timer wheel (core/util/util_wheel).
 *
 * A timer never fires before its time, fires at its tick when the delay is
 * under one turn of the finest level, and otherwise at most one slot width
 * of its level late (delay * 4 / 255, plus one tick); cancelled timers
 * never fire; timers may be armed and cancelled from a firing callback;
 * wheel_timeout_ms names a wake-up at which something does fire; and a
 * long jump of the clock fires everything in time order. Checked against
 * a brute-force list with many random timers.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/util_wheel.h"

#define EXPECT(c, ...) do { if (!(c)) cr_assert(c, "" __VA_ARGS__); } while (0)
#define EXPECT_EQ(a, b, ...) do { if (!((a) == (b))) cr_assert_eq(a, b, "" __VA_ARGS__); } while (0)

#define TICK 100

struct item {
	struct wheel_timer t;
	uint64_t when;          /* requested expiry, ms */
	uint64_t armed_at;      /* clock when armed, ms */
	uint64_t fired_at;      /* clock at the advance that fired it */
	unsigned fired;
	int rearm;              /* periodic: fire this many more times */
	uint64_t period;
};

static uint64_t now;
static uint64_t last_fired_tick;
static unsigned long total_fired;

static struct item *item_of(struct wheel_timer *t)
{
	return (struct item *)((char *)t - offsetof(struct item, t));
}

/* The latest a timer may fire: at its tick, or one slot width of the level
 * its delay needs later. */
static uint64_t latest(const struct item *it)
{
	uint64_t e = (it->when + TICK - 1) / TICK;
	uint64_t clk = it->armed_at / TICK;
	uint64_t delta = e > clk ? e - clk : 1;
	uint64_t width = 1;
	for (unsigned l = 0; l < WHEEL_LEVELS - 1 && delta > (uint64_t)(WHEEL_SLOTS - 1) * width; l++)
		width *= WHEEL_LEVEL_FACTOR;
	return (e > clk ? e : clk + 1) * TICK + (width - 1) * TICK;
}

static void on_fire(struct wheel_timer *t, void *arg)
{
	struct wheel *w = arg;
	struct item *it = item_of(t);
	EXPECT(!wheel_timer_armed(t), "a firing timer is disarmed first");
	it->fired++;
	it->fired_at = now;
	total_fired++;
	EXPECT(w->clk * TICK >= it->when, "fired at tick %llu before its time %llu",
	       (unsigned long long)w->clk, (unsigned long long)it->when);
	EXPECT(w->clk * TICK <= latest(it), "fired at tick %llu, later than %llu ms",
	       (unsigned long long)w->clk, (unsigned long long)latest(it));
	EXPECT(w->clk >= last_fired_tick, "timers fire in tick order");
	last_fired_tick = w->clk;
	if (it->rearm > 0) {
		it->rearm--;
		it->armed_at = w->clk * TICK;
		it->when = it->armed_at + it->period;
		wheel_arm(w, t, it->when);
	}
}

static void arm(struct wheel *w, struct item *it, uint64_t when)
{
	it->when = when;
	it->armed_at = w->clk * TICK;
	wheel_arm(w, &it->t, when);
}

static void setup(void)
{
	now = 1000000;
	last_fired_tick = 0;
	total_fired = 0;
}

TestSuite(wheel, .init = setup);

Test(wheel, empty)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	EXPECT_EQ(wheel_timeout_ms(&w, now), -1);
	EXPECT_EQ(wheel_advance(&w, now + 1000000, on_fire, &w), 0u);
	EXPECT_EQ(w.count, 0u);
}

Test(wheel, fires_at_its_tick_not_before)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	struct item it = { 0 };
	arm(&w, &it, now + 1050); /* the tick boundary at or after: +1100 */
	EXPECT(wheel_timer_armed(&it.t));
	EXPECT_EQ(wheel_timeout_ms(&w, now), 1100);
	EXPECT_EQ(wheel_advance(&w, now + 1099, on_fire, &w), 0u);
	EXPECT_EQ(it.fired, 0u);
	now += 1100;
	EXPECT_EQ(wheel_advance(&w, now, on_fire, &w), 1u);
	EXPECT_EQ(it.fired, 1u);
	EXPECT(!wheel_timer_armed(&it.t));
	EXPECT_EQ(wheel_timeout_ms(&w, now), -1);
}

Test(wheel, past_time_fires_at_the_next_tick)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	struct item it = { 0 };
	arm(&w, &it, now - 5000);
	EXPECT_EQ(wheel_timeout_ms(&w, now), TICK);
	now += TICK;
	EXPECT_EQ(wheel_advance(&w, now, on_fire, &w), 1u);
}

Test(wheel, cancel)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	struct item a = { 0 }, b = { 0 };
	arm(&w, &a, now + 500);
	arm(&w, &b, now + 500); /* same slot */
	wheel_cancel(&w, &a.t);
	wheel_cancel(&w, &a.t); /* twice is harmless */
	EXPECT(!wheel_timer_armed(&a.t));
	EXPECT_EQ(w.count, 1u);
	wheel_cancel(&w, &b.t);
	EXPECT_EQ(w.count, 0u);
	EXPECT_EQ(wheel_timeout_ms(&w, now), -1, "an emptied slot causes no wake-up");
	EXPECT_EQ(wheel_advance(&w, now + 10000, on_fire, &w), 0u);
	EXPECT_EQ(a.fired + b.fired, 0u);
}

Test(wheel, rearm_moves_the_timer)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	struct item it = { 0 };
	arm(&w, &it, now + 200);
	arm(&w, &it, now + 60000); /* moved, not added */
	EXPECT_EQ(w.count, 1u);
	EXPECT_EQ(wheel_advance(&w, now + 59900, on_fire, &w), 0u);
	EXPECT_EQ(wheel_advance(&w, now + 60000 + 60000 * 4 / 255 + TICK, on_fire, &w), 1u);
}

Test(wheel, periodic_rearm_from_the_callback)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	struct item it = { .rearm = 9, .period = 300 };
	arm(&w, &it, now + 300);
	for (int i = 0; i < 100; i++) {
		now += TICK;
		wheel_advance(&w, now, on_fire, &w);
	}
	EXPECT_EQ(it.fired, 10u);
	EXPECT_EQ(w.count, 0u);
}

Test(wheel, long_delays_within_their_bound)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	static const uint64_t delays[] = { 25400, 25500, 25600, 30000, 102000, 400000, 3600000, 86400000 };
	struct item it[8] = { 0 };
	for (int i = 0; i < 8; i++)
		arm(&w, &it[i], now + delays[i]);
	/* Wake up only when the wheel says so, as the event loop does. */
	int wakes = 0;
	while (w.count && wakes < 10000) {
		int64_t d = wheel_timeout_ms(&w, now);
		cr_assert_geq(d, 0);
		now += (uint64_t)d;
		EXPECT(wheel_advance(&w, now, on_fire, &w) > 0, "a wake-up at %lld ms fired nothing", (long long)d);
		wakes++;
	}
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(it[i].fired, 1u, "timer %d", i);
	EXPECT_EQ(wakes, 8, "one wake-up per timer, none in between");
}

Test(wheel, beyond_the_maximum_is_shortened)
{
	struct wheel w;
	wheel_init(&w, TICK, now);
	uint64_t max = wheel_max_delay_ms(&w);
	cr_assert_geq(max, 86400000ull, "a day fits (the longest configurable timeout)");
	struct item it = { 0 };
	wheel_arm(&w, &it.t, now + 10 * max);
	int64_t d = wheel_timeout_ms(&w, now);
	uint64_t top_width = (uint64_t)1 << (WHEEL_LEVEL_SHIFT * (WHEEL_LEVELS - 1));
	cr_assert_geq((uint64_t)d, max);
	cr_assert_leq((uint64_t)d, max + top_width * TICK);
	wheel_cancel(&w, &it.t);
}

/* Many random timers against a brute-force model: armed, re-armed and
 * cancelled at random, the clock moving in random steps (some long). */
Test(wheel, random_against_brute_force)
{
	enum { N = 3000 };
	struct wheel w;
	wheel_init(&w, TICK, now);
	struct item *it = calloc(N, sizeof *it);
	cr_assert_not_null(it);
	bool *armed = calloc(N, sizeof *armed);
	srand(12345);
	for (int round = 0; round < 4000; round++) {
		for (int k = 0; k < 5; k++) {
			int i = rand() % N;
			int op = rand() % 4;
			if (op == 0) {
				wheel_cancel(&w, &it[i].t);
				armed[i] = false;
			} else {
				uint64_t d = (uint64_t)(rand() % 4 == 0 ? rand() % 3000000 : rand() % 40000);
				it[i].fired = 0;
				arm(&w, &it[i], now + d);
				armed[i] = true;
			}
		}
		now += (uint64_t)(rand() % 10 == 0 ? rand() % 200000 : rand() % 250);
		wheel_advance(&w, now, on_fire, &w);
		size_t count = 0;
		for (int i = 0; i < N; i++) {
			if (armed[i] && it[i].fired) {
				armed[i] = false;
				EXPECT_EQ(it[i].fired, 1u);
			}
			/* Due (with its allowance) means fired. */
			if (armed[i])
				EXPECT(now < latest(&it[i]) + TICK, "timer %d (due %llu) did not fire by %llu", i,
				       (unsigned long long)it[i].when, (unsigned long long)now);
			count += armed[i];
		}
		EXPECT_EQ(w.count, count);
	}
	EXPECT(total_fired > 10000, "only %lu timers fired", total_fired);
	free(it);
	free(armed);
}
