#define _GNU_SOURCE
#include "CSluiceLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <spawn.h>
#include <unistd.h>

// From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, which clash with netinet/in.h.
#define SLUICE_SO_ORIGINAL_DST 80
#define SLUICE_IP6T_SO_ORIGINAL_DST 80

// The namespace inode this thread was last switched into; 0 until the first switch.
static __thread uint64_t thread_netns_inode = 0;

int sluice_switch_netns(int fd, uint64_t inode, uint64_t home_inode) {
    uint64_t current = thread_netns_inode ? thread_netns_inode : home_inode;
    if (current == inode) return 0;
    if (setns(fd, CLONE_NEWNET) != 0) return -errno;
    thread_netns_inode = inode;
    return 0;
}

static int set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof(value)) == 0 ? 0 : -errno;
}

int sluice_stream_socket(int family, int mark, int reuse_address, int v6only, int transparent) {
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int rc = 0;
    if (mark >= 0) rc = set_int_option(fd, SOL_SOCKET, SO_MARK, mark);
    if (rc == 0 && reuse_address) rc = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && family == AF_INET6) rc = set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? 1 : 0);
    if (rc == 0 && transparent) {
        rc = family == AF_INET6 ? set_int_option(fd, SOL_IPV6, IPV6_TRANSPARENT, 1)
                                : set_int_option(fd, SOL_IP, IP_TRANSPARENT, 1);
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int sluice_bind_listen(int fd, const struct sockaddr *address, socklen_t length, int backlog) {
    if (bind(fd, address, length) != 0) return -errno;
    if (listen(fd, backlog) != 0) return -errno;
    return 0;
}

int sluice_original_destination(int fd, int family, struct sockaddr_storage *out, socklen_t *length) {
    *length = sizeof(*out);
    memset(out, 0, sizeof(*out));
    int rc;
    if (family == AF_INET6) {
        rc = getsockopt(fd, SOL_IPV6, SLUICE_IP6T_SO_ORIGINAL_DST, out, length);
    } else {
        rc = getsockopt(fd, SOL_IP, SLUICE_SO_ORIGINAL_DST, out, length);
    }
    return rc == 0 ? 0 : -errno;
}

ssize_t sluice_send_record(int socket_fd, const void *bytes, size_t length, const int *fds, int fd_count) {
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = length};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1};
    char control[CMSG_SPACE(sizeof(int) * SLUICE_MAX_RECORD_FDS)];
    if (fd_count > SLUICE_MAX_RECORD_FDS) return -E2BIG;
    if (fd_count > 0) {
        memset(control, 0, sizeof(control));
        message.msg_control = control;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * fd_count);
    }
    ssize_t sent;
    do {
        sent = sendmsg(socket_fd, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -errno : sent;
}

ssize_t sluice_receive_record(int socket_fd, void *buffer, size_t capacity, int *fds, int max_fds,
                              int *fd_count, int *truncated) {
    struct iovec iov = {.iov_base = buffer, .iov_len = capacity};
    char control[CMSG_SPACE(sizeof(int) * SLUICE_MAX_RECORD_FDS)];
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof(control)};
    *fd_count = 0;
    *truncated = 0;
    ssize_t received;
    do {
        received = recvmsg(socket_fd, &message, MSG_CMSG_CLOEXEC);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return -errno;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL;
         header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received_fds = (int *)CMSG_DATA(header);
        for (int i = 0; i < count; i++) {
            if (*fd_count < max_fds) {
                fds[(*fd_count)++] = received_fds[i];
            } else {
                close(received_fds[i]);  // more descriptors than the caller accepts: never leak them
                *truncated = 1;
            }
        }
    }
    if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = 1;
    return received;
}

int sluice_peer_credentials(int socket_fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -errno;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int sluice_seqpacket_socket(void) {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

static int fill_unix_address(struct sockaddr_un *address, const char *path) {
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(address->sun_path)) return -ENAMETOOLONG;
    strcpy(address->sun_path, path);
    return 0;
}

int sluice_unix_bind_listen(int fd, const char *path, int backlog) {
    struct sockaddr_un address;
    int rc = fill_unix_address(&address, path);
    if (rc != 0) return rc;
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0) return -errno;
    if (listen(fd, backlog) != 0) return -errno;
    return 0;
}

int sluice_accept(int listen_fd) {
    int fd;
    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    return fd < 0 ? -errno : fd;
}

int sluice_unix_connect(int fd, const char *path) {
    struct sockaddr_un address;
    int rc = fill_unix_address(&address, path);
    if (rc != 0) return rc;
    int result;
    do {
        result = connect(fd, (struct sockaddr *)&address, sizeof(address));
    } while (result != 0 && errno == EINTR);
    return result == 0 ? 0 : -errno;
}

int sluice_file_identity(int fd, uint64_t *device, uint64_t *inode) {
    struct stat status;
    if (fstat(fd, &status) != 0) return -errno;
    *device = (uint64_t)status.st_dev;
    *inode = (uint64_t)status.st_ino;
    return 0;
}

int sluice_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int sluice_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

void sluice_keep_freed_memory(size_t trim_threshold, size_t top_pad) {
    mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    mallopt(M_TOP_PAD, (int)top_pad);
}
