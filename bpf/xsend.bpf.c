// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xsend's XDP program: redirects into the AF_XDP socket of the receiving queue only the
 * packets of xsend's own flows (protocol + 4-tuple, registered in `flows`), and passes
 * everything else to the kernel untouched. Counters in `stats`: [0] redirected, [1] passed.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* One of our flows, seen from inbound packets: local port = destination port, remote
 * address and port = source. IPv4 addresses use the first 4 bytes of `raddr`. */
struct flow_key {
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
	__be16 lport;
	__be16 rport;
	__u16 pad2;
	__u8 raddr[16];
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, __u32);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int count(__u32 idx, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);
	if (c)
		*c += 1;
	return verdict;
}

SEC("xdp.frags")
int xsend_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key k = {};
	__u16 proto;
	void *l3, *l4;

	if ((void *)(eth + 1) > end)
		return count(1, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *v = l3;
		if ((void *)(v + 1) > end)
			return count(1, XDP_PASS);
		proto = v->proto;
		l3 = v + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return count(1, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x1fff))
			return count(1, XDP_PASS);
		k.proto = ip->protocol;
		__builtin_memcpy(k.raddr, &ip->saddr, 4);
		l4 = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return count(1, XDP_PASS);
		k.proto = ip6->nexthdr;
		__builtin_memcpy(k.raddr, &ip6->saddr, 16);
		l4 = ip6 + 1;
	} else {
		return count(1, XDP_PASS);
	}
	if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP)
		return count(1, XDP_PASS);
	{
		__be16 *ports = l4;
		if ((void *)(ports + 2) > end)
			return count(1, XDP_PASS);
		k.rport = ports[0];
		k.lport = ports[1];
	}
	if (!bpf_map_lookup_elem(&flows, &k))
		return count(1, XDP_PASS);
	count(0, 0);
	/* A packet of our flow on a queue without our socket is dropped, not passed: the kernel
	 * would answer it with a RST. */
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
