# Real nodes for the test cluster: sourced by e2e/cluster, never run on its own.
#
# Node k of a cluster is a kubelet registered as $SUBNET.k (127.0.0.k by default) with its own
# containerd (root, state, socket), kubelet root dir, log dir, cgroup root and certificates, all
# under $DIR/node-k. Every listener is on $SUBNET.k or a Unix socket. Only hostNetwork pods run:
# there is no kube-proxy, no cluster DNS and no registry. Images come from `e2e/cluster import`
# (ctr import into every node), the pod sandbox image is built here (e2e/pause), and containerd's
# registry hosts point at a closed loopback port, so nothing is ever pulled.
#
# The kubelet changes three host sysctls at start-up. They are saved before the first node of any
# cluster starts and restored when the last cluster with nodes goes down (a count kept in
# $HOST_STATE, one place per machine whatever SB_E2E_STATE says, taken under flock), so several
# clusters can overlap.

PAUSE_REF=switchboard.local/e2e/pause:1
HOST_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
CNI_BIN=/usr/lib/cni
HOST_STATE=/tmp/switchboard-e2e-host

# The sandbox image: e2e/pause/pause.c, static, FROM scratch; cached by the source's hash.
pause_image() {
  local src=$HERE/pause/pause.c h out
  h=$(sha256sum "$src" | cut -c1-12)
  out=$CACHE/pause-$h.oci.tar
  if [ ! -s "$out" ]; then
    local d
    d=$(mktemp -d)
    cc -std=c11 -D_GNU_SOURCE -O2 -static -Wall -Wextra -Werror -o "$d/pause" "$src"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$d/Containerfile"
    STORAGE_DRIVER=vfs buildah --storage-driver vfs bud --isolation chroot --quiet -t "$PAUSE_REF" "$d" >/dev/null
    STORAGE_DRIVER=vfs buildah --storage-driver vfs push --quiet "$PAUSE_REF" "oci-archive:$out.tmp:$PAUSE_REF"
    STORAGE_DRIVER=vfs buildah --storage-driver vfs rmi "$PAUSE_REF" >/dev/null 2>&1 || true
    mv "$out.tmp" "$out"
    rm -rf "$d"
  fi
  echo "$out"
}

# --- host settings the kubelet changes -------------------------------------------------------
host_settings() { # take NAME | release NAME
  local lock=$HOST_STATE/lock users=$HOST_STATE/users saved=$HOST_STATE/saved
  mkdir -p "$users"
  (
    flock 9
    if [ "$1" = take ]; then
      if [ ! -s "$saved" ]; then
        local s
        for s in "${HOST_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$saved.tmp"
        mv "$saved.tmp" "$saved"
      fi
      touch "$users/$2@${STATE//\//_}"
    else
      rm -f "$users/$2@${STATE//\//_}"
      if [ -s "$saved" ] && [ -z "$(ls -A "$users")" ]; then
        local line
        while read -r line; do sysctl -q -w "$line" >/dev/null || log "cannot restore $line"; done <"$saved"
        rm -f "$saved"
      fi
    fi
  ) 9>"$lock"
}

# --- cgroups (v1: every hierarchy; v2: the unified one) --------------------------------------
# cgroup_dirs PATH [all]: one directory per hierarchy. The unified (v2) hierarchy of a hybrid
# machine holds no controllers, so the cgroup root is not created there, but runc places pods
# in it too: with "all" it is listed as well, for finding processes and removing cgroups.
cgroup_dirs() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "/sys/fs/cgroup/$1"
    return
  fi
  local h
  for h in /sys/fs/cgroup/*/; do
    case "$h" in */unified/) [ "${2:-}" = all ] || continue ;; esac
    [ -d "$h" ] && [ ! -L "${h%/}" ] && echo "${h%/}/$1"
  done
}

cgroup_make() { # relative path
  local d
  for d in $(cgroup_dirs "$1"); do
    mkdir -p "$d"
    case "$d" in
      */cpuset/*) cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
                  cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems" ;;
    esac
  done
}

# Every process left in a node's cgroup tree (pod containers, pause); by PID.
cgroup_pids() { # relative path
  local d
  for d in $(cgroup_dirs "$1" all); do
    [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

cgroup_remove() { # relative path
  local d
  for d in $(cgroup_dirs "$1" all); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

# --- one node ---------------------------------------------------------------------------------
node_pki() { # dir addr
  local d=$1 a=$2 p=$DIR/pki
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:$a" -keyout "$d/client.key" \
    -out "$d/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/client.ext" -out "$d/client.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$a" -keyout "$d/serving.key" -out "$d/serving.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$a" >"$d/serving.ext"
  openssl x509 -req -in "$d/serving.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/serving.ext" -out "$d/serving.crt" 2>/dev/null
}

containerd_config() { # dir
  local d=$1 reg
  mkdir -p "$d/cni" "$d/certs.d"
  printf '{"cniVersion":"0.4.0","name":"lo","plugins":[{"type":"loopback"}]}\n' >"$d/cni/10-lo.conflist"
  # nothing is pulled: every registry a reference could name resolves to a closed loopback port
  for reg in docker.io registry.k8s.io ghcr.io quay.io gcr.io switchboard.local; do
    mkdir -p "$d/certs.d/$reg"
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
      >"$d/certs.d/$reg/hosts.toml"
  done
  cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri.v1alpha2", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$d/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$d/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
}

kubelet_config() { # dir addr cgroup-root
  local d=$1 a=$2 cg=$3 port hport
  port=$(free_port_on "$a"); hport=$(free_port_on "$a")
  cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$a"
port: $port
healthzBindAddress: "$a"
healthzPort: $hport
readOnlyPort: 0
tlsCertFile: $d/serving.crt
tlsPrivateKeyFile: $d/serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$d/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$cg
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
syncFrequency: 2s
fileCheckFrequency: 2s
podLogsDir: $d/logs
resolvConf: ""
clusterDNS: []
enableControllerAttachDetach: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "64Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 30
EOF
}

node_up() { # k
  local k=$1 a=$SUBNET.$1 d=$DIR/node-$1 cg
  cg=sb-e2e-$NAME-node-$k
  mkdir -p "$d/kubelet" "$d/logs" "$d/pv"
  echo "$a" >"$d/addr"
  echo "$cg" >"$d/cgroup"
  node_pki "$d" "$a"
  containerd_config "$d"
  kubelet_config "$d" "$a" "$cg"
  cgroup_make "$cg"
  PATH=/usr/sbin:/usr/bin:/sbin:/bin start_bg "node-$k-containerd" "$d/containerd.log" \
    containerd --config "$d/containerd.toml" --log-level warn
  local i
  for i in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
  ctr --address "$d/containerd.sock" -n k8s.io images import "$(pause_image)" >/dev/null
  kubeconfig_for "$d/kubeconfig" "$(cat "$DIR/apiserver.port")" "$d/client.crt" "$d/client.key"
  PATH=/usr/sbin:/usr/bin:/sbin:/bin:$CNI_BIN start_bg "node-$k-kubelet" "$d/kubelet.log" "$BIN/kubelet" \
    --config "$d/kubelet.yaml" --kubeconfig "$d/kubeconfig" --hostname-override "$a" \
    --root-dir "$d/kubelet" --cert-dir "$d/kubelet/pki" --v 0
}

free_port_on() { # addr
  python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1]); s.close()' "$1"
}

kubeconfig_for() { # file port cert key
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$2", certificate-authority: $DIR/pki/ca.crt}
users:
- name: node
  user: {client-certificate: $3, client-key: $4}
contexts:
- name: e2e
  context: {cluster: e2e, user: node}
current-context: e2e
KC
}

# Local PersistentVolumes (static, one directory each) and the StorageClass that binds them.
node_volumes() { # k count
  local k=$1 n=$2 a=$SUBNET.$1 i
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    for i in $(seq "$n"); do
      mkdir -p "$DIR/node-$k/pv/$i"
      chmod 0777 "$DIR/node-$k/pv/$i"
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-$k-$i
  labels: {switchboard.dev/e2e-node: "$a"}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: "$DIR/node-$k/pv/$i"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: ["$a"]}]
EOF
    done
  } | "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" apply --server-side --field-manager=switchboard-e2e -f - >/dev/null
}

# The node lifecycle controller is off (nothing here can fail over), so nothing removes the
# not-ready taint the kubelet registers with: remove it once the node reports Ready.
node_wait_ready() { # k
  local a=$SUBNET.$1 i kc=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")
  for i in $(seq 600); do
    if [ "$("${kc[@]}" get node "$a" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; then
      "${kc[@]}" taint node "$a" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
      return 0
    fi
    if ! kill -0 "$(cat "$DIR/node-$1-kubelet.pid")" 2>/dev/null; then
      log "kubelet of node $a exited:"; tail -20 "$DIR/node-$1/kubelet.log" >&2; return 1
    fi
    sleep 0.1
  done
  log "node $a did not become Ready:"; tail -20 "$DIR/node-$1/kubelet.log" >&2
  return 1
}

nodes_up() { # count
  local n=$1 k
  [ "$n" -gt 0 ] || return 0
  command -v containerd >/dev/null && command -v runc >/dev/null && [ -x "$CNI_BIN/loopback" ] ||
    { log "nodes need containerd, runc and containernetworking-plugins (make deps installs them)"; return 1; }
  echo "$n" >"$DIR/nodes"
  echo "$SUBNET" >"$DIR/subnet"
  host_settings take "$NAME"
  for k in $(seq "$n"); do node_up "$k"; done
  for k in $(seq "$n"); do node_wait_ready "$k" || return 1; node_volumes "$k" 8; done
  log "$n nodes Ready: $(seq -s ' ' -f "$SUBNET.%g" 1 "$n")"
}

# Import OCI archives into every node's containerd.
import_images() { # archive...
  DIR=$STATE/$NAME
  local n k f
  n=$(cat "$DIR/nodes" 2>/dev/null || echo 0)
  for k in $(seq "$n"); do
    for f in "$@"; do
      ctr --address "$DIR/node-$k/containerd.sock" -n k8s.io images import --no-unpack "$f" >/dev/null
    done
  done
}

# What is left of node k once its kubelet has stopped: containers and sandboxes (every process
# in the node's cgroup tree), then the shims; by PID.
node_kill_pods() { # k
  local d=$DIR/node-$1 cg pid
  cg=$(cat "$d/cgroup" 2>/dev/null || echo "sb-e2e-$NAME-node-$1")
  for pid in $(cgroup_pids "$cg"); do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $d/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# Once containerd has stopped: what it and the kubelet mounted below the node's directory
# (deepest first), and the node's cgroups.
node_cleanup() { # k
  local d=$DIR/node-$1 cg m i
  cg=$(cat "$d/cgroup" 2>/dev/null || echo "sb-e2e-$NAME-node-$1")
  for m in $(awk -v p="$d/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  for i in $(seq 50); do [ -z "$(cgroup_pids "$cg")" ] && break; sleep 0.1; done
  cgroup_remove "$cg"
}

# Kubelets first (so none restarts a container), then the pods, then containerd; all nodes at once.
nodes_down() {
  local n k comps=()
  n=$(cat "$DIR/nodes" 2>/dev/null || echo 0)
  [ "$n" -gt 0 ] || return 0
  for k in $(seq "$n"); do comps+=("node-$k-kubelet"); done
  stop_many "${comps[@]}"
  comps=()
  for k in $(seq "$n"); do node_kill_pods "$k"; comps+=("node-$k-containerd"); done
  stop_many "${comps[@]}"
  for k in $(seq "$n"); do node_cleanup "$k"; done
  host_settings release "$NAME"
}
