// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xsend's replay on live frames (`xsend replay --backend live`): run by BPF_PROG_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES, each run takes the next captured frame from a ring that user
 * space fills (`recs`, memory-mapped by both), writes it over the page, sizes the frame to it
 * and redirects it to the target interface. No UMEM, no descriptor, no syscall per frame.
 *
 * The ring: user space (one producer) writes records at `tail` and publishes `tail`; this
 * program (one consumer: one runner) sends the record at `head` and moves `head`. A run that
 * finds the ring empty, or the head record not yet due, recycles its page unsent (XDP_DROP):
 * the runs are the clock's ticks, tens of nanoseconds apart.
 *
 * Timing: a record's `due` is 0 (as fast as possible) or 1 + its departure time in ns from
 * the first frame sent (`base`, taken by this program when it sends its first frame): the
 * schedule is open loop, fixed to the clock, so a late frame leaves at once and never shifts
 * the rest. How late each timed frame left is counted in a log-linear histogram (the
 * receiving port's buckets, `sansio::seqtrack`).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lat_bucket.h"

/* Frame bytes one record holds (a record is 2048 bytes: 16 of header). */
#define REC_DATA 2032

/* Set by user space before loading (frozen). */
struct replay_cfg {
	__u32 mask; /* records in the ring - 1 (a power of two) */
	__u32 pad;
};
const volatile struct replay_cfg cfg = {};

struct rec {
	__u32 len;
	__u32 pad;
	__u64 due;
	__u8 data[REC_DATA];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* set to the ring's size before loading */
	__type(key, __u32);
	__type(value, struct rec);
} recs SEC(".maps");

/* Shared control block (memory-mapped): the producer's line, then the consumer's. */
struct ctl {
	/* user space writes */
	__u64 tail;
	__u64 pad0[7];
	/* this program writes */
	__u64 head;     /* records sent (each one redirected) */
	__u64 bytes;    /* their bytes */
	__u64 starved;  /* runs that found the ring empty */
	__u64 idle;     /* runs that waited for the head record's time */
	__u64 refused;  /* records that could not be sized (skipped) */
	__u64 base;     /* CLOCK_MONOTONIC ns of the first frame sent (0: none yet) */
	__u64 last;     /* CLOCK_MONOTONIC ns of a recent frame: every 64th and every timed one */
	__u64 late_max; /* timed frames: the latest departure after its time (ns) */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctl);
} ctl SEC(".maps");

/* Lateness of the timed frames, [bucket] = frames (memory-mapped). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, LAT_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} late SEC(".maps");

/* The target, [0] = its ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

SEC("xdp")
int xsend_replay(struct xdp_md *ctx)
{
	__u32 zero = 0, idx, len, b;
	struct ctl *c;
	struct rec *r;
	__u64 head, now = 0, *n;
	long cur;

	c = bpf_map_lookup_elem(&ctl, &zero);
	if (!c)
		return XDP_DROP;
	head = c->head;
	if (head == *(volatile __u64 *)&c->tail) {
		c->starved++;
		return XDP_DROP;
	}
	idx = (__u32)head & cfg.mask;
	r = bpf_map_lookup_elem(&recs, &idx);
	if (!r)
		return XDP_DROP;
	if (r->due || !(head & 63)) {
		now = bpf_ktime_get_ns();
		if (!c->base)
			c->base = now;
	}
	if (r->due) {
		__u64 due = c->base + r->due - 1;

		if (now < due) {
			c->idle++;
			return XDP_DROP;
		}
		now -= due;
		if (now > c->late_max)
			c->late_max = now;
		b = lat_bucket(now > 0xffffffffull ? 0xffffffffu : (__u32)now);
		n = bpf_map_lookup_elem(&late, &b);
		if (n)
			*n += 1;
		now += due;
	}
	len = r->len;
	cur = (long)ctx->data_end - (long)ctx->data;
	if (len < 14 || len > REC_DATA ||
	    (cur != (long)len && bpf_xdp_adjust_tail(ctx, (int)len - (int)cur)) ||
	    bpf_xdp_store_bytes(ctx, 0, r->data, len)) {
		c->refused++;
		c->head = head + 1;
		return XDP_DROP;
	}
	if (now)
		c->last = now;
	c->bytes += len;
	c->head = head + 1;
	return bpf_redirect_map(&target, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
