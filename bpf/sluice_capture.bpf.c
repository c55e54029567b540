// SPDX-License-Identifier: GPL-2.0
// Sluice's eBPF capture mode. The agent loads this object once as the node's shared copy,
// whose programs run for every workload (sockops, getsockopt, sk_msg), and once more per
// enrolled workload for the programs that need the workload's settings (connect4, connect6,
// tc). The workload copies reuse the shared copy's maps that connect the two sides
// (sluice_origin, sluice_pending, sluice_socks, sluice_counters) and own sluice_config and
// the exclusion maps. So a cgroup — the proxy's above all — gets one program per hook
// however many workloads there are (a cgroup hook holds at most 64), and every event is
// counted in its workload's slot of sluice_counters.
//
//   cgroup/connect4, connect6  (workload cgroup)  outbound TCP connects go to the proxy's
//                                                  outbound listener on loopback; the original
//                                                  destination is kept in the socket's storage
//   sockops                    (workload and proxy cgroups)  on establishment, pairs the
//                                                  application's socket with the proxy's
//                                                  accepted socket and puts both in a SOCKHASH
//   sk_msg                     (the SOCKHASH)      bytes written on one end of a pair go straight
//                                                  into the other end's receive queue
//   cgroup/getsockopt          (proxy cgroup)      answers SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST
//                                                  from the accepted socket's storage
//   tc (tcx ingress)           (workload interfaces)  a new inbound connection is assigned to the
//                                                  proxy's inbound listener; its accepted socket
//                                                  keeps the original local address
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define IPPROTO_TCP_NUM 6
#define SK_PASS_VERDICT 1

#define ORIGIN_OUTBOUND 1
#define ORIGIN_INBOUND 2
#define ROLE_APPLICATION 1
#define ROLE_PROXY 2

// Counter slots of one workload, read by the agent and the tests (`sluice_counters` holds
// COUNTER_SLOTS of them per workload slot).
enum counter {
    COUNTER_CONNECT_REDIRECTED = 0,
    COUNTER_CONNECT_BYPASSED = 1,
    COUNTER_SOCKHASH_INSERTED = 2,
    COUNTER_MSG_REDIRECTED = 3,
    COUNTER_MSG_BYTES = 4,
    COUNTER_ORIGINAL_DST_ANSWERED = 5,
    COUNTER_INBOUND_ASSIGNED = 6,
    COUNTER_INBOUND_NO_LISTENER = 7,
    COUNTER_SLOTS = 8,
};

// Workload slots the agent hands out; each workload's counters are its own.
#define MAX_WORKLOADS 4096

// Written by the agent before any program is attached.
struct capture_config {
    __u16 outbound_port;
    __u16 inbound_port;
    __u32 proxy_mark;
    __u32 mark_mask;
    __u32 workload;  // the workload's slot in sluice_counters
};

// Addresses are always 16 bytes: IPv4 as ::ffff:a.b.c.d, so an IPv4 connection made from a
// dual-stack IPv6 socket and the proxy's IPv4 socket produce the same key.
struct endpoint {
    __u32 addr[4];
    __u16 port;  // host order
    __u16 pad;
};

// A connection as one of its sockets sees it.
struct flow_key {
    struct endpoint local;
    struct endpoint remote;
};

struct origin {
    struct endpoint destination;
    __u32 kind;      // ORIGIN_*
    __u32 role;      // ROLE_*
    __u32 workload;  // slot of the workload the connection belongs to
};

struct net_key {
    __u32 prefixlen;
    __u32 addr[4];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct capture_config);
} sluice_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_WORKLOADS * COUNTER_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} sluice_counters SEC(".maps");

// Destination ports never captured, in either direction.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u16);
    __type(value, __u8);
} sluice_ex_ports SEC(".maps");

// Outbound destination ranges never captured (excluded CIDRs and the workload's own
// addresses, whose traffic stays on lo).
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 1024);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct net_key);
    __type(value, __u8);
} sluice_ex_nets SEC(".maps");

// Original destination of a captured socket, freed with the socket.
struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct origin);
} sluice_origin SEC(".maps");

// Connections the proxy is about to accept, keyed as the proxy's accepted socket will see them.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct flow_key);
    __type(value, struct origin);
} sluice_pending SEC(".maps");

// Both ends of every captured application ⇄ proxy connection, keyed by their own view.
struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 65536);
    __type(key, struct flow_key);
    __type(value, __u64);
} sluice_socks SEC(".maps");

static __always_inline void count(__u32 workload, __u32 slot, __u64 amount) {
    __u32 index = workload * COUNTER_SLOTS + slot;
    __u64 *value = bpf_map_lookup_elem(&sluice_counters, &index);
    if (value) __sync_fetch_and_add(value, amount);
}

static __always_inline struct capture_config *current_config(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&sluice_config, &zero);
}

static __always_inline void set_v4(__u32 addr[4], __u32 ip4) {
    addr[0] = 0;
    addr[1] = 0;
    addr[2] = bpf_htonl(0x0000ffff);
    addr[3] = ip4;
}

static __always_inline int is_v4_mapped(const __u32 addr[4]) {
    return addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int is_loopback(const __u32 addr[4]) {
    if (is_v4_mapped(addr)) return (bpf_ntohl(addr[3]) >> 24) == 127;
    return addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == bpf_htonl(1);
}

// Whether a connection to `addr`:`port` stays direct.
static __always_inline int bypassed(struct capture_config *cfg, const __u32 addr[4], __u16 port) {
    if (port == cfg->outbound_port || port == cfg->inbound_port) return 1;
    if (bpf_map_lookup_elem(&sluice_ex_ports, &port)) return 1;
    if (is_loopback(addr)) return 1;
    struct net_key key = {.prefixlen = 128};
    __builtin_memcpy(key.addr, addr, sizeof(key.addr));
    return bpf_map_lookup_elem(&sluice_ex_nets, &key) != NULL;
}

// Outbound capture: remembers where the application wanted to go and sets the proxy's port.
// Returns 1 when the caller must also point the address at loopback.
static __always_inline int capture_connect(struct bpf_sock_addr *ctx, __u32 addr[4], __u16 port) {
    struct capture_config *cfg = current_config();
    if (!cfg) return 0;
    if (ctx->type != SOCK_STREAM) return 0;
    struct bpf_sock *sk = ctx->sk;
    if (!sk) return 0;
    // The proxy's own sockets carry its mark: never captured, whichever cgroup it runs in.
    if ((sk->mark & cfg->mark_mask) == cfg->proxy_mark) return 0;
    if (bypassed(cfg, addr, port)) {
        count(cfg->workload, COUNTER_CONNECT_BYPASSED, 1);
        return 0;
    }
    struct origin *origin = bpf_sk_storage_get(&sluice_origin, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!origin) return 0;
    __builtin_memcpy(origin->destination.addr, addr, sizeof(origin->destination.addr));
    origin->destination.port = port;
    origin->kind = ORIGIN_OUTBOUND;
    origin->role = ROLE_APPLICATION;
    origin->workload = cfg->workload;
    ctx->user_port = bpf_htons(cfg->outbound_port);
    count(cfg->workload, COUNTER_CONNECT_REDIRECTED, 1);
    return 1;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx) {
    __u32 addr[4];
    set_v4(addr, ctx->user_ip4);
    if (capture_connect(ctx, addr, bpf_ntohs(ctx->user_port))) ctx->user_ip4 = bpf_htonl(0x7f000001);
    return 1;
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx) {
    __u32 addr[4];
    addr[0] = ctx->user_ip6[0];
    addr[1] = ctx->user_ip6[1];
    addr[2] = ctx->user_ip6[2];
    addr[3] = ctx->user_ip6[3];
    if (capture_connect(ctx, addr, bpf_ntohs(ctx->user_port))) {
        if (is_v4_mapped(addr)) {
            ctx->user_ip6[3] = bpf_htonl(0x7f000001);
        } else {
            ctx->user_ip6[0] = 0;
            ctx->user_ip6[1] = 0;
            ctx->user_ip6[2] = 0;
            ctx->user_ip6[3] = bpf_htonl(1);
        }
    }
    return 1;
}

static __always_inline void sockops_flow(struct bpf_sock_ops *skops, struct flow_key *flow) {
    if (skops->family == AF_INET) {
        set_v4(flow->local.addr, skops->local_ip4);
        set_v4(flow->remote.addr, skops->remote_ip4);
    } else {
        flow->local.addr[0] = skops->local_ip6[0];
        flow->local.addr[1] = skops->local_ip6[1];
        flow->local.addr[2] = skops->local_ip6[2];
        flow->local.addr[3] = skops->local_ip6[3];
        flow->remote.addr[0] = skops->remote_ip6[0];
        flow->remote.addr[1] = skops->remote_ip6[1];
        flow->remote.addr[2] = skops->remote_ip6[2];
        flow->remote.addr[3] = skops->remote_ip6[3];
    }
    flow->local.port = (__u16)skops->local_port;
    flow->remote.port = (__u16)bpf_ntohl(skops->remote_port);
    flow->local.pad = 0;
    flow->remote.pad = 0;
}

static __always_inline void reverse(const struct flow_key *in, struct flow_key *out) {
    out->local = in->remote;
    out->remote = in->local;
}

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *skops) {
    if (skops->family != AF_INET && skops->family != AF_INET6) return 1;
    struct bpf_sock *sk = skops->sk;
    if (!sk) return 1;
    struct flow_key flow = {};
    struct flow_key peer = {};
    switch (skops->op) {
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB: {
        // The application's captured socket is connected to the proxy's outbound listener.
        struct origin *origin = bpf_sk_storage_get(&sluice_origin, sk, 0, 0);
        if (!origin || origin->role != ROLE_APPLICATION) return 1;
        sockops_flow(skops, &flow);
        reverse(&flow, &peer);
        struct origin pending = *origin;
        pending.role = ROLE_PROXY;
        bpf_map_update_elem(&sluice_pending, &peer, &pending, BPF_ANY);
        if (bpf_sock_hash_update(skops, &sluice_socks, &flow, BPF_NOEXIST) == 0)
            count(origin->workload, COUNTER_SOCKHASH_INSERTED, 1);
        break;
    }
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
        // The proxy accepted a connection: is it one we redirected?
        sockops_flow(skops, &flow);
        struct origin *pending = bpf_map_lookup_elem(&sluice_pending, &flow);
        if (!pending) return 1;
        struct origin *origin = bpf_sk_storage_get(&sluice_origin, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
        if (origin) *origin = *pending;
        __u32 kind = pending->kind;
        __u32 workload = pending->workload;
        bpf_map_delete_elem(&sluice_pending, &flow);
        // Only outbound pairs have both ends on this host's loopback.
        if (kind == ORIGIN_OUTBOUND && bpf_sock_hash_update(skops, &sluice_socks, &flow, BPF_NOEXIST) == 0)
            count(workload, COUNTER_SOCKHASH_INSERTED, 1);
        break;
    }
    }
    return 1;
}

SEC("sk_msg")
int sluice_sk_msg(struct sk_msg_md *msg) {
    struct flow_key peer = {};
    // The peer socket's key is this socket's key reversed.
    if (msg->family == AF_INET) {
        set_v4(peer.remote.addr, msg->local_ip4);
        set_v4(peer.local.addr, msg->remote_ip4);
    } else {
        peer.remote.addr[0] = msg->local_ip6[0];
        peer.remote.addr[1] = msg->local_ip6[1];
        peer.remote.addr[2] = msg->local_ip6[2];
        peer.remote.addr[3] = msg->local_ip6[3];
        peer.local.addr[0] = msg->remote_ip6[0];
        peer.local.addr[1] = msg->remote_ip6[1];
        peer.local.addr[2] = msg->remote_ip6[2];
        peer.local.addr[3] = msg->remote_ip6[3];
    }
    peer.remote.port = (__u16)msg->local_port;
    peer.local.port = (__u16)bpf_ntohl(msg->remote_port);
    __u32 size = msg->size;
    // Without a peer in the map the helper returns SK_DROP and leaves the message alone; it
    // then takes the normal TCP path.
    if (bpf_msg_redirect_hash(msg, &sluice_socks, &peer, BPF_F_INGRESS) == SK_PASS_VERDICT) {
        // Both ends of a pair carry the connection's origin, and with it its workload.
        struct bpf_sock *sk = msg->sk;
        struct origin *origin = sk ? bpf_sk_storage_get(&sluice_origin, sk, 0, 0) : NULL;
        if (origin) {
            count(origin->workload, COUNTER_MSG_REDIRECTED, 1);
            count(origin->workload, COUNTER_MSG_BYTES, size);
        }
    }
    return SK_PASS_VERDICT;
}

SEC("cgroup/getsockopt")
int sluice_getsockopt(struct bpf_sockopt *ctx) {
    if (ctx->optname != SO_ORIGINAL_DST) return 1;
    if (ctx->level != SOL_IP && ctx->level != SOL_IPV6) return 1;
    struct bpf_sock *sk = ctx->sk;
    if (!sk) return 1;
    struct origin *origin = bpf_sk_storage_get(&sluice_origin, sk, 0, 0);
    if (!origin || origin->role != ROLE_PROXY) return 1;
    if (ctx->level == SOL_IP) {
        if (!is_v4_mapped(origin->destination.addr)) return 1;
        struct sockaddr_in *out = ctx->optval;
        if ((void *)(out + 1) > ctx->optval_end) return 1;
        out->sin_family = AF_INET;
        out->sin_port = bpf_htons(origin->destination.port);
        out->sin_addr.s_addr = origin->destination.addr[3];
        ctx->optlen = sizeof(*out);
    } else {
        struct sockaddr_in6 *out = ctx->optval;
        if ((void *)(out + 1) > ctx->optval_end) return 1;
        out->sin6_family = AF_INET6;
        out->sin6_port = bpf_htons(origin->destination.port);
        out->sin6_flowinfo = 0;
        out->sin6_addr.in6_u.u6_addr32[0] = origin->destination.addr[0];
        out->sin6_addr.in6_u.u6_addr32[1] = origin->destination.addr[1];
        out->sin6_addr.in6_u.u6_addr32[2] = origin->destination.addr[2];
        out->sin6_addr.in6_u.u6_addr32[3] = origin->destination.addr[3];
        out->sin6_scope_id = 0;
        ctx->optlen = sizeof(*out);
    }
    ctx->retval = 0;
    count(origin->workload, COUNTER_ORIGINAL_DST_ANSWERED, 1);
    return 1;
}

// Inbound capture: a SYN to any non-excluded port of the workload is handed to the proxy's
// inbound listener (bpf_sk_assign). The kernel then builds the connection from the packet's
// own addresses, so the accepted socket's local address is the original destination, and the
// rest of the flow finds that socket by its 4-tuple without further help.
SEC("tc")
int sluice_inbound(struct __sk_buff *skb) {
    struct capture_config *cfg = current_config();
    if (!cfg) return TC_ACT_OK;
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end) return TC_ACT_OK;
    struct bpf_sock_tuple tuple = {};
    __u32 tuple_size;
    struct tcphdr *tcp;
    struct flow_key flow = {};
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end) return TC_ACT_OK;
        if (ip->protocol != IPPROTO_TCP_NUM || ip->ihl < 5) return TC_ACT_OK;
        tcp = (void *)ip + ip->ihl * 4;
        if ((void *)(tcp + 1) > data_end) return TC_ACT_OK;
        tuple.ipv4.saddr = ip->saddr;
        tuple.ipv4.daddr = ip->daddr;
        tuple.ipv4.sport = tcp->source;
        tuple.ipv4.dport = bpf_htons(cfg->inbound_port);
        tuple_size = sizeof(tuple.ipv4);
        set_v4(flow.local.addr, ip->daddr);
        set_v4(flow.remote.addr, ip->saddr);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end) return TC_ACT_OK;
        // IPv6 extension headers before TCP are not walked: such SYNs are left alone.
        if (ip6->nexthdr != IPPROTO_TCP_NUM) return TC_ACT_OK;
        tcp = (void *)(ip6 + 1);
        if ((void *)(tcp + 1) > data_end) return TC_ACT_OK;
        __builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
        __builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
        tuple.ipv6.sport = tcp->source;
        tuple.ipv6.dport = bpf_htons(cfg->inbound_port);
        tuple_size = sizeof(tuple.ipv6);
        __builtin_memcpy(flow.local.addr, &ip6->daddr, 16);
        __builtin_memcpy(flow.remote.addr, &ip6->saddr, 16);
    } else {
        return TC_ACT_OK;
    }
    // Only the first packet of a new connection; the rest find the accepted socket themselves.
    if (!tcp->syn || tcp->ack) return TC_ACT_OK;
    __u16 port = bpf_ntohs(tcp->dest);
    if (port == cfg->outbound_port || port == cfg->inbound_port) return TC_ACT_OK;
    if (bpf_map_lookup_elem(&sluice_ex_ports, &port)) return TC_ACT_OK;

    struct bpf_sock *listener = bpf_skc_lookup_tcp(skb, &tuple, tuple_size, BPF_F_CURRENT_NETNS, 0);
    if (!listener) {
        // Fail closed, as the iptables mode does when the proxy is not listening.
        count(cfg->workload, COUNTER_INBOUND_NO_LISTENER, 1);
        return TC_ACT_SHOT;
    }
    if (listener->state != BPF_TCP_LISTEN) {
        bpf_sk_release(listener);
        return TC_ACT_OK;
    }
    flow.local.port = port;
    flow.remote.port = bpf_ntohs(tcp->source);
    struct origin origin = {.kind = ORIGIN_INBOUND, .role = ROLE_PROXY, .workload = cfg->workload};
    origin.destination = flow.local;
    bpf_map_update_elem(&sluice_pending, &flow, &origin, BPF_ANY);
    long assigned = bpf_sk_assign(skb, listener, 0);
    bpf_sk_release(listener);
    if (assigned == 0) count(cfg->workload, COUNTER_INBOUND_ASSIGNED, 1);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
