#include "CGenericNetlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

struct sluice_genl {
    struct mnl_socket *socket;
    uint16_t family;
    uint32_t port;
    uint32_t sequence;
};

struct attribute_table {
    const struct nlattr **table;
    uint16_t max_type;
};

static int store_attribute(const struct nlattr *attribute, void *data) {
    struct attribute_table *table = data;
    uint16_t type = mnl_attr_get_type(attribute);
    // Attributes newer than this build knows are skipped, not rejected.
    if (type <= table->max_type) table->table[type] = attribute;
    return MNL_CB_OK;
}

struct family_lookup {
    uint16_t id;
};

static int store_family_id(const struct nlmsghdr *message, void *data) {
    const struct nlattr *table[CTRL_ATTR_MAX + 1] = {0};
    struct attribute_table attributes = {table, CTRL_ATTR_MAX};
    if (mnl_attr_parse(message, sizeof(struct genlmsghdr), store_attribute, &attributes) < 0) return MNL_CB_ERROR;
    if (table[CTRL_ATTR_FAMILY_ID]) ((struct family_lookup *)data)->id = mnl_attr_get_u16(table[CTRL_ATTR_FAMILY_ID]);
    return MNL_CB_OK;
}

static struct nlmsghdr *put_header(void *buffer, uint16_t type, uint16_t flags, uint32_t sequence, uint8_t command,
                                   uint8_t version) {
    struct nlmsghdr *message = mnl_nlmsg_put_header(buffer);
    message->nlmsg_type = type;
    message->nlmsg_flags = NLM_F_REQUEST | flags;
    message->nlmsg_seq = sequence;
    struct genlmsghdr *header = mnl_nlmsg_put_extra_header(message, sizeof(struct genlmsghdr));
    header->cmd = command;
    header->version = version;
    return message;
}

static int run_exchange(sluice_genl *genl, struct nlmsghdr *request, mnl_cb_t callback, void *data) {
    if (mnl_socket_sendto(genl->socket, request, request->nlmsg_len) < 0) return -errno;
    char *buffer = malloc(MNL_SOCKET_BUFFER_SIZE);
    if (!buffer) return -ENOMEM;
    int result = 0;
    for (;;) {
        ssize_t received = mnl_socket_recvfrom(genl->socket, buffer, MNL_SOCKET_BUFFER_SIZE);
        if (received < 0) {
            result = -errno;
            break;
        }
        int status = mnl_cb_run(buffer, (size_t)received, request->nlmsg_seq, genl->port, callback, data);
        if (status == MNL_CB_STOP) break;
        if (status == MNL_CB_ERROR) {
            // libmnl sets errno from the kernel's NLMSG_ERROR (or the handler's failure).
            result = errno ? -errno : -EPROTO;
            break;
        }
    }
    free(buffer);
    return result;
}

size_t sluice_genl_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }

int sluice_genl_open(const char *family, sluice_genl **out) {
    sluice_genl *genl = calloc(1, sizeof *genl);
    if (!genl) return -ENOMEM;
    genl->socket = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
    if (!genl->socket || mnl_socket_bind(genl->socket, 0, MNL_SOCKET_AUTOPID) < 0) {
        int error = errno;
        if (genl->socket) mnl_socket_close(genl->socket);
        free(genl);
        return -error;
    }
    genl->port = mnl_socket_get_portid(genl->socket);
    genl->sequence = (uint32_t)time(NULL);

    char buffer[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *request = put_header(buffer, GENL_ID_CTRL, NLM_F_ACK, ++genl->sequence, CTRL_CMD_GETFAMILY, 1);
    mnl_attr_put_strz(request, CTRL_ATTR_FAMILY_NAME, family);
    struct family_lookup lookup = {0};
    errno = 0;
    int result = run_exchange(genl, request, store_family_id, &lookup);
    if (result == 0 && lookup.id == 0) result = -ENOENT;
    if (result != 0) {
        sluice_genl_close(genl);
        return result;
    }
    genl->family = lookup.id;
    *out = genl;
    return 0;
}

void sluice_genl_close(sluice_genl *genl) {
    if (!genl) return;
    mnl_socket_close(genl->socket);
    free(genl);
}

struct nlmsghdr *sluice_genl_request(sluice_genl *genl, void *buffer, uint8_t command, uint8_t version,
                                     uint16_t flags) {
    return put_header(buffer, genl->family, flags, ++genl->sequence, command, version);
}

struct reply_dispatch {
    sluice_genl_reply_handler handler;
    void *context;
    uint16_t max_type;
    size_t header_size;
};

static int dispatch_reply(const struct nlmsghdr *message, void *data) {
    struct reply_dispatch *dispatch = data;
    const struct nlattr **table = calloc((size_t)dispatch->max_type + 1, sizeof *table);
    if (!table) {
        errno = ENOMEM;
        return MNL_CB_ERROR;
    }
    struct attribute_table attributes = {table, dispatch->max_type};
    int status = MNL_CB_OK;
    if (mnl_attr_parse(message, dispatch->header_size, store_attribute, &attributes) < 0) {
        errno = EPROTO;
        status = MNL_CB_ERROR;
    } else if (dispatch->handler && dispatch->handler(message, table, dispatch->context) != 0) {
        errno = EPROTO;
        status = MNL_CB_ERROR;
    }
    free(table);
    return status;
}

int sluice_genl_exchange(sluice_genl *genl, struct nlmsghdr *request, uint16_t max_type,
                         sluice_genl_reply_handler handler, void *context) {
    // Requests that change state ask for an ACK so their failure is reported; dumps end in DONE.
    // NLM_F_DUMP is two bits, one of which doubles as NLM_F_EXCL on new-object requests.
    if ((request->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) request->nlmsg_flags |= NLM_F_ACK;
    struct reply_dispatch dispatch = {handler, context, max_type, sizeof(struct genlmsghdr)};
    errno = 0;
    return run_exchange(genl, request, dispatch_reply, &dispatch);
}

int sluice_rtnl_open(sluice_genl **out) {
    sluice_genl *rtnl = calloc(1, sizeof *rtnl);
    if (!rtnl) return -ENOMEM;
    rtnl->socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!rtnl->socket || mnl_socket_bind(rtnl->socket, 0, MNL_SOCKET_AUTOPID) < 0) {
        int error = errno;
        if (rtnl->socket) mnl_socket_close(rtnl->socket);
        free(rtnl);
        return -error;
    }
    rtnl->port = mnl_socket_get_portid(rtnl->socket);
    rtnl->sequence = (uint32_t)time(NULL);
    *out = rtnl;
    return 0;
}

static struct rtmsg *put_route_header(sluice_genl *rtnl, void *buffer, uint16_t type, uint16_t flags, int family,
                                      struct nlmsghdr **message) {
    *message = mnl_nlmsg_put_header(buffer);
    (*message)->nlmsg_type = type;
    (*message)->nlmsg_flags = NLM_F_REQUEST | flags;
    (*message)->nlmsg_seq = ++rtnl->sequence;
    struct rtmsg *route = mnl_nlmsg_put_extra_header(*message, sizeof(struct rtmsg));
    route->rtm_family = (unsigned char)family;
    return route;
}

struct nlmsghdr *sluice_rtnl_local_route(sluice_genl *rtnl, void *buffer, uint16_t type, uint16_t flags, int family,
                                         const void *address, int ifindex, uint8_t protocol) {
    struct nlmsghdr *message;
    struct rtmsg *route = put_route_header(rtnl, buffer, type, flags, family, &message);
    size_t length = family == AF_INET ? 4 : 16;
    route->rtm_dst_len = (unsigned char)(length * 8);
    route->rtm_table = RT_TABLE_LOCAL;
    route->rtm_protocol = protocol;
    route->rtm_scope = RT_SCOPE_HOST;
    route->rtm_type = RTN_LOCAL;
    mnl_attr_put(message, RTA_DST, length, address);
    mnl_attr_put_u32(message, RTA_OIF, (uint32_t)ifindex);
    mnl_attr_put_u32(message, RTA_TABLE, RT_TABLE_LOCAL);
    return message;
}

struct nlmsghdr *sluice_rtnl_route_dump(sluice_genl *rtnl, void *buffer, int family) {
    struct nlmsghdr *message;
    put_route_header(rtnl, buffer, RTM_GETROUTE, NLM_F_DUMP, family, &message);
    return message;
}

int sluice_rtnl_route_header(const struct nlmsghdr *message, int *family, int *destination_length, int *table,
                             int *protocol, int *type) {
    if (message->nlmsg_type != RTM_NEWROUTE || message->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg))) return -EPROTO;
    const struct rtmsg *route = mnl_nlmsg_get_payload(message);
    *family = route->rtm_family;
    *destination_length = route->rtm_dst_len;
    *table = route->rtm_table;
    *protocol = route->rtm_protocol;
    *type = route->rtm_type;
    return 0;
}

int sluice_rtnl_exchange(sluice_genl *rtnl, struct nlmsghdr *request, uint16_t max_type,
                         sluice_genl_reply_handler handler, void *context) {
    // NLM_F_DUMP is two bits, one of which doubles as NLM_F_EXCL on new-object requests.
    if ((request->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) request->nlmsg_flags |= NLM_F_ACK;
    struct reply_dispatch dispatch = {handler, context, max_type, sizeof(struct rtmsg)};
    errno = 0;
    return run_exchange(rtnl, request, dispatch_reply, &dispatch);
}

int sluice_genl_parse_nested(const struct nlattr *nest, uint16_t max_type, const struct nlattr **table) {
    memset(table, 0, ((size_t)max_type + 1) * sizeof *table);
    struct attribute_table attributes = {table, max_type};
    return mnl_attr_parse_nested(nest, store_attribute, &attributes) < 0 ? -EPROTO : 0;
}
