/* See shim.h. Every function is a thin wrapper; the Rust side (src/sys/dpdk) checks
 * arguments and owns the objects. */
#include "shim.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The flag and offload values src/sys/dpdk/ffi.rs hard-codes. */
_Static_assert(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "IPV4_CKSUM");
_Static_assert(RTE_ETH_TX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "UDP_CKSUM");
_Static_assert(RTE_ETH_TX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "TCP_CKSUM");
_Static_assert(RTE_ETH_TX_OFFLOAD_MULTI_SEGS == (1ULL << 15), "MULTI_SEGS");
_Static_assert(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE == (1ULL << 16), "MBUF_FAST_FREE");
_Static_assert(RTE_PKTMBUF_HEADROOM == 128, "headroom");
/* The rte_mbuf fields src/sys/dpdk/mbuf.rs reads and writes in place (no call per packet). */
_Static_assert(offsetof(struct rte_mbuf, buf_addr) == 0, "buf_addr");
_Static_assert(offsetof(struct rte_mbuf, data_off) == 16, "data_off");
_Static_assert(offsetof(struct rte_mbuf, nb_segs) == 20, "nb_segs");
_Static_assert(offsetof(struct rte_mbuf, ol_flags) == 24, "ol_flags");
_Static_assert(offsetof(struct rte_mbuf, pkt_len) == 36, "pkt_len");
_Static_assert(offsetof(struct rte_mbuf, data_len) == 40, "data_len");
_Static_assert(offsetof(struct rte_mbuf, buf_len) == 54, "buf_len");
_Static_assert(offsetof(struct rte_mbuf, next) == 64, "next");
_Static_assert(offsetof(struct rte_mbuf, tx_offload) == 72, "tx_offload");
_Static_assert(RTE_MBUF_F_EXTERNAL == (1ULL << 61), "EXTERNAL");

int xs_port_info(uint16_t port, struct xs_port_info *out)
{
    struct rte_eth_dev_info info;
    struct rte_ether_addr mac;
    uint16_t mtu = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!rte_eth_dev_is_valid_port(port))
        return -ENODEV;
    rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return rc;
    if (info.driver_name)
        strncpy(out->driver, info.driver_name, sizeof(out->driver) - 1);
    rte_eth_dev_get_name_by_port(port, out->name);
    out->max_tx_queues = info.max_tx_queues;
    out->max_rx_queues = info.max_rx_queues;
    out->tx_desc_max = info.tx_desc_lim.nb_max;
    out->tx_desc_min = info.tx_desc_lim.nb_min;
    out->rx_desc_max = info.rx_desc_lim.nb_max;
    out->rx_desc_min = info.rx_desc_lim.nb_min;
    out->tx_offload_capa = info.tx_offload_capa;
    out->max_rx_pktlen = info.max_rx_pktlen;
    out->min_mtu = info.min_mtu;
    out->max_mtu = info.max_mtu;
    if (rte_eth_dev_get_mtu(port, &mtu) == 0)
        out->mtu = mtu;
    rc = rte_eth_macaddr_get(port, &mac);
    if (rc != 0)
        return rc;
    memcpy(out->mac, mac.addr_bytes, 6);
    out->socket_id = rte_eth_dev_socket_id(port);
    out->if_index = info.if_index;
    return 0;
}

int xs_port_setup(uint16_t port, uint16_t nq, uint16_t *tx_desc, uint16_t *rx_desc,
                  uint64_t tx_offloads, struct rte_mempool *const *mps)
{
    struct rte_eth_conf conf;
    struct rte_eth_dev_info info;
    struct rte_eth_txconf txconf;
    int rc;
    uint16_t q;

    rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return rc;
    memset(&conf, 0, sizeof(conf));
    conf.txmode.offloads = tx_offloads;
    rc = rte_eth_dev_configure(port, nq, nq, &conf);
    if (rc != 0)
        return rc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, rx_desc, tx_desc);
    if (rc != 0)
        return rc;
    txconf = info.default_txconf;
    txconf.offloads = tx_offloads;
    for (q = 0; q < nq; q++) {
        rc = rte_eth_rx_queue_setup(port, q, *rx_desc, rte_eth_dev_socket_id(port), NULL,
                                    mps[q]);
        if (rc != 0)
            return rc;
        rc = rte_eth_tx_queue_setup(port, q, *tx_desc, rte_eth_dev_socket_id(port), &txconf);
        if (rc != 0)
            return rc;
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0)
        return rc;
    /* Frames for us come to our own MAC; broadcast ARP/ND too. Promiscuous is not needed,
     * and not every PMD has it. */
    return 0;
}

void xs_port_close(uint16_t port)
{
    (void)rte_eth_dev_stop(port);
    (void)rte_eth_dev_close(port);
}

int xs_port_link_up(uint16_t port)
{
    struct rte_eth_link link;
    int rc = rte_eth_link_get_nowait(port, &link);
    if (rc != 0)
        return rc;
    return link.link_status == RTE_ETH_LINK_UP;
}

int xs_port_stats(uint16_t port, uint64_t *opackets, uint64_t *oerrors, uint64_t *ipackets)
{
    struct rte_eth_stats st;
    int rc = rte_eth_stats_get(port, &st);
    if (rc != 0)
        return rc;
    *opackets = st.opackets;
    *oerrors = st.oerrors;
    *ipackets = st.ipackets;
    return 0;
}

int xs_errno(void) { return rte_errno; }

uint16_t xs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_tx_burst(port, queue, pkts, n);
}

uint16_t xs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_rx_burst(port, queue, pkts, n);
}

int xs_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n)
{
    return rte_pktmbuf_alloc_bulk(mp, pkts, n);
}

void xs_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

int xs_get_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned n)
{
    return rte_mempool_get_bulk(mp, (void **)pkts, n);
}

void *xs_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t xs_mbuf_room(const struct rte_mbuf *m) { return (uint16_t)(m->buf_len - m->data_off); }

void xs_mbuf_set_tx(struct rte_mbuf *m, uint16_t len, uint64_t ol_flags, uint16_t l2_len,
                    uint16_t l3_len)
{
    rte_pktmbuf_reset_headroom(m);
    m->data_len = len;
    m->pkt_len = len;
    m->nb_segs = 1;
    m->next = NULL;
    m->ol_flags = (m->ol_flags & RTE_MBUF_F_EXTERNAL) | ol_flags;
    m->tx_offload = 0;
    m->l2_len = l2_len;
    m->l3_len = l3_len;
}

uint16_t xs_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
uint32_t xs_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
uint16_t xs_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
struct rte_mbuf *xs_mbuf_next(const struct rte_mbuf *m) { return m->next; }
uint64_t xs_mbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
uint16_t xs_mbuf_l2_len(const struct rte_mbuf *m) { return m->l2_len; }
uint16_t xs_mbuf_l3_len(const struct rte_mbuf *m) { return m->l3_len; }

uint64_t xs_tx_csum_flags(int ipv6, int tcp)
{
    return (ipv6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4) |
           (tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
}

unsigned xs_lcore_id(void) { return rte_lcore_id(); }

static void ext_keep(void *addr, void *opaque)
{
    /* The file mapping owns the pages. */
    (void)addr;
    (void)opaque;
}

struct rte_mbuf_ext_shared_info *xs_ext_shinfo_new(void)
{
    struct rte_mbuf_ext_shared_info *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->free_cb = ext_keep;
    s->fcb_opaque = NULL;
    rte_mbuf_ext_refcnt_set(s, 1);
    return s;
}

int xs_ext_shinfo_free(struct rte_mbuf_ext_shared_info *s)
{
    if (rte_mbuf_ext_refcnt_read(s) != 1)
        return -EBUSY;
    free(s);
    return 0;
}

uint16_t xs_ext_shinfo_users(const struct rte_mbuf_ext_shared_info *s)
{
    return (uint16_t)(rte_mbuf_ext_refcnt_read(s) - 1);
}

int xs_iova_is_va(void) { return rte_eal_iova_mode() == RTE_IOVA_VA; }

void xs_mbuf_chain_ext(struct rte_mbuf *head, uint16_t head_len, struct rte_mbuf *seg,
                       void *addr, uint64_t iova, uint16_t len,
                       struct rte_mbuf_ext_shared_info *shinfo, uint64_t ol_flags,
                       uint16_t l2_len, uint16_t l3_len)
{
    /* One more user (the owner's 1 keeps the count from reaching 0 when mbufs go). */
    rte_mbuf_ext_refcnt_update(shinfo, 1);
    /* (`seg` comes straight from its pool: detached, refcnt 1, no next.) */
    rte_pktmbuf_attach_extbuf(seg, addr, (rte_iova_t)iova, len, shinfo);
    seg->data_len = len;
    seg->pkt_len = len;
    seg->nb_segs = 1;
    seg->next = NULL;
    xs_mbuf_set_tx(head, head_len, ol_flags, l2_len, l3_len);
    head->pkt_len = (uint32_t)head_len + len;
    head->nb_segs = 2;
    head->next = seg;
}

struct packed_check {
    uintptr_t first;
    size_t stride;
    unsigned bad;
};

static void packed_obj(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
    struct packed_check *c = arg;
    /* The object pointer is past the mempool header; the UMEM counts from the header. */
    uintptr_t at = (uintptr_t)obj - mp->header_size;
    if (at != c->first + (uintptr_t)idx * c->stride)
        c->bad++;
}

static void packed_free(struct rte_mempool_memhdr *memhdr, void *opaque)
{
    (void)memhdr;
    rte_memzone_free(opaque);
}

struct rte_mempool *xs_pool_create_packed(const char *name, unsigned n, unsigned cache,
                                          unsigned obj_size, const char *ops,
                                          uint16_t *data_room)
{
    struct rte_pktmbuf_pool_private priv;
    struct rte_mempool_objsz sz;
    struct rte_mempool *mp;
    struct rte_mempool_memhdr *hdr;
    const struct rte_memzone *mz;
    struct packed_check c;
    char mzname[RTE_MEMZONE_NAMESIZE];
    size_t elt, room;
    int rc;

    (void)rte_mempool_calc_obj_size(0, RTE_MEMPOOL_F_NO_SPREAD, &sz);
    if (obj_size <= sz.header_size + sz.trailer_size + sizeof(struct rte_mbuf) +
                        RTE_PKTMBUF_HEADROOM) {
        rte_errno = EINVAL;
        return NULL;
    }
    elt = obj_size - sz.header_size - sz.trailer_size;
    room = elt - sizeof(struct rte_mbuf);
    if (room > UINT16_MAX || elt % RTE_MEMPOOL_ALIGN != 0 ||
        snprintf(mzname, sizeof(mzname), "%s_m", name) >= (int)sizeof(mzname)) {
        rte_errno = EINVAL;
        return NULL;
    }
    /* Not spread over memory channels: objects of exactly obj_size bytes. */
    mp = rte_mempool_create_empty(name, n, (unsigned)elt, cache, sizeof(priv), SOCKET_ID_ANY,
                                  RTE_MEMPOOL_F_NO_SPREAD);
    if (mp == NULL)
        return NULL;
    rc = rte_mempool_set_ops_byname(mp, ops, NULL);
    if (rc != 0)
        goto fail;
    memset(&priv, 0, sizeof(priv));
    priv.mbuf_data_room_size = (uint16_t)room;
    rte_pktmbuf_pool_init(mp, &priv);
    /* One page-aligned zone of exactly n objects: the first at its start, none crossing a
     * page; freed with the pool. */
    mz = rte_memzone_reserve_aligned(mzname, (size_t)n * obj_size, SOCKET_ID_ANY, 0, 4096);
    if (mz == NULL) {
        rc = -rte_errno;
        goto fail;
    }
    /* (The IOVA is not used: net_af_xdp hands the kernel virtual addresses.) */
    rc = rte_mempool_populate_iova(mp, mz->addr, mz->iova, mz->len, packed_free, (void *)mz);
    if (rc <= 0) {
        /* Nothing populated: the zone is not the pool's yet. */
        rte_memzone_free(mz);
        rc = rc < 0 ? rc : -EINVAL;
        goto fail;
    }
    (void)rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
    hdr = STAILQ_FIRST(&mp->mem_list);
    c.first = hdr ? (uintptr_t)hdr->addr : 0;
    c.stride = rte_mempool_calc_obj_size(mp->elt_size, mp->flags, NULL);
    c.bad = 0;
    if (c.stride != obj_size || mp->populated_size != n || mp->nb_mem_chunks != 1 ||
        (c.first & 4095) != 0) {
        c.bad = 1;
    } else {
        (void)rte_mempool_obj_iter(mp, packed_obj, &c);
    }
    if (c.bad != 0) {
        rc = -EINVAL;
        goto fail;
    }
    *data_room = (uint16_t)(room - RTE_PKTMBUF_HEADROOM);
    return mp;
fail:
    rte_mempool_free(mp);
    rte_errno = rc < 0 ? -rc : EINVAL;
    return NULL;
}
