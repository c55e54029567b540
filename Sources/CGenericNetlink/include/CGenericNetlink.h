// Thin shim over libmnl for generic netlink request/response exchanges: what Swift cannot
// express directly (nlmsghdr/genlmsghdr layout, libmnl's callback-driven receive loop).
// Message attributes are added from Swift with libmnl's mnl_attr_* functions.
#ifndef CGENERIC_NETLINK_H
#define CGENERIC_NETLINK_H

#include <stddef.h>
#include <stdint.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <linux/rtnetlink.h>

/// The kernel's ip_vs.h defines these as expressions, which Swift does not import.
static const uint16_t SLUICE_IPVS_CMD_ATTR_MAX = IPVS_CMD_ATTR_MAX;
static const uint16_t SLUICE_IPVS_SVC_ATTR_MAX = IPVS_SVC_ATTR_MAX;
static const uint16_t SLUICE_IPVS_DEST_ATTR_MAX = IPVS_DEST_ATTR_MAX;
static const uint16_t SLUICE_RTA_MAX = RTA_MAX;

/// Size of a request or receive buffer (libmnl's MNL_SOCKET_BUFFER_SIZE, a sysconf expression).
size_t sluice_genl_buffer_size(void);

/// An open generic netlink socket bound to one family, in the network namespace of the thread
/// that opened it.
typedef struct sluice_genl sluice_genl;

/// Opens a NETLINK_GENERIC socket and resolves `family` (e.g. "IPVS"). 0 or -errno
/// (-ENOENT: the family is not registered, e.g. its kernel module is not loaded).
int sluice_genl_open(const char *family, sluice_genl **out);

void sluice_genl_close(sluice_genl *genl);

/// Writes a request header for `command` into `buffer` (at least MNL_SOCKET_BUFFER_SIZE bytes).
struct nlmsghdr *sluice_genl_request(sluice_genl *genl, void *buffer, uint8_t command, uint8_t version,
                                     uint16_t flags);

/// Called for each reply message; `attributes` holds the top-level attributes by type
/// (NULL where absent), up to `max_type`. Return 0 to go on, non-zero to stop with an error.
typedef int (*sluice_genl_reply_handler)(const struct nlmsghdr *message, const struct nlattr *const *attributes,
                                         void *context);

/// Sends `request` and reads replies until the kernel's acknowledgement or the end of a dump.
/// 0 or -errno (the kernel's error for the request).
int sluice_genl_exchange(sluice_genl *genl, struct nlmsghdr *request, uint16_t max_type,
                         sluice_genl_reply_handler handler, void *context);

/// Opens a NETLINK_ROUTE socket (routes, addresses) through the same handle type. 0 or -errno.
int sluice_rtnl_open(sluice_genl **out);

/// Writes a route request (RTM_NEWROUTE, RTM_DELROUTE) for the host route `address` (4 or 16
/// bytes by `family`) of type local in the local table through interface `ifindex`, tagged with
/// routing protocol `protocol` so its owner can find it again.
struct nlmsghdr *sluice_rtnl_local_route(sluice_genl *rtnl, void *buffer, uint16_t type, uint16_t flags, int family,
                                         const void *address, int ifindex, uint8_t protocol);

/// Writes a dump request for the routes of `family`.
struct nlmsghdr *sluice_rtnl_route_dump(sluice_genl *rtnl, void *buffer, int family);

/// The header fields of a route message. 0, or -EPROTO when `message` is not a route.
int sluice_rtnl_route_header(const struct nlmsghdr *message, int *family, int *destination_length, int *table,
                             int *protocol, int *type);

/// Like sluice_genl_exchange for a route socket (attributes follow a struct rtmsg).
int sluice_rtnl_exchange(sluice_genl *rtnl, struct nlmsghdr *request, uint16_t max_type,
                         sluice_genl_reply_handler handler, void *context);

/// Fills `table[0...max_type]` with the attributes nested in `nest`. 0 or -errno.
int sluice_genl_parse_nested(const struct nlattr *nest, uint16_t max_type, const struct nlattr **table);

#endif
