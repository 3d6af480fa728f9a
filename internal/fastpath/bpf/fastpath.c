// The nat64kit fast path: a tc program at the egress of an instance's TUN
// device. It translates the packets of sessions the Go translator has
// handed it (the maps sessions6 and sessions4) in place and sends them back
// into the stack through the same device's ingress, as if nat64ctl had
// written them to the TUN. Every other packet goes on, unchanged, to the Go
// translator reading the device. README.md lists what it takes and why:
// that list is the contract between the two paths.
//
// Built by `go generate` (bpf2go) into ../fastpath_bpfel.o; see ../gen.go.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual BSD/GPL";

// Set by the loader before the program is loaded (bpf2go rewrites .rodata).
// l3_offset is where the IP header starts: 0 on a TUN device, which has no
// link-layer header; 14 under BPF_PROG_TEST_RUN, which always builds an
// Ethernet frame.
volatile const __u32 l3_offset = 0;
volatile const __u32 mtu6 = 1500;    // the IPv6 side's MTU (the TUN device's)
volatile const __u32 mtu4 = 1500;    // the IPv4 side's next-hop MTU
volatile const __u32 low_mtu6 = 1280; // RFC 7915 §4 lowest-ipv6-mtu

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04

#define IPV4_DF 0x4000
#define IPV4_MF_OFFSET 0x3fff

// RFC 7915 §5.1: a translated packet over 1260 bytes gets DF (the Go
// translator's dfThreshold).
#define DF_THRESHOLD 1260

// --- the maps: the contract with the Go loader (fastpath.go) ---

// key6 is an IPv6-side tuple X:x -> Y:y as the IPv6 host sends it; for ICMP
// echo both ports are the identifier. proto is the IPv6 next header.
struct key6 {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

// key4 is an IPv4-side tuple Z:z -> T:t as the IPv4 host sends it; for
// ICMP echo both ports are the identifier t. proto is the IPv4 protocol.
struct key4 {
	__be32 src;
	__be32 dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

// to4 is what a key6 packet becomes: T:t -> Z:z. last_seen is the
// bpf_ktime_get_ns() of the last packet the fast path carried.
struct to4 {
	__be32 src;
	__be32 dst;
	__be16 sport;
	__be16 dport;
	__u32 pad;
	__u64 last_seen;
};

// to6 is what a key4 packet becomes: Y:z -> X:x.
struct to6 {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u32 pad;
	__u64 last_seen;
};

// Hash maps, not LRU: an LRU map would evict live sessions behind the Go
// table's back. max_entries is set by the loader from max_sessions.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct key6);
	__type(value, struct to4);
} sessions6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct key4);
	__type(value, struct to6);
} sessions4 SEC(".maps");

enum direction { DIR_6TO4, DIR_4TO6, DIR_MAX };
enum transport { TR_TCP, TR_UDP, TR_ICMP, TR_MAX }; // nat64.Transport.Index()

struct count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DIR_MAX * TR_MAX);
	__type(key, __u32);
	__type(value, struct count);
} traffic SEC(".maps");

// Why a packet went to the slow path; names in fastpath.go (passReasons).
enum pass_reason {
	PASS_OTHER,        // neither IPv4 nor IPv6
	PASS_MALFORMED,    // lengths or header checksum the Go translator must judge
	PASS_OPTIONS,      // IPv4 options, IPv6 extension headers
	PASS_FRAGMENT,     // IPv4 or IPv6 fragments
	PASS_HOP_LIMIT,    // TTL or hop limit 1 or 0: Time Exceeded
	PASS_PROTO,        // not TCP, UDP or ICMP
	PASS_ICMP,         // ICMP other than echo (errors included)
	PASS_TCP_CONTROL,  // SYN, FIN or RST: the state machine must see it
	PASS_UDP_ZERO_CSUM,
	PASS_NO_SESSION,
	PASS_TOO_BIG,      // over the MTU: Packet Too Big, or fragments
	PASS_GSO,          // a GSO packet of a kind the helpers cannot convert
	PASS_CHANGE_PROTO, // bpf_skb_change_proto refused it
	PASS_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PASS_MAX + 1);
	__type(key, __u32);
	__type(value, __u64);
} passed SEC(".maps");

// DROP_REWRITE counts packets dropped because a rewrite failed half way
// (a helper error after the headers changed): index PASS_MAX of passed.
#define DROP_REWRITE PASS_MAX

// --- helpers ---

static __always_inline int pass(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&passed, &reason);
	if (n)
		*n += 1;
	return TC_ACT_OK;
}

static __always_inline int drop(void)
{
	__u32 k = DROP_REWRITE;
	__u64 *n = bpf_map_lookup_elem(&passed, &k);
	if (n)
		*n += 1;
	return TC_ACT_SHOT;
}

static __always_inline void account(struct __sk_buff *skb, enum direction dir, enum transport tr)
{
	__u32 k = dir * TR_MAX + tr;
	struct count *t = bpf_map_lookup_elem(&traffic, &k);
	if (!t)
		return;
	// A GSO packet stands for gso_segs packets on the wire, which is what
	// the Go translator (reading segmented packets) would count.
	__u32 segs = skb->gso_segs;
	t->packets += segs > 1 ? segs : 1;
	t->bytes += skb->len - l3_offset;
}

static __always_inline void touch(__u64 *last_seen)
{
	// Written only when it moves by a millisecond: a busy flow does not
	// dirty the cache line on every packet.
	__u64 now = bpf_ktime_get_ns();
	if (now - *last_seen > 1000000)
		*last_seen = now;
}

static __always_inline __u16 fold(__s64 sum)
{
	__u32 s = (__u32)sum;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

// ipv4_csum is the header checksum of a 20-byte IPv4 header.
static __always_inline __u16 ipv4_csum(void *hdr)
{
	return ~fold(bpf_csum_diff(0, 0, hdr, 20, 0));
}

// The upper-layer header fields the fast path reads.
struct l4 {
	__u8 proto;      // IP protocol on the incoming side
	__u8 tcp_hlen;   // TCP header length
	__u16 csum_off;  // checksum offset within the upper-layer header
	__be16 sport;
	__be16 dport;
	__u8 type;       // ICMP
	__u8 code;
};

// read_l4 reads and judges the upper-layer header at off (len bytes of
// upper layer follow). It returns PASS_MAX to go on, or why to pass.
static __always_inline __u32 read_l4(struct __sk_buff *skb, __u32 off, __u32 len, __u8 proto, struct l4 *l)
{
	__u8 b[20];
	l->proto = proto;
	switch (proto) {
	case PROTO_TCP:
		if (len < 20 || bpf_skb_load_bytes(skb, off, b, 20))
			return PASS_MALFORMED;
		l->tcp_hlen = (b[12] >> 4) * 4;
		if (l->tcp_hlen < 20 || l->tcp_hlen > len)
			return PASS_MALFORMED;
		if (b[13] & (TCP_SYN | TCP_FIN | TCP_RST))
			return PASS_TCP_CONTROL;
		l->csum_off = 16;
		break;
	case PROTO_UDP:
		if (len < 8 || bpf_skb_load_bytes(skb, off, b, 8))
			return PASS_MALFORMED;
		if (((__u32)b[4] << 8 | b[5]) != len)
			return PASS_MALFORMED;
		if (b[6] == 0 && b[7] == 0)
			return PASS_UDP_ZERO_CSUM;
		l->csum_off = 6;
		break;
	case PROTO_ICMP:
	case PROTO_ICMPV6:
		if (len < 8 || bpf_skb_load_bytes(skb, off, b, 8))
			return PASS_MALFORMED;
		l->type = b[0];
		l->code = b[1];
		if (l->code != 0)
			return PASS_ICMP;
		if (proto == PROTO_ICMP ? (b[0] != 8 && b[0] != 0) : (b[0] != 128 && b[0] != 129))
			return PASS_ICMP;
		// The identifier stands for both ports.
		__builtin_memcpy(&l->sport, &b[4], 2);
		l->dport = l->sport;
		l->csum_off = 2;
		return PASS_MAX;
	default:
		return PASS_PROTO;
	}
	__builtin_memcpy(&l->sport, &b[0], 2);
	__builtin_memcpy(&l->dport, &b[2], 2);
	return PASS_MAX;
}

static __always_inline enum transport transport_of(__u8 proto)
{
	if (proto == PROTO_TCP)
		return TR_TCP;
	if (proto == PROTO_UDP)
		return TR_UDP;
	return TR_ICMP;
}

// fits: the translated packet, or each segment of a GSO one, fits limit.
// hdr is the translated IP header's length. It returns PASS_MAX, or why not.
static __always_inline __u32 fits(struct __sk_buff *skb, struct l4 *l, __u32 hdr, __u32 l4len, __u32 limit, __u32 *seglen)
{
	if (skb->gso_size) {
		// Only TCP GSO converts between the families (bpf_skb_change_proto).
		if (l->proto != PROTO_TCP)
			return PASS_GSO;
		*seglen = hdr + l->tcp_hlen + skb->gso_size;
	} else {
		*seglen = hdr + l4len;
	}
	return *seglen <= limit ? PASS_MAX : PASS_TOO_BIG;
}

// l4_csum_flags: UDP's checksum 0 means none in IPv4, so a result of 0 is
// written as 0xffff (as the Go translator does).
static __always_inline __u64 l4_csum_flags(struct l4 *l)
{
	return l->proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

// rewrite_l4 moves the upper-layer checksum from one pseudo-header to the
// other (pseudo is the checksum difference, flagged so the kernel also
// gets CHECKSUM_PARTIAL packets right), and replaces one port (the
// identifier for ICMP, which also changes type). off is the upper-layer
// header's offset after the IP header change.
static __always_inline int rewrite_l4(struct __sk_buff *skb, struct l4 *l, __u32 off, __s64 pseudo, __u32 port_off,
				      __be16 old_port, __be16 new_port, __u8 new_type)
{
	__u32 csum = off + l->csum_off;
	__u64 flags = l4_csum_flags(l);
	if (bpf_l4_csum_replace(skb, csum, 0, pseudo, flags | BPF_F_PSEUDO_HDR))
		return -1;
	if (l->proto == PROTO_ICMP || l->proto == PROTO_ICMPV6) {
		__be16 old_tc = bpf_htons((__u16)l->type << 8);
		__be16 new_tc = bpf_htons((__u16)new_type << 8);
		if (bpf_l4_csum_replace(skb, csum, old_tc, new_tc, 2) ||
		    bpf_skb_store_bytes(skb, off, &new_type, 1, 0))
			return -1;
		port_off = 4;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum, old_port, new_port, flags | 2) ||
		    bpf_skb_store_bytes(skb, off + port_off, &new_port, 2, 0))
			return -1;
	}
	return 0;
}

// The IPv6 pseudo-header of RFC 8200 §8.1 (ICMPv6 includes it, ICMPv4 has
// none).
struct pseudo6 {
	__u8 src[16];
	__u8 dst[16];
	__be32 len;
	__u8 zero[3];
	__u8 next;
};

// --- IPv6 -> IPv4 (RFC 7915 §5.1) ---

struct ipv6 {
	__be32 vtcfl;
	__be16 plen;
	__u8 next;
	__u8 hop;
	__u8 src[16];
	__u8 dst[16];
};

struct ipv4 {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 csum;
	__be32 src;
	__be32 dst;
};

static __always_inline int from6(struct __sk_buff *skb)
{
	struct ipv6 h;
	__u32 l3 = l3_offset;
	if (bpf_skb_load_bytes(skb, l3, &h, sizeof(h)))
		return pass(PASS_MALFORMED);
	if ((bpf_ntohl(h.vtcfl) >> 28) != 6)
		return pass(PASS_MALFORMED);
	__u32 plen = bpf_ntohs(h.plen);
	switch (h.next) {
	case PROTO_TCP:
	case PROTO_UDP:
	case PROTO_ICMPV6:
		break;
	case 44:
		return pass(PASS_FRAGMENT);
	case 0:
	case 43:
	case 60:
		return pass(PASS_OPTIONS);
	default:
		return pass(PASS_PROTO);
	}
	// Exactly one packet with nothing after it: anything else (a jumbogram
	// included) is the Go translator's to judge.
	if (plen == 0 || l3 + 40 + plen != skb->len)
		return pass(PASS_MALFORMED);
	if (h.hop <= 1)
		return pass(PASS_HOP_LIMIT);

	struct l4 l = {};
	__u32 r = read_l4(skb, l3 + 40, plen, h.next, &l);
	if (r != PASS_MAX)
		return pass(r);

	struct key6 k = {};
	__builtin_memcpy(k.src, h.src, 16);
	__builtin_memcpy(k.dst, h.dst, 16);
	k.sport = l.sport;
	k.dport = l.dport;
	k.proto = h.next;
	struct to4 *v = bpf_map_lookup_elem(&sessions6, &k);
	if (!v)
		return pass(PASS_NO_SESSION);

	__u32 seglen;
	if (20 + plen > 0xffff)
		return pass(PASS_TOO_BIG);
	r = fits(skb, &l, 20, plen, mtu4, &seglen);
	if (r != PASS_MAX)
		return pass(r);

	// The pseudo-header difference, while the IPv6 addresses are at hand.
	__s64 pseudo;
	if (h.next == PROTO_ICMPV6) {
		struct pseudo6 ph = {};
		__builtin_memcpy(ph.src, h.src, 16);
		__builtin_memcpy(ph.dst, h.dst, 16);
		ph.len = bpf_htonl(plen);
		ph.next = PROTO_ICMPV6;
		pseudo = bpf_csum_diff((__be32 *)&ph, sizeof(ph), 0, 0, 0);
	} else {
		__be32 addrs4[2] = {v->src, v->dst};
		pseudo = bpf_csum_diff((__be32 *)h.src, 32, addrs4, 8, 0);
	}

	struct ipv4 o = {};
	o.vihl = 0x45;
	o.tos = bpf_ntohl(h.vtcfl) >> 20;
	o.tot_len = bpf_htons(20 + plen);
	o.id = bpf_get_prandom_u32();
	o.frag = seglen > DF_THRESHOLD ? bpf_htons(IPV4_DF) : 0;
	o.ttl = h.hop - 1;
	o.proto = h.next == PROTO_ICMPV6 ? PROTO_ICMP : h.next;
	o.src = v->src;
	o.dst = v->dst;
	o.csum = ipv4_csum(&o);
	__be16 new_port = v->sport;
	__u8 new_type = l.type == 128 ? 8 : 0;
	touch(&v->last_seen);

	// From here the packet changes: before, every refusal left it as it was.
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return pass(PASS_CHANGE_PROTO);
	if (bpf_skb_store_bytes(skb, l3, &o, sizeof(o), 0) ||
	    rewrite_l4(skb, &l, l3 + 20, pseudo, 0, l.sport, new_port, new_type))
		return drop();
	account(skb, DIR_6TO4, transport_of(h.next));
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

// --- IPv4 -> IPv6 (RFC 7915 §4.1) ---

static __always_inline int from4(struct __sk_buff *skb)
{
	struct ipv4 h;
	__u32 l3 = l3_offset;
	if (bpf_skb_load_bytes(skb, l3, &h, sizeof(h)))
		return pass(PASS_MALFORMED);
	if ((h.vihl >> 4) != 4 || (h.vihl & 0xf) < 5)
		return pass(PASS_MALFORMED);
	if ((h.vihl & 0xf) != 5)
		return pass(PASS_OPTIONS);
	__u32 tot = bpf_ntohs(h.tot_len);
	if (tot < 20 || l3 + tot != skb->len || fold(bpf_csum_diff(0, 0, (__be32 *)&h, 20, 0)) != 0xffff)
		return pass(PASS_MALFORMED);
	if (bpf_ntohs(h.frag) & IPV4_MF_OFFSET)
		return pass(PASS_FRAGMENT);
	if (h.ttl <= 1)
		return pass(PASS_HOP_LIMIT);

	struct l4 l = {};
	__u32 r = read_l4(skb, l3 + 20, tot - 20, h.proto, &l);
	if (r != PASS_MAX)
		return pass(r);

	struct key4 k = {};
	k.src = h.src;
	k.dst = h.dst;
	k.sport = l.sport;
	k.dport = l.dport;
	k.proto = h.proto;
	struct to6 *v = bpf_map_lookup_elem(&sessions4, &k);
	if (!v)
		return pass(PASS_NO_SESSION);

	// DF set: the sender does path MTU discovery, the IPv6 MTU applies.
	// DF clear: over lowest-ipv6-mtu the Go translator fragments.
	__u32 seglen;
	r = fits(skb, &l, 40, tot - 20, (bpf_ntohs(h.frag) & IPV4_DF) ? mtu6 : low_mtu6, &seglen);
	if (r != PASS_MAX)
		return pass(r);

	__s64 pseudo;
	if (h.proto == PROTO_ICMP) {
		struct pseudo6 ph = {};
		__builtin_memcpy(ph.src, v->src, 16);
		__builtin_memcpy(ph.dst, v->dst, 16);
		ph.len = bpf_htonl(tot - 20);
		ph.next = PROTO_ICMPV6;
		pseudo = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);
	} else {
		__be32 addrs4[2] = {h.src, h.dst};
		pseudo = bpf_csum_diff(addrs4, 8, (__be32 *)v->src, 32, 0);
	}

	struct ipv6 o = {};
	o.vtcfl = bpf_htonl(6 << 28 | (__u32)h.tos << 20);
	o.plen = bpf_htons(tot - 20);
	o.next = h.proto == PROTO_ICMP ? PROTO_ICMPV6 : h.proto;
	o.hop = h.ttl - 1;
	__builtin_memcpy(o.src, v->src, 16);
	__builtin_memcpy(o.dst, v->dst, 16);
	__be16 new_port = v->dport;
	__u8 new_type = l.type == 8 ? 128 : 129;
	touch(&v->last_seen);

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return pass(PASS_CHANGE_PROTO);
	if (bpf_skb_store_bytes(skb, l3, &o, sizeof(o), 0) ||
	    rewrite_l4(skb, &l, l3 + 40, pseudo, 2, l.dport, new_port, new_type))
		return drop();
	account(skb, DIR_4TO6, transport_of(h.proto));
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

SEC("tc")
int translate(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return from6(skb);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return from4(skb);
	return pass(PASS_OTHER);
}
