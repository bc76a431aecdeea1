// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The lab's counting sink (`Lab::sink`), on the receiving side of a veth pair: counts the
 * UDP and TCP frames (IPv4/IPv6, one optional VLAN tag) that arrive, and drops them
 * (`xsend_sink_drop`: the fastest receiver there is) or passes them on to the kernel
 * (`xsend_sink_pass`: captures and sockets still see them). Everything else (ARP, ND) always
 * passes, so neighbour resolution keeps working. A veth whose peer has an XDP program takes
 * redirected frames (live frames).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps"); /* [0] frames, [1] bytes */

static __always_inline int ours(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;
	void *l3;
	__u8 l4;

	if ((void *)(eth + 1) > end)
		return 0;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		__be16 *v = l3;
		if ((void *)(v + 2) > end)
			return 0;
		proto = v[1];
		l3 = v + 2;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return 0;
		l4 = ip->protocol;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return 0;
		l4 = ip6->nexthdr;
	} else {
		return 0;
	}
	return l4 == IPPROTO_UDP || l4 == IPPROTO_TCP;
}

static __always_inline int count(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *c;

	if (!ours(ctx))
		return 0;
	c = bpf_map_lookup_elem(&counts, &k);
	if (c)
		*c += 1;
	k = 1;
	c = bpf_map_lookup_elem(&counts, &k);
	if (c)
		*c += bpf_xdp_get_buff_len(ctx);
	return 1;
}

SEC("xdp.frags")
int xsend_sink_drop(struct xdp_md *ctx)
{
	return count(ctx) ? XDP_DROP : XDP_PASS;
}

SEC("xdp.frags")
int xsend_sink_pass(struct xdp_md *ctx)
{
	count(ctx);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
