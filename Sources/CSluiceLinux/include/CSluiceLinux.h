// Thin Linux shims for what Swift cannot express directly: setns, SCM_RIGHTS control
// messages (CMSG_* are macros), SO_PEERCRED and the netfilter original-destination options.
#ifndef CSLUICE_LINUX_H
#define CSLUICE_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <spawn.h>

/// Socket mark carried by every proxy socket so that capture rules skip it.
#define SLUICE_PROXY_MARK 0x539

/// Moves the calling thread into the namespace `fd` (inode `inode`) unless this thread is
/// already there, as recorded by earlier calls (a thread that never switched is in the
/// namespace with inode `home_inode`). Saves the setns on repeated use. 0 or -errno.
int sluice_switch_netns(int fd, uint64_t inode, uint64_t home_inode);

/// Creates a stream socket with close-on-exec and non-blocking set, optionally marked
/// (`mark` >= 0), SO_REUSEADDR, IPV6_V6ONLY (for AF_INET6) and IP_TRANSPARENT. fd or -errno.
int sluice_stream_socket(int family, int mark, int reuse_address, int v6only, int transparent);

/// Binds and listens. 0 or -errno.
int sluice_bind_listen(int fd, const struct sockaddr *address, socklen_t length, int backlog);

/// Reads the pre-NAT destination of a redirected connection (SO_ORIGINAL_DST for IPv4,
/// IP6T_SO_ORIGINAL_DST for IPv6) into `out`. 0 or -errno.
int sluice_original_destination(int fd, int family, struct sockaddr_storage *out, socklen_t *length);

/// Most descriptors one record carries (the hot upgrade sends sockets in batches of this size).
#define SLUICE_MAX_RECORD_FDS 64

/// Sends one SOCK_SEQPACKET record with up to `fd_count` descriptors. bytes sent or -errno.
ssize_t sluice_send_record(int socket_fd, const void *bytes, size_t length, const int *fds, int fd_count);

/// Receives one record. `*truncated` is set when the record or its control data did not fit,
/// which callers must treat as a protocol error. Received descriptors are close-on-exec.
/// bytes received (0 = orderly shutdown) or -errno.
ssize_t sluice_receive_record(int socket_fd, void *buffer, size_t capacity, int *fds, int max_fds,
                              int *fd_count, int *truncated);

/// Peer process credentials of a connected Unix socket. 0 or -errno.
int sluice_peer_credentials(int socket_fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

/// Creates a SOCK_SEQPACKET Unix socket (close-on-exec). fd or -errno.
int sluice_seqpacket_socket(void);

/// Binds a Unix socket to `path` and listens. 0 or -errno.
int sluice_unix_bind_listen(int fd, const char *path, int backlog);

/// Accepts a connection with close-on-exec set, retrying on EINTR. fd or -errno.
int sluice_accept(int listen_fd);

/// Connects a Unix socket to `path`. 0 or -errno.
int sluice_unix_connect(int fd, const char *path);

/// Device and inode of the namespace file behind `fd`: the namespace's identity. 0 or -errno.
int sluice_file_identity(int fd, uint64_t *device, uint64_t *inode);

/// A pipe with both ends close-on-exec (pipe2, a GNU extension Swift does not see). 0 or -errno.
int sluice_pipe_cloexec(int fds[2]);

/// Adds "close every descriptor from `lowest` up" to posix_spawn file actions (glibc's
/// closefrom action, a GNU extension). 0 or an errno value.
int sluice_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

/// glibc malloc: keeps up to `trim_threshold` bytes of freed memory at the top of a heap and
/// grows heaps `top_pad` bytes beyond each request (mallopt M_TRIM_THRESHOLD, M_TOP_PAD).
void sluice_keep_freed_memory(size_t trim_threshold, size_t top_pad);

#endif
