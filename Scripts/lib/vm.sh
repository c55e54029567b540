# Host-side helpers of Scripts/vmtest: the Debian kernel it boots and the initramfs that mounts
# this machine's root filesystem inside the VM. Source it after common.sh; do not run it.

VM_SCRIPTS="$SLUICE_ROOT/Scripts/lib/vm"
# Modules the initramfs loads before the root filesystem is reachable (their dependencies are
# added by modprobe --show-depends).
VM_BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

vm_fail() {
    echo "vmtest: $*" >&2
    exit 1
}

# Installs what the VM needs, or stops naming what is missing.
vm_require_tools() {
    install_apt_packages "${VM_APT_PACKAGES[@]}" \
        || vm_fail "could not install the Debian packages ${VM_APT_PACKAGES[*]} (apt-get failed; see above)"
    local tool
    for tool in qemu-system-x86_64 busybox depmod modprobe cpio dpkg-deb apt-get; do
        command -v "$tool" >/dev/null || vm_fail "'$tool' is not on PATH (Debian packages: ${VM_APT_PACKAGES[*]})"
    done
    [ -x /bin/busybox ] || vm_fail "/bin/busybox is missing (Debian package busybox-static)"
}

# The versioned package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
vm_kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# Downloads and unpacks Debian's stock kernel into $1/kernel once; later runs reuse it.
# Sets VM_KERNEL_VERSION and VM_KERNEL_DIR (the unpacked package: boot/, lib/modules/).
vm_fetch_kernel() {
    local cache="$1"
    local kernel="$cache/kernel"
    if [ -s "$kernel/version" ]; then
        VM_KERNEL_VERSION="$(cat "$kernel/version")"
        VM_KERNEL_DIR="$kernel/tree"
        if [ -f "$VM_KERNEL_DIR/boot/vmlinuz-$VM_KERNEL_VERSION" ] \
            && [ -f "$VM_KERNEL_DIR/lib/modules/$VM_KERNEL_VERSION/modules.dep" ]; then
            return
        fi
    fi
    local package
    package="$(vm_kernel_package)"
    if [ -z "$package" ]; then
        apt-get update -qq || true
        package="$(vm_kernel_package)"
    fi
    [ -n "$package" ] || vm_fail "the apt sources have no linux-image-amd64 package (check /etc/apt/sources.list, then apt-get update)"
    log "vmtest: downloading the Debian kernel $package"
    local download
    download="$(mktemp -d "$cache/download.XXXXXX")"
    chmod 755 "$download"
    if ! (cd "$download" && apt-get download -qq "$package"); then
        apt-get update -qq || true
        (cd "$download" && apt-get download -qq "$package") || { rm -rf "$download"; vm_fail "apt-get download $package failed"; }
    fi
    dpkg-deb -x "$download"/*.deb "$download/tree" || { rm -rf "$download"; vm_fail "could not unpack $package"; }
    VM_KERNEL_VERSION="${package#linux-image-}"
    [ -d "$download/tree/lib/modules/$VM_KERNEL_VERSION" ] || { rm -rf "$download"; vm_fail "$package has no lib/modules/$VM_KERNEL_VERSION"; }
    # The package leaves modules.dep to its postinst; modprobe inside the VM needs it.
    depmod -b "$download/tree" "$VM_KERNEL_VERSION" || { rm -rf "$download"; vm_fail "depmod failed for $VM_KERNEL_VERSION"; }
    rm -f "$download"/*.deb
    rm -rf "$kernel"
    mkdir -p "$kernel"
    mv "$download/tree" "$kernel/tree"
    rmdir "$download"
    echo "$VM_KERNEL_VERSION" > "$kernel/version"
    VM_KERNEL_DIR="$kernel/tree"
}

# Builds the initramfs (busybox, the boot modules, Scripts/lib/vm/init) unless one built from
# the same inputs exists. Sets VM_INITRAMFS.
vm_build_initramfs() {
    local cache="$1"
    VM_INITRAMFS="$cache/initramfs-$VM_KERNEL_VERSION.cpio.gz"
    local key
    key="$(cat "$VM_SCRIPTS/init" "${BASH_SOURCE[0]}" <(echo "$VM_KERNEL_VERSION ${VM_BOOT_MODULES[*]}") | sha256sum | cut -d' ' -f1)"
    if [ -s "$VM_INITRAMFS" ] && [ "$(cat "$VM_INITRAMFS.key" 2>/dev/null)" = "$key" ]; then
        return
    fi
    local staging
    staging="$(mktemp -d "$cache/initramfs.XXXXXX")"
    mkdir -p "$staging"/{bin,dev,proc,sys,newroot,modules}
    cp /bin/busybox "$staging/bin/busybox"
    mknod "$staging/dev/console" c 5 1
    cp "$VM_SCRIPTS/init" "$staging/init"
    chmod 755 "$staging/init"
    local module
    : > "$staging/modules.paths"
    for module in "${VM_BOOT_MODULES[@]}"; do
        # One name per call: further arguments would be taken as module parameters.
        modprobe -d "$VM_KERNEL_DIR" -S "$VM_KERNEL_VERSION" --show-depends "$module" \
            | awk '$1 == "insmod" { print $2 }' >> "$staging/modules.paths" \
            || { rm -rf "$staging"; vm_fail "cannot resolve the boot module $module in $VM_KERNEL_DIR"; }
    done
    : > "$staging/modules/order"
    while read -r module; do
        grep -qxF "$(basename "$module")" "$staging/modules/order" && continue
        cp "$module" "$staging/modules/"
        basename "$module" >> "$staging/modules/order"
    done < "$staging/modules.paths"
    rm "$staging/modules.paths"
    (cd "$staging" && find . | cpio -o -H newc --quiet | gzip -1) > "$VM_INITRAMFS.tmp"
    mv "$VM_INITRAMFS.tmp" "$VM_INITRAMFS"
    echo "$key" > "$VM_INITRAMFS.key"
    rm -rf "$staging"
}
