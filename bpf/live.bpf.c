// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xsend's in-kernel generator (`xsend bench --backend live`): run by BPF_PROG_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES over a page_pool of frames made from one template, it stamps each
 * frame as the AF_XDP generator writes it and redirects it to the target interface.
 *
 * Per packet: the frame length from the size cycle (exact IMIX mix), the flow from the flow
 * table (round robin), the probe header (the first min(payload, 16) bytes of the payload: the
 * flow's stream id and sequence number, the send time, the magic; `sansio::wire::probe`), the
 * IPv4 identification (per flow), the TCP sequence
 * number (per flow, advancing by the payload) and every length and checksum. Checksums come
 * from per-flow partial sums computed in user space (RFC 1071 arithmetic: only the fields that
 * change are added), never from the bytes in the page: a recycled page holds either the
 * template or an earlier frame of this program, and neither is trusted.
 *
 * Every frame starts from the template's headers (copied from the `headers` map: a page may
 * come back changed by its receiver); with one flow the template's addresses and ports stand,
 * with one size its lengths, and those variants do not write them again.
 *
 * The page's bytes past the headers and the 16-byte probe header are zero in the template and never
 * written, so they add nothing to a checksum.
 *
 * `xsend_live_ref` is the reference loop of the benchmark: the constant template, redirected,
 * nothing stamped (the kernel's own ceiling), only counted.
 *
 * Pacing happens here too: BPF_PROG_RUN calls are long (each one costs two RCU grace periods
 * in the kernel's XDP dispatcher), so the program holds the open-loop schedule itself.
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

/* Set by user space before loading (frozen): the lengths of the cycles. The header layout is
 * compiled into each variant. */
struct live_cfg {
	__u32 nsizes;   /* entries of `sizes` (one cycle of the mix) */
	__u32 nflows;   /* entries of `flows` */
};
const volatile struct live_cfg cfg = {};

/* One flow: addresses and ports written into every frame, its own IP ID and TCP sequence. */
struct live_flow {
	__u8 saddr[16];  /* IPv4: first 4 bytes */
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 ident;     /* next IPv4 identification (low 16 bits) */
	__u32 tcp_seq;   /* next TCP sequence number */
	__u32 stream;    /* probe stream id (24 bits) */
	__u64 ip_sum;    /* IPv4 header sum without length, ID and checksum */
	__u64 l4_sum;    /* UDP: pseudo-header (addresses, protocol) + ports;
	                    TCP: pseudo-header + the TCP header with sequence and checksum 0 */
	__u64 pkts;      /* the flow's frames so far: the probe's sequence number */
};

#define PROBE_MAGIC 0x78534731u /* "xSG1" */
#define PROBE_SEQ_MASK ((1ull << 40) - 1)

/* The runner's state: user space sets `limit` and the schedule before a run and reads the
 * counters during and after it. */
struct live_state {
	__u64 sent;      /* frames stamped and returned as XDP_REDIRECT (the sequence number) */
	__u64 limit;     /* stop stamping (XDP_DROP) once `sent` reaches it */
	__u64 refused;   /* frames not sent: over the limit, or a frame that could not be sized */
	__u32 size_idx;
	__u32 flow_idx;
	__u64 next_due;  /* paced: when the next slot is due (CLOCK_MONOTONIC ns; 0: now) */
	__u64 slot_ps;   /* paced: picoseconds between slots (0: not paced) */
	__u64 frac_ps;   /* paced: the schedule's sub-nanosecond remainder */
	__u32 burst;     /* paced: frames released together per slot */
	__u32 in_slot;   /* paced: frames of the current slot released so far */
	__u64 idle;      /* paced: frames recycled unsent while waiting for a slot */
	__u64 resume;    /* paced: set by user space before each call after the first */
};

/* Open-loop schedule: a slot of `burst` frames is due every slot_ps; frames before it are
 * recycled (XDP_DROP) unsent. A late runner releases the overdue slots back to back: the
 * schedule is fixed to the clock, never to the previous send. */
static __always_inline int wait_slot(struct live_state *st)
{
	__u64 now;

	if (!st->slot_ps || st->in_slot)
		return 0;
	now = bpf_ktime_get_ns();
	if (!st->next_due)
		st->next_due = now;
	if (st->resume) {
		/* The first run of a new call: the ~20 ms between two calls are not the
		 * runner's lateness, and releasing them back to back would be a burst no
		 * constant-rate trial should make. The schedule moves on by them instead. */
		st->resume = 0;
		if (now > st->next_due)
			st->next_due = now;
	}
	if (now < st->next_due) {
		st->idle++;
		return 1;
	}
	return 0;
}

static __always_inline void slot_used(struct live_state *st)
{
	if (!st->slot_ps)
		return;
	st->in_slot++;
	if (st->in_slot >= st->burst) {
		st->in_slot = 0;
		st->frac_ps += st->slot_ps;
		st->next_due += st->frac_ps / 1000;
		st->frac_ps %= 1000;
	}
}

/* The only variable of .bss (user space reads and writes it as that map's one value): a
 * global is addressed directly, without a map lookup per frame. */
struct live_state state;

/* The template's headers ([0]; 128 bytes, the first L3 + IP + L4 header bytes used): written
 * over every frame first, because a page may come back changed by whoever received it (a
 * forwarding receiver rewrites MACs and TTL in place before the page is recycled). */
struct hdr {
	__u8 b[128];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hdr);
} headers SEC(".maps");

/* The target, [0] = its ifindex: redirects through a devmap are bulk-queued per device
 * without an ifindex lookup per frame. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set to cfg.nsizes before loading */
	__type(key, __u32);
	__type(value, __u32);
} sizes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set to cfg.nflows before loading */
	__type(key, __u32);
	__type(value, struct live_flow);
} flows SEC(".maps");

/* Fold a partial sum below 2^32 (the sums here stay under 2^22: a few 16-bit words added to
 * partial sums that user space folded to 16 bits plus carries). */
static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Byte `i` of the probe header whose first 8 bytes are `id` and next 4 `now`. */
static __always_inline __u8 probe_byte(__u64 id, __u32 now, int i)
{
	if (i < 8)
		return (id >> (56 - 8 * i)) & 0xff;
	if (i < 12)
		return (now >> (24 - 8 * (i - 8))) & 0xff;
	return (PROBE_MAGIC >> (24 - 8 * (i - 12))) & 0xff;
}

/* Big-endian 16-bit words of the probe header's first `n` (< 16) bytes. */
static __always_inline __u64 prefix_sum(__u64 id, __u32 now, __u32 n)
{
	__u64 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < 16; i++) {
		__u64 b = probe_byte(id, now, i);
		if ((__u32)i < n)
			s += (i & 1) ? b : b << 8;
	}
	return s;
}

/* The generator, specialised at compile time for one header layout (IPv4/IPv6, UDP/TCP, an
 * optional VLAN tag: the IP header at L3), and for one or several sizes and flows: offsets
 * are constants and unused work is not compiled in. User space loads only the variant its
 * run needs (`xsend_l<4|6><u|t><e|v><1|m><1|m>`: 12 characters, under the kernel's 15). */
static __always_inline int live(struct xdp_md *ctx, const int V6, const int TCP, const int L3,
				const int MSIZE, const int MFLOW)
{
	__u32 zero = 0, si, fi, size, l4, iph, l4len, payload, n, i;
	struct live_state *st;
	struct hdr *h;
	struct live_flow *f;
	__u32 *szp;
	__u64 seq, psum, id;
	__u32 now;
	void *data, *end;
	__u8 *p;
	long cur;

	st = &state;
	if (st->sent >= st->limit) {
		st->refused++;
		return XDP_DROP;
	}
	if (wait_slot(st))
		return XDP_DROP;
	h = bpf_map_lookup_elem(&headers, &zero);
	fi = MFLOW ? st->flow_idx : 0;
	f = bpf_map_lookup_elem(&flows, &fi);
	if (!f) {
		st->refused++;
		return XDP_DROP;
	}
	cur = (long)ctx->data_end - (long)ctx->data;
	if (MSIZE) {
		si = st->size_idx;
		szp = bpf_map_lookup_elem(&sizes, &si);
		if (!szp) {
			st->refused++;
			return XDP_DROP;
		}
		size = *szp;
		/* A recycled page may hold an earlier frame's length: size it from what it has. */
		if (cur != (long)size && bpf_xdp_adjust_tail(ctx, (int)size - (int)cur)) {
			st->refused++;
			return XDP_DROP;
		}
		si++;
		st->size_idx = si >= cfg.nsizes ? 0 : si;
	} else {
		/* One size: the template's, never changed. */
		size = cur;
	}
	if (MFLOW) {
		fi++;
		st->flow_idx = fi >= cfg.nflows ? 0 : fi;
	}
	seq = st->sent;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	iph = V6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	l4 = L3 + iph;
	if (data + l4 + (TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr)) > end || !h) {
		st->refused++;
		return XDP_DROP;
	}
	/* The headers as the template has them, whatever the page holds. */
	__builtin_memcpy(data, h->b, L3 + (V6 ? 40 : 20) + (TCP ? 20 : 8));
	l4len = size - L3 - iph;
	payload = l4len - (TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr));
	st->sent = seq + 1;
	slot_used(st);

	/* The probe header: min(payload, 16) bytes of the flow's stream id and sequence
	 * number, the send time and the magic, big endian. */
	p = data + l4 + (TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr));
	n = payload < 16 ? payload : 16;
	id = ((__u64)(f->stream & 0xffffff) << 40) | (f->pkts & PROBE_SEQ_MASK);
	f->pkts++;
	now = (__u32)bpf_ktime_get_ns();
	if (n == 16 && (void *)(p + 16) <= end) {
		*(__u64 *)p = bpf_cpu_to_be64(id);
		*(__u32 *)(p + 8) = bpf_htonl(now);
		*(__u32 *)(p + 12) = bpf_htonl(PROBE_MAGIC);
		psum = (id >> 48) + ((id >> 32) & 0xffff) + ((id >> 16) & 0xffff) + (id & 0xffff) +
		       (now >> 16) + (now & 0xffff) + (PROBE_MAGIC >> 16) + (PROBE_MAGIC & 0xffff);
	} else {
#pragma unroll
		for (i = 0; i < 15; i++) {
			if (i < n && (void *)(p + i + 1) <= end)
				p[i] = probe_byte(id, now, i);
		}
		psum = prefix_sum(id, now, n);
	}

	if (V6) {
		struct ipv6hdr *ip6 = data + L3;
		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
		if (MSIZE)
			ip6->payload_len = bpf_htons(l4len);
		if (MFLOW) {
			__builtin_memcpy(&ip6->saddr, f->saddr, 16);
			__builtin_memcpy(&ip6->daddr, f->daddr, 16);
		}
	} else {
		struct iphdr *ip = data + L3;
		__u32 tot = l4len + sizeof(struct iphdr), id = f->ident & 0xffff;
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		f->ident = id + 1;
		if (MSIZE)
			ip->tot_len = bpf_htons(tot);
		ip->id = bpf_htons(id);
		if (MFLOW) {
			__builtin_memcpy(&ip->saddr, f->saddr, 4);
			__builtin_memcpy(&ip->daddr, f->daddr, 4);
		}
		ip->check = bpf_htons(~fold(f->ip_sum + tot + id) & 0xffff);
	}

	if (TCP) {
		struct tcphdr *t = data + l4;
		__u32 tseq = f->tcp_seq;
		if ((void *)(t + 1) > end)
			return XDP_DROP;
		f->tcp_seq = tseq + payload;
		if (MFLOW) {
			t->source = f->sport;
			t->dest = f->dport;
		}
		t->seq = bpf_htonl(tseq);
		t->check = bpf_htons(~fold(f->l4_sum + l4len + (tseq >> 16) + (tseq & 0xffff) + psum) & 0xffff);
	} else {
		struct udphdr *u = data + l4;
		__u16 c;
		if ((void *)(u + 1) > end)
			return XDP_DROP;
		if (MFLOW) {
			u->source = f->sport;
			u->dest = f->dport;
		}
		if (MSIZE)
			u->len = bpf_htons(l4len);
		c = ~fold(f->l4_sum + 2 * (__u64)l4len + psum) & 0xffff;
		u->check = bpf_htons(c ? c : 0xffff);
	}
	return bpf_redirect_map(&target, 0, 0);
}

#define LIVE(name, v6, tcp, l3, msize, mflow)                                   \
	SEC("xdp") int name(struct xdp_md *ctx)                                 \
	{                                                                       \
		return live(ctx, v6, tcp, l3, msize, mflow);                    \
	}

LIVE(xsend_l4ue11, 0, 0, 14, 0, 0)
LIVE(xsend_l4ue1m, 0, 0, 14, 0, 1)
LIVE(xsend_l4uem1, 0, 0, 14, 1, 0)
LIVE(xsend_l4uemm, 0, 0, 14, 1, 1)
LIVE(xsend_l4uv11, 0, 0, 18, 0, 0)
LIVE(xsend_l4uv1m, 0, 0, 18, 0, 1)
LIVE(xsend_l4uvm1, 0, 0, 18, 1, 0)
LIVE(xsend_l4uvmm, 0, 0, 18, 1, 1)
LIVE(xsend_l4te11, 0, 1, 14, 0, 0)
LIVE(xsend_l4te1m, 0, 1, 14, 0, 1)
LIVE(xsend_l4tem1, 0, 1, 14, 1, 0)
LIVE(xsend_l4temm, 0, 1, 14, 1, 1)
LIVE(xsend_l4tv11, 0, 1, 18, 0, 0)
LIVE(xsend_l4tv1m, 0, 1, 18, 0, 1)
LIVE(xsend_l4tvm1, 0, 1, 18, 1, 0)
LIVE(xsend_l4tvmm, 0, 1, 18, 1, 1)
LIVE(xsend_l6ue11, 1, 0, 14, 0, 0)
LIVE(xsend_l6ue1m, 1, 0, 14, 0, 1)
LIVE(xsend_l6uem1, 1, 0, 14, 1, 0)
LIVE(xsend_l6uemm, 1, 0, 14, 1, 1)
LIVE(xsend_l6uv11, 1, 0, 18, 0, 0)
LIVE(xsend_l6uv1m, 1, 0, 18, 0, 1)
LIVE(xsend_l6uvm1, 1, 0, 18, 1, 0)
LIVE(xsend_l6uvmm, 1, 0, 18, 1, 1)
LIVE(xsend_l6te11, 1, 1, 14, 0, 0)
LIVE(xsend_l6te1m, 1, 1, 14, 0, 1)
LIVE(xsend_l6tem1, 1, 1, 14, 1, 0)
LIVE(xsend_l6temm, 1, 1, 14, 1, 1)
LIVE(xsend_l6tv11, 1, 1, 18, 0, 0)
LIVE(xsend_l6tv1m, 1, 1, 18, 0, 1)
LIVE(xsend_l6tvm1, 1, 1, 18, 1, 0)
LIVE(xsend_l6tvmm, 1, 1, 18, 1, 1)

SEC("xdp")
int xsend_live_ref(struct xdp_md *ctx)
{
	struct live_state *st = &state;

	/* Counted and limited like the generator, so that both are measured alike. */
	if (st->sent >= st->limit)
		return XDP_DROP;
	if (wait_slot(st))
		return XDP_DROP;
	st->sent++;
	slot_used(st);
	return bpf_redirect_map(&target, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
