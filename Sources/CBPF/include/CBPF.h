// Thin libbpf shim for the eBPF capture mode: load an object from memory, find its programs
// and maps, and attach programs with links (plain fds: closing one detaches it).
#ifndef CBPF_H
#define CBPF_H

#include <stddef.h>
#include <stdint.h>

struct bpf_object;

/// Cgroup hooks the capture programs attach to.
enum sluice_cgroup_hook {
    SLUICE_HOOK_CONNECT4 = 0,
    SLUICE_HOOK_CONNECT6 = 1,
    SLUICE_HOOK_SOCK_OPS = 2,
    SLUICE_HOOK_GETSOCKOPT = 3,
};

/// Opens and loads (verifies) an ELF object held in memory. Only the programs named in
/// `programs` (comma-separated) are loaded; each map named in `shared_maps` (comma-separated)
/// takes the descriptor at the same index of `shared_fds` instead of being created (NULL and 0
/// for none). NULL on failure, with libbpf's messages (verifier log included) in `error`.
struct bpf_object *sluice_bpf_load(
    const void *bytes, size_t length, const char *name, const char *programs, const char *shared_maps,
    const int *shared_fds, size_t shared_count, char *error, size_t error_length);

/// Unloads the object: closes its program and map descriptors.
void sluice_bpf_close(struct bpf_object *object);

/// The descriptor of the program named `name` (its function name), or -ENOENT.
int sluice_bpf_program_fd(struct bpf_object *object, const char *name);

/// The descriptor of the map named `name`, or -ENOENT.
int sluice_bpf_map_fd(struct bpf_object *object, const char *name);

/// Attaches a program to a cgroup (directory fd) with a link. link fd or -errno.
int sluice_bpf_link_cgroup(int program_fd, int cgroup_fd, enum sluice_cgroup_hook hook);

/// Attaches a tc program to the ingress of interface `ifindex` of the calling thread's network
/// namespace with a tcx link (Linux 6.6+). link fd or -errno.
int sluice_bpf_link_tcx_ingress(int program_fd, int ifindex);

/// Attaches an sk_msg program to a SOCKHASH/SOCKMAP; it stays until the map is freed. 0 or -errno.
int sluice_bpf_attach_sk_msg(int program_fd, int map_fd);

/// bpf_map_update_elem / bpf_map_lookup_elem / bpf_map_delete_elem. 0 or -errno.
int sluice_bpf_map_update(int map_fd, const void *key, const void *value);
int sluice_bpf_map_lookup(int map_fd, const void *key, void *value);

/// The id of the program a link runs and the id of the link itself. 0 or -errno.
int sluice_bpf_link_ids(int link_fd, uint32_t *link_id, uint32_t *program_id);

/// 1 when `path` is on the cgroup v2 file system, 0 when not, -errno when it cannot be read.
int sluice_is_cgroup2(const char *path);

#endif
