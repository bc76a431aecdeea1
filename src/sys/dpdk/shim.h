/* The C side of xsend's DPDK bindings: wrappers for DPDK's `static inline` fast-path
 * functions (which have no symbol to link against) and for the configuration structs that
 * are awkward across FFI (nested unions, bitfields). bindgen reads this header with an
 * allowlist (`xs_.*` plus a few exported rte_ functions); build: bpf/build_dpdk.rs. */
#ifndef XSEND_DPDK_SHIM_H
#define XSEND_DPDK_SHIM_H

#include <stdint.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* What a port offers, read from rte_eth_dev_info and friends. */
struct xs_port_info {
    char driver[64];
    char name[64];
    uint16_t max_tx_queues;
    uint16_t max_rx_queues;
    uint16_t tx_desc_max;
    uint16_t tx_desc_min;
    uint16_t rx_desc_max;
    uint16_t rx_desc_min;
    uint64_t tx_offload_capa;
    uint32_t max_rx_pktlen;
    uint16_t min_mtu;
    uint16_t max_mtu;
    uint16_t mtu;
    uint8_t mac[6];
    int socket_id;
    uint32_t if_index;
};

/* Fill `out` for `port`; 0 or a negative errno. */
int xs_port_info(uint16_t port, struct xs_port_info *out);

/* Configure `port` with `nq` RX and TX queues of `nb_desc` descriptors (adjusted to the
 * PMD's limits; the values used come back in *tx_desc / *rx_desc), the TX offloads
 * `tx_offloads`, RX queue q's buffers from `mps[q]` (`nq` pools, which may repeat), then
 * start it. 0 or a negative errno. */
int xs_port_setup(uint16_t port, uint16_t nq, uint16_t *tx_desc, uint16_t *rx_desc,
                  uint64_t tx_offloads, struct rte_mempool *const *mps);

/* A pktmbuf pool of `n` mbufs whose mempool objects are exactly `obj_size` bytes (2048 or
 * 4096), checked after populating to lie as one array of equal objects (the first at the
 * first chunk's start, one stride apart): what net_af_xdp takes as its UMEM (it maps the
 * first chunk for `populated × object size` bytes, so a pool populated with page padding
 * between objects, as `--no-huge` memory is for 2368-byte objects, leaves mbufs outside the
 * UMEM whose frames the kernel drops). A page holds a whole number of such objects, so none
 * crosses a page. The data room left after the headroom comes back in *data_room. NULL with
 * rte_errno set (EINVAL: the layout is not one array). */
struct rte_mempool *xs_pool_create_packed(const char *name, unsigned n, unsigned cache,
                                          unsigned obj_size, const char *ops,
                                          uint16_t *data_room);

/* Stop and close `port` (errors ignored: this is the way out). */
void xs_port_close(uint16_t port);

/* Link status: 1 up, 0 down, negative errno. */
int xs_port_link_up(uint16_t port);

/* Frames the port counted as sent, and as TX errors. 0 or a negative errno. */
int xs_port_stats(uint16_t port, uint64_t *opackets, uint64_t *oerrors, uint64_t *ipackets);

/* rte_errno of the calling thread. */
int xs_errno(void);

uint16_t xs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t xs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
/* 0 on success (all `n` allocated), negative when the pool has fewer. */
int xs_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n);
void xs_free(struct rte_mbuf *m);
/* `n` mbufs straight from the pool, not reset (the caller sets every field a TX needs:
 * xs_mbuf_set_tx's); 0 or negative. */
int xs_get_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n);

/* The first data byte of an mbuf, and the room from there to the end of its buffer. */
void *xs_mbuf_data(struct rte_mbuf *m);
uint16_t xs_mbuf_room(const struct rte_mbuf *m);
/* A single-segment frame of `len` bytes with TX offload flags and header lengths. */
void xs_mbuf_set_tx(struct rte_mbuf *m, uint16_t len, uint64_t ol_flags, uint16_t l2_len,
                    uint16_t l3_len);
/* Readers for a received (or prepared) mbuf. */
uint16_t xs_mbuf_data_len(const struct rte_mbuf *m);
uint32_t xs_mbuf_pkt_len(const struct rte_mbuf *m);
uint16_t xs_mbuf_nb_segs(const struct rte_mbuf *m);
struct rte_mbuf *xs_mbuf_next(const struct rte_mbuf *m);
uint64_t xs_mbuf_ol_flags(const struct rte_mbuf *m);
uint16_t xs_mbuf_l2_len(const struct rte_mbuf *m);
uint16_t xs_mbuf_l3_len(const struct rte_mbuf *m);

/* External buffers (file pages sent without a copy). One shared info per queue: refcnt 1
 * held by its owner plus one per attached mbuf, and a free callback that does nothing (the
 * pages are the file mapping's). NULL when out of memory. */
struct rte_mbuf_ext_shared_info *xs_ext_shinfo_new(void);
/* Free `s` if no mbuf is attached to it any more: 0, else -EBUSY (left allocated). */
int xs_ext_shinfo_free(struct rte_mbuf_ext_shared_info *s);
/* 1 if IO addresses are virtual addresses (the EAL's IOVA-as-VA mode). */
int xs_iova_is_va(void);
/* Make `head`, whose first `head_len` bytes are a frame's headers, a two-segment frame of
 * `head_len + len` bytes: `seg` (an mbuf of a pool without data room) is attached to the
 * `len` bytes at `addr` (IO address `iova`) as an external buffer sharing `shinfo`, and
 * chained after it. TX offload flags and header lengths as xs_mbuf_set_tx's. */
void xs_mbuf_chain_ext(struct rte_mbuf *head, uint16_t head_len, struct rte_mbuf *seg,
                       void *addr, uint64_t iova, uint16_t len,
                       struct rte_mbuf_ext_shared_info *shinfo, uint64_t ol_flags,
                       uint16_t l2_len, uint16_t l3_len);
/* The number of mbufs attached to `s` (its refcnt less the owner's 1). */
uint16_t xs_ext_shinfo_users(const struct rte_mbuf_ext_shared_info *s);

/* The TX offload flags asking the PMD for the L4 checksum of an IPv4/IPv6 UDP/TCP frame
 * (the checksum field holding the pseudo-header sum). */
uint64_t xs_tx_csum_flags(int ipv6, int tcp);

/* This thread's lcore id (RTE_MAX_LCORE and above: none). */
unsigned xs_lcore_id(void);

#endif
