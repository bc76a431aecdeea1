// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Deterministic loss injection for tests (never loaded by xsend itself).
 *
 * Built once per variant with -DEVERY=N:
 *   -DDATA: XDP program for the receiver's interface: drops every N-th TCP segment that
 *           carries data (SYN/FIN/RST-only segments pass), counting retransmissions too.
 *   -DACKS: tc (clsact egress) program for the receiver's interface: drops every N-th pure
 *           TCP ACK the receiver sends.
 * Counters (global `seen`, `dropped`) can be read with bpftool for debugging.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

__u64 seen = 0;
__u64 dropped = 0;

/* Returns the TCP payload length, or -1 if this is not TCP (or if the headers are cut). */
static __always_inline long tcp_payload(void *data, void *end, struct tcphdr **th)
{
	struct ethhdr *eth = data;
	long l3_len, hlen;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5)
			return -1;
		*th = (void *)ip + ip->ihl * 4;
		l3_len = bpf_ntohs(ip->tot_len) - ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		*th = (void *)(ip6 + 1);
		l3_len = bpf_ntohs(ip6->payload_len);
	} else {
		return -1;
	}
	if ((void *)(*th + 1) > end)
		return -1;
	hlen = (*th)->doff * 4;
	return l3_len - hlen;
}

static __always_inline int nth(void)
{
	__u64 n = __sync_fetch_and_add(&seen, 1);
	if (n % EVERY == EVERY - 1) {
		__sync_fetch_and_add(&dropped, 1);
		return 1;
	}
	return 0;
}

#ifdef DATA
SEC("xdp.frags")
int lossy_data(struct xdp_md *ctx)
{
	struct tcphdr *th;
	long len = tcp_payload((void *)(long)ctx->data, (void *)(long)ctx->data_end, &th);

	if (len <= 0)
		return XDP_PASS;
	return nth() ? XDP_DROP : XDP_PASS;
}
#endif

#ifdef ACKS
SEC("tc")
int lossy_acks(struct __sk_buff *skb)
{
	struct tcphdr *th;
	long len = tcp_payload((void *)(long)skb->data, (void *)(long)skb->data_end, &th);

	if (len != 0 || th->syn || th->fin || th->rst || !th->ack)
		return TC_ACT_OK;
	return nth() ? TC_ACT_SHOT : TC_ACT_OK;
}
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";
