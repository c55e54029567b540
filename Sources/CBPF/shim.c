#include "CBPF.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <linux/magic.h>

// tcx attach type from linux/bpf.h of Linux 6.6; Debian 12's headers predate it.
#define SLUICE_BPF_TCX_INGRESS 46

// libbpf reports through one process-wide callback; each loading thread collects its own.
static __thread char *log_buffer = NULL;
static __thread size_t log_capacity = 0;
static __thread size_t log_used = 0;

static int collect_libbpf_output(enum libbpf_print_level level, const char *format, va_list arguments) {
    if (level == LIBBPF_DEBUG || log_buffer == NULL || log_used + 1 >= log_capacity) return 0;
    int written = vsnprintf(log_buffer + log_used, log_capacity - log_used, format, arguments);
    if (written > 0) log_used += (size_t)written < log_capacity - log_used ? (size_t)written : log_capacity - log_used - 1;
    return 0;
}

// The index of `name` in the comma-separated `list`, or -1.
static int position(const char *list, const char *name) {
    size_t length = strlen(name);
    int index = 0;
    for (const char *item = list; item != NULL && *item != 0; index++) {
        const char *end = strchr(item, ',');
        size_t item_length = end ? (size_t)(end - item) : strlen(item);
        if (item_length == length && strncmp(item, name, length) == 0) return index;
        item = end ? end + 1 : NULL;
    }
    return -1;
}

// Selects the programs to load and the maps to reuse; 0 or -errno.
static int prepare(struct bpf_object *object, const char *programs, const char *shared_maps, const int *shared_fds,
                   size_t shared_count) {
    struct bpf_program *program;
    bpf_object__for_each_program(program, object) {
        int rc = bpf_program__set_autoload(program, position(programs, bpf_program__name(program)) >= 0);
        if (rc != 0) return rc;
    }
    struct bpf_map *map;
    bpf_object__for_each_map(map, object) {
        int index = shared_maps ? position(shared_maps, bpf_map__name(map)) : -1;
        if (index < 0) continue;
        if ((size_t)index >= shared_count) return -EINVAL;
        int rc = bpf_map__reuse_fd(map, shared_fds[index]);
        if (rc != 0) return rc;
    }
    return 0;
}

struct bpf_object *sluice_bpf_load(
    const void *bytes, size_t length, const char *name, const char *programs, const char *shared_maps,
    const int *shared_fds, size_t shared_count, char *error, size_t error_length) {
    libbpf_set_print(collect_libbpf_output);
    if (error_length > 0) error[0] = 0;
    log_buffer = error;
    log_capacity = error_length;
    log_used = 0;
    LIBBPF_OPTS(bpf_object_open_opts, options, .object_name = name);
    struct bpf_object *object = bpf_object__open_mem(bytes, length, &options);
    long rc = libbpf_get_error(object);
    if (rc != 0) {
        object = NULL;
    } else if ((rc = prepare(object, programs, shared_maps, shared_fds, shared_count)) != 0 || (rc = bpf_object__load(object)) != 0) {
        bpf_object__close(object);
        object = NULL;
    }
    if (object == NULL && error_length > 0 && log_used == 0) {
        snprintf(error, error_length, "%s", strerror(rc < 0 ? (int)-rc : (int)rc));
    }
    log_buffer = NULL;
    log_capacity = 0;
    return object;
}

void sluice_bpf_close(struct bpf_object *object) { bpf_object__close(object); }

int sluice_bpf_program_fd(struct bpf_object *object, const char *name) {
    struct bpf_program *program = bpf_object__find_program_by_name(object, name);
    if (program == NULL) return -ENOENT;
    return bpf_program__fd(program);
}

int sluice_bpf_map_fd(struct bpf_object *object, const char *name) {
    struct bpf_map *map = bpf_object__find_map_by_name(object, name);
    if (map == NULL) return -ENOENT;
    return bpf_map__fd(map);
}

int sluice_bpf_link_cgroup(int program_fd, int cgroup_fd, enum sluice_cgroup_hook hook) {
    enum bpf_attach_type type;
    switch (hook) {
    case SLUICE_HOOK_CONNECT4: type = BPF_CGROUP_INET4_CONNECT; break;
    case SLUICE_HOOK_CONNECT6: type = BPF_CGROUP_INET6_CONNECT; break;
    case SLUICE_HOOK_SOCK_OPS: type = BPF_CGROUP_SOCK_OPS; break;
    case SLUICE_HOOK_GETSOCKOPT: type = BPF_CGROUP_GETSOCKOPT; break;
    default: return -EINVAL;
    }
    int fd = bpf_link_create(program_fd, cgroup_fd, type, NULL);
    return fd < 0 ? -errno : fd;
}

int sluice_bpf_link_tcx_ingress(int program_fd, int ifindex) {
    int fd = bpf_link_create(program_fd, ifindex, (enum bpf_attach_type)SLUICE_BPF_TCX_INGRESS, NULL);
    return fd < 0 ? -errno : fd;
}

int sluice_bpf_attach_sk_msg(int program_fd, int map_fd) {
    return bpf_prog_attach(program_fd, map_fd, BPF_SK_MSG_VERDICT, 0) == 0 ? 0 : -errno;
}

int sluice_bpf_map_update(int map_fd, const void *key, const void *value) {
    return bpf_map_update_elem(map_fd, key, value, BPF_ANY) == 0 ? 0 : -errno;
}

int sluice_bpf_map_lookup(int map_fd, const void *key, void *value) {
    return bpf_map_lookup_elem(map_fd, key, value) == 0 ? 0 : -errno;
}

int sluice_bpf_link_ids(int link_fd, uint32_t *link_id, uint32_t *program_id) {
    struct bpf_link_info info;
    memset(&info, 0, sizeof(info));
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(link_fd, &info, &length) != 0) return -errno;
    *link_id = info.id;
    *program_id = info.prog_id;
    return 0;
}

int sluice_is_cgroup2(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -errno;
    return info.f_type == CGROUP2_SUPER_MAGIC ? 1 : 0;
}
