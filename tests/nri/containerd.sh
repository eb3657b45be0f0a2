#!/bin/sh
# containerd.sh ROOT DIR: runs the containerd of the trixie root ROOT (made by tests/nri/mod.rs)
# with its configuration, state and sockets in DIR, chrooted in a private mount namespace; the
# process becomes containerd (exec). Shared by tests/nri/ and benches/nri.sh.
#
# The configuration: NRI on (its socket DIR/run/nri/nri.sock as the host sees it, plugins from
# DIR/plugins), the native snapshotter, the imported image as the pods' sandbox image, and
# oom_score_adj never below containerd's own (root may lack CAP_SYS_RESOURCE, as in some
# sandboxes). DIR is also /mnt/test inside, where image archives are imported from.
set -eu
root=$1 dir=$2
if [ -z "${LLLQOS_NRI_NAMESPACE:-}" ]; then
    mkdir -p "$dir/run" "$dir/lib" "$dir/etc" "$dir/plugins" \
        "$root/var/lib/containerd" "$root/etc/containerd" "$root/opt/nri/plugins" "$root/mnt/test"
    cat >"$dir/etc/config.toml" <<'TOML'
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "/var/run/nri/nri.sock"
  plugin_path = "/opt/nri/plugins"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "lllqos.test/busybox:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
TOML
    LLLQOS_NRI_NAMESPACE=1 exec unshare -m sh "$0" "$@"
fi
mount --make-rprivate /
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount --bind "$dir/run" "$root/run"
mount --bind "$dir/lib" "$root/var/lib/containerd"
mount --bind "$dir/etc" "$root/etc/containerd"
mount --bind "$dir/plugins" "$root/opt/nri/plugins"
mount --bind "$dir" "$root/mnt/test"
exec chroot "$root" containerd --config /etc/containerd/config.toml
