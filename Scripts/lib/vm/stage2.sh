#!/bin/bash
# PID 1 of the Scripts/vmtest VM once the host's root filesystem is mounted (see init, which
# also mounts /tmp and /run): mounts the remaining writable and virtual filesystems, runs the
# command the host wrote to $1/command.sh with its output on the console, records its exit
# status in $1/status and powers off.
run="$1"

mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname sluice-vm
ip link set lo up
# The host reads the console as a byte stream; no CR before each LF.
stty -onlcr < /dev/console

bash "$run/command.sh" < /dev/null > /dev/console 2>&1
status=$?
echo "$status" > "$run/status"
sync
echo o > /proc/sysrq-trigger
sleep 30
