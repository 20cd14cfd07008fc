/* util_wheel — see util_wheel.h. */
#include "util/util_wheel.h"

#include <string.h>

#define MASK (WHEEL_SLOTS - 1)
#define WORDS (WHEEL_SLOTS / 64)

static unsigned shift_of(unsigned level)
{
	return level * WHEEL_LEVEL_SHIFT;
}

/* The longest delay (in ticks) level `level` can hold: one slot fewer
 * than a full turn, so that rounding up to a slot boundary never lands
 * on the slot being processed now. */
static uint64_t level_span(unsigned level)
{
	return (uint64_t)(WHEEL_SLOTS - 1) << shift_of(level);
}

void wheel_init(struct wheel *w, uint64_t tick_ms, uint64_t now_ms)
{
	memset(w, 0, sizeof *w);
	w->tick_ms = tick_ms ? tick_ms : 1;
	w->clk = now_ms / w->tick_ms;
}

uint64_t wheel_max_delay_ms(const struct wheel *w)
{
	return level_span(WHEEL_LEVELS - 1) * w->tick_ms;
}

static void mark(struct wheel *w, unsigned level, unsigned idx, bool on)
{
	uint64_t bit = 1ull << (idx % 64);
	if (on)
		w->pending[level][idx / 64] |= bit;
	else
		w->pending[level][idx / 64] &= ~bit;
}

void wheel_cancel(struct wheel *w, struct wheel_timer *t)
{
	if (!t->pprev)
		return;
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	/* The first timer of a slot points back at the slot itself: if the
	 * slot is now empty, its pending bit goes (so no wake-up for it). */
	uintptr_t p = (uintptr_t)t->pprev, base = (uintptr_t)&w->slots[0][0];
	if (p >= base && p < base + sizeof w->slots && !*t->pprev) {
		size_t i = (p - base) / sizeof w->slots[0][0];
		mark(w, (unsigned)(i / WHEEL_SLOTS), (unsigned)(i % WHEEL_SLOTS), false);
	}
	t->next = NULL;
	t->pprev = NULL;
	w->count--;
}

void wheel_arm(struct wheel *w, struct wheel_timer *t, uint64_t when_ms)
{
	wheel_cancel(w, t);
	/* The first tick boundary at or after when_ms; never the current one,
	 * which has been processed already. */
	uint64_t e = when_ms / w->tick_ms + (when_ms % w->tick_ms != 0);
	if (e <= w->clk)
		e = w->clk + 1;
	uint64_t delta = e - w->clk;
	unsigned level = 0;
	while (level < WHEEL_LEVELS - 1 && delta > level_span(level))
		level++;
	if (delta > level_span(level))
		e = w->clk + level_span(level);
	/* Processed at tick pos << shift: the expiry rounded up to a slot
	 * boundary of this level, less than one turn of it ahead. */
	unsigned s = shift_of(level);
	uint64_t pos = (e + ((1ull << s) - 1)) >> s;
	unsigned idx = (unsigned)(pos & MASK);
	struct wheel_timer **head = &w->slots[level][idx];
	t->next = *head;
	if (t->next)
		t->next->pprev = &t->next;
	t->pprev = head;
	*head = t;
	mark(w, level, idx, true);
	w->count++;
}

/* Distance from `start` to the first set bit at or after it, going round
 * the slots; -1 if none is set. */
static int next_set(const uint64_t bits[WORDS], unsigned start)
{
	for (unsigned i = 0; i <= WORDS; i++) {
		unsigned word = (start / 64 + i) % WORDS;
		uint64_t b = bits[word];
		if (i == 0)
			b &= ~0ull << (start % 64);
		else if (i == WORDS)
			b &= start % 64 ? ~(~0ull << (start % 64)) : 0;
		if (b) {
			unsigned idx = word * 64 + (unsigned)__builtin_ctzll(b);
			return (int)((idx - start) & MASK);
		}
	}
	return -1;
}

/* The first tick after clk at which a non-empty slot is processed, or
 * UINT64_MAX when every slot is empty. */
static uint64_t next_tick(const struct wheel *w)
{
	uint64_t best = UINT64_MAX;
	for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
		unsigned s = shift_of(l);
		uint64_t pos = (w->clk >> s) + 1; /* positions up to clk >> s are done */
		int d = next_set(w->pending[l], (unsigned)(pos & MASK));
		if (d < 0)
			continue;
		uint64_t tick = (pos + (uint64_t)d) << s;
		if (tick < best)
			best = tick;
	}
	return best;
}

size_t wheel_advance(struct wheel *w, uint64_t now_ms, wheel_fire_fn fire, void *arg)
{
	uint64_t n = now_ms / w->tick_ms;
	size_t fired = 0;
	while (w->clk < n) {
		uint64_t t = w->count ? next_tick(w) : UINT64_MAX;
		if (t > n) {
			w->clk = n; /* nothing due in between: skip the empty ticks */
			break;
		}
		w->clk = t;
		/* Level l is processed at ticks that are multiples of its slot
		 * width; coarser levels only where finer ones are too. */
		for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
			unsigned s = shift_of(l);
			if (t & ((1ull << s) - 1))
				break;
			struct wheel_timer **head = &w->slots[l][(t >> s) & MASK];
			/* Timers armed by fire() never land in this slot (they
			 * are due after t and less than a turn ahead), so this
			 * ends. */
			while (*head) {
				struct wheel_timer *x = *head;
				wheel_cancel(w, x);
				fire(x, arg);
				fired++;
			}
		}
	}
	return fired;
}

int64_t wheel_timeout_ms(const struct wheel *w, uint64_t now_ms)
{
	if (!w->count)
		return -1;
	uint64_t t = next_tick(w);
	if (t == UINT64_MAX)
		return -1;
	uint64_t due = t * w->tick_ms;
	return due > now_ms ? (int64_t)(due - now_ms) : 0;
}
