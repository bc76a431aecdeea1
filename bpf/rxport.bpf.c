// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xsend's receiving port (`xsend ndr --rx-iface`, `xsend bench --rx-iface`): an XDP program on
 * the tester interface where a device under test's output arrives. It counts the frames of
 * xsend's own streams — UDP or TCP (IPv4/IPv6, one optional VLAN tag) whose payload starts with
 * a probe header (`sansio::wire::probe`: stream id, sequence number, send time, magic) — per
 * stream: received, lost (sequence gaps), duplicated, reordered; and measures one-way latency
 * (this CPU's CLOCK_MONOTONIC minus the send time) into a log-linear histogram. Those frames
 * are dropped (`cfg.drop`) or passed on; every other frame passes untouched (ARP, ND, ...).
 *
 * The sequence logic is `sansio::seqtrack` in Rust (the model it is tested against): a
 * 64-frame window behind the highest sequence number tells a duplicate from a late frame.
 * A stream's state is updated without atomics: one stream must arrive on one CPU (one RX
 * queue, as RSS hashes a flow), which holds for a veth and for a NIC hashing flows.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lat_bucket.h"

#define PROBE_MAGIC 0x78534731u /* "xSG1" */
#define PROBE_SEQ_MASK ((1ull << 40) - 1)
#define WINDOW 64

/* Latency histogram: values below 32 ns exact, then 16 buckets per power of two (6.25 %
 * wide) up to 2^32 ns. */

/* Set by user space before loading. */
struct rx_cfg {
	__u32 nstreams; /* entries of `streams` */
	__u32 drop;     /* drop counted frames (else pass them on) */
};
const volatile struct rx_cfg cfg = {};

/* One stream (`sansio::seqtrack::Stream`). */
struct rx_stream {
	__u64 received;  /* distinct frames */
	__u64 next;      /* highest sequence number seen + 1 */
	__u64 lost;      /* sequence numbers skipped and not (yet) seen late */
	__u64 gaps;      /* times the sequence skipped ahead */
	__u64 dup;       /* frames seen twice (within the window) */
	__u64 reorder;   /* frames that came after a higher sequence number */
	__u64 window;    /* bit d: sequence number next - 1 - d was seen */
	__u64 bytes;     /* frame bytes of the distinct frames */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set to cfg.nstreams before loading */
	__type(key, __u32);
	__type(value, struct rx_stream);
} streams SEC(".maps");

struct rx_totals {
	__u64 frames;   /* stream frames counted (all of them, duplicates too) */
	__u64 unknown;  /* probe frames of a stream id past cfg.nstreams */
	__u64 other;    /* frames that are not xsend's, passed on */
	__u64 lat_sum;  /* ns, over the latency samples */
	__u64 lat_max;
	__u64 lat_n;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_totals);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LAT_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} latency SEC(".maps");

static __always_inline void track(struct rx_stream *s, __u64 seq, __u64 len)
{
	__u64 next = s->next, d, bit;

	if (seq >= next) {
		__u64 gap = seq - next;
		if (gap) {
			s->lost += gap;
			s->gaps++;
		}
		s->window = gap >= WINDOW - 1 ? 1 : (s->window << (gap + 1)) | 1;
		s->next = seq + 1;
		s->received++;
		s->bytes += len;
		return;
	}
	d = next - 1 - seq;
	if (d < WINDOW) {
		bit = 1ull << d;
		if (s->window & bit) {
			s->dup++;
			return;
		}
		s->window |= bit;
	}
	/* Late: counted lost when the sequence skipped it, now received. Older than the window,
	 * a duplicate cannot be told from a late frame: it counts as late. */
	s->reorder++;
	if (s->lost)
		s->lost--;
	s->received++;
	s->bytes += len;
}

/* The offset of a UDP/TCP payload in the frame, or -1. */
static __always_inline int payload_off(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l3, l4;
	__u16 proto;
	__u8 l4p;

	if ((void *)(eth + 1) > end)
		return -1;
	proto = eth->h_proto;
	l3 = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021Q)) {
		__be16 *v = data + l3;
		if ((void *)(v + 2) > end)
			return -1;
		proto = v[1];
		l3 += 4;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		/* A fragment other than the first carries no L4 header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return -1;
		l4p = ip->protocol;
		l4 = l3 + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		l4p = ip6->nexthdr;
		l4 = l3 + sizeof(*ip6);
	} else {
		return -1;
	}
	if (l4p == IPPROTO_UDP)
		return l4 + sizeof(struct udphdr);
	if (l4p == IPPROTO_TCP) {
		struct tcphdr *t = data + (l4 & 0xff);
		if ((void *)(t + 1) > end || t->doff < 5)
			return -1;
		return l4 + t->doff * 4;
	}
	return -1;
}

SEC("xdp.frags")
int xsend_rxport(struct xdp_md *ctx)
{
	__u32 zero = 0, id, b;
	__u8 h[16];
	struct rx_totals *t;
	struct rx_stream *s;
	__u64 word, seq, len, *c;
	__u32 sent, lat;
	int off;

	t = bpf_map_lookup_elem(&totals, &zero);
	if (!t)
		return XDP_PASS;
	off = payload_off(ctx);
	if (off < 0 || off > 0xffff ||
	    bpf_xdp_load_bytes(ctx, off, h, sizeof(h)) ||
	    ((__u32)h[12] << 24 | (__u32)h[13] << 16 | (__u32)h[14] << 8 | h[15]) != PROBE_MAGIC) {
		t->other++;
		return XDP_PASS;
	}
	lat = (__u32)bpf_ktime_get_ns();
	t->frames++;
	word = 0;
#pragma unroll
	for (b = 0; b < 8; b++)
		word = (word << 8) | h[b];
	sent = (__u32)h[8] << 24 | (__u32)h[9] << 16 | (__u32)h[10] << 8 | h[11];
	id = word >> 40;
	seq = word & PROBE_SEQ_MASK;
	len = bpf_xdp_get_buff_len(ctx);
	s = id < cfg.nstreams ? bpf_map_lookup_elem(&streams, &id) : 0;
	if (!s) {
		t->unknown++;
	} else {
		track(s, seq, len);
	}
	/* One-way latency modulo 2^32 ns; a clock read before the send time (another host's
	 * clock, a hostile frame) lands in the top buckets, visibly absurd. */
	lat -= sent;
	t->lat_sum += lat;
	t->lat_n++;
	if (lat > t->lat_max)
		t->lat_max = lat;
	b = lat_bucket(lat);
	c = bpf_map_lookup_elem(&latency, &b);
	if (c)
		*c += 1;
	return cfg.drop ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
