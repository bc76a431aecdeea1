/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The log-linear histogram buckets of xsend's BPF programs (`sansio::seqtrack::lat_bucket`):
 * exact below 32 ns, then 16 buckets per power of two. */
#ifndef XSEND_LAT_BUCKET_H
#define XSEND_LAT_BUCKET_H

#define LAT_SUB_BITS 4
#define LAT_BUCKETS (32 + (32 - 5) * 16)

static __always_inline __u32 lat_bucket(__u32 v)
{
	__u32 e = 0, x = v;

	if (v < 32)
		return v;
	if (x >> 16) { x >>= 16; e += 16; }
	if (x >> 8) { x >>= 8; e += 8; }
	if (x >> 4) { x >>= 4; e += 4; }
	if (x >> 2) { x >>= 2; e += 2; }
	if (x >> 1) { e += 1; }
	/* e = floor(log2 v) >= 5: the 4 bits below the top one pick the sub-bucket. */
	return 32 + (e - 5) * 16 + ((v >> (e - LAT_SUB_BITS)) & 15);
}

#endif
