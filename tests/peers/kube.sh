#!/usr/bin/env bash
# Real Kubernetes control plane for the actuator tests: etcd + kube-apiserver v1.20.2 +
# kube-controller-manager (so Deployments get ReplicaSets and Pods), built once from Debian
# bookworm's `kubernetes` source package (no registry ships a kube-apiserver binary; see
# ../shared/reference/real-peers.md §4). There is no scheduler and no kubelet: pods stay Pending
# unless a test plays kubelet through the API.
#
#   kube.sh install   build the two binaries into $PEERS_CACHE/kube/bin (skipped when cached, ~4 min cold)
#   kube.sh start     etcd :12379 (peer :12380), apiserver https://127.0.0.1:17443 (RBAC, static
#                     tokens), controller-manager
#   kube.sh stop
#
# Exports: POOLPILOT_TEST_KUBECONFIG (admin kubeconfig), POOLPILOT_TEST_KUBE_SERVER,
# POOLPILOT_TEST_KUBE_ADMIN_TOKEN, POOLPILOT_TEST_KUBE_RESTRICTED_TOKEN (a user bound to no role:
# every call is 403, which the RBAC-error tests need; tests grant it narrow roles as admin).
source "$(dirname "$0")/lib.sh"

KUBE_DIR="$PEERS_CACHE/kube"
KUBE_BIN="$KUBE_DIR/bin"
KUBE_RUN="$PEERS_RUN/kube"
SRC_VERSION="1.20.5+really1.20.2"
# Below the ephemeral port range (see lib.sh); 17443, not 16443, which microk8s' apiserver uses.
ETCD_PORT=12379
ETCD_PEER_PORT=12380
API_PORT=17443
ADMIN_TOKEN="poolpilot-test-admin-token"
RESTRICTED_TOKEN="poolpilot-test-restricted-token"

install() {
  if [[ ! -f /etc/apt/sources.list.d/poolpilot-bookworm-src.sources ]]; then
    cat >/etc/apt/sources.list.d/poolpilot-bookworm-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -f "$PEERS_CACHE/.apt-updated"
  fi
  apt_install golang-go etcd-server etcd-client rsync jq openssl curl dpkg-dev \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  if [[ -x $KUBE_BIN/kube-apiserver && -x $KUBE_BIN/kube-controller-manager ]]; then
    log "kube binaries cached in $KUBE_BIN"
    return 0
  fi
  local build="$PEERS_CACHE/kube-build"
  rm -rf "$build" && mkdir -p "$build"
  log "fetching the bookworm kubernetes source package"
  (cd "$build" && apt-get source -qq kubernetes >&2)
  local tree="$build/kubernetes-$SRC_VERSION"
  [[ -d $tree ]] || { log "expected $tree after apt-get source"; return 1; }
  # Vendored reflect2 v1.0.1 dereferences nil under Go >= 1.18 (json-iterator map decoding; a PATCH
  # of .../deployments/x/scale crashed the handler). Swap in Debian's reflect2 1.0.2 + json-iterator 1.1.12.
  local p
  for p in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    rm -rf "$tree/vendor/$p" && mkdir -p "$tree/vendor/$p"
    cp -r "/usr/share/gocode/src/$p/." "$tree/vendor/$p/"
    find "$tree/vendor/$p" -name '*_test.go' -delete
  done
  mkdir -p "$tree/.go/src/k8s.io" && ln -sfn ../../.. "$tree/.go/src/k8s.io/kubernetes"
  log "building kube-apiserver + kube-controller-manager (~4 min)"
  (cd "$tree" && GOPATH="$tree/.go" GOPROXY=off CGO_ENABLED=0 HOME="$build/home" \
    GOCACHE="$build/gocache" KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$build/make.log" 2>&1) || {
    tail -30 "$build/make.log" >&2
    return 1
  }
  mkdir -p "$KUBE_BIN"
  cp "$tree/_output/bin/kube-apiserver" "$tree/_output/bin/kube-controller-manager" "$KUBE_BIN/"
  # The tree, _output and the Go cache are ~3 GB; only the two binaries are worth keeping.
  rm -rf "$build"
  log "kube binaries built into $KUBE_BIN"
}

write_config() {
  mkdir -p "$KUBE_RUN"
  [[ -f $KUBE_RUN/sa.key ]] || {
    openssl genrsa -out "$KUBE_RUN/sa.key" 2048 2>/dev/null
    openssl rsa -in "$KUBE_RUN/sa.key" -pubout -out "$KUBE_RUN/sa.pub" 2>/dev/null
  }
  cat >"$KUBE_RUN/tokens.csv" <<EOF
$ADMIN_TOKEN,admin,admin-uid,system:masters
$RESTRICTED_TOKEN,poolpilot-restricted,restricted-uid,poolpilot-testers
EOF
  kubeconfig_for "$ADMIN_TOKEN" >"$KUBE_RUN/kubeconfig"
  kubeconfig_for "$RESTRICTED_TOKEN" >"$KUBE_RUN/kubeconfig-restricted"
}

kubeconfig_for() {
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: poolpilot-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    insecure-skip-tls-verify: true
users:
- name: poolpilot-test-user
  user:
    token: $1
contexts:
- name: poolpilot-test
  context:
    cluster: poolpilot-test
    user: poolpilot-test-user
    namespace: default
current-context: poolpilot-test
EOF
}

apiserver_ready() {
  [[ "$(curl -sk --max-time 2 -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$API_PORT/readyz")" == ok ]]
}

start() {
  [[ -x $KUBE_BIN/kube-apiserver ]] || { log "kube not installed; run: $0 install"; return 1; }
  stop_all_quietly
  need_ports kube "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT"
  write_config
  # Fresh state every start: tests create their own namespaces and must not see a previous run's.
  rm -rf "$KUBE_RUN/etcd" "$KUBE_RUN/certs"
  start_bg kube-etcd etcd --name poolpilot --data-dir "$KUBE_RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "poolpilot=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
  wait_http "http://127.0.0.1:$ETCD_PORT/health" 30 || peer_failed "kube (etcd)" "$PEERS_RUN/kube-etcd.log" "$ETCD_PORT" "$ETCD_PEER_PORT"
  start_bg kube-apiserver "$KUBE_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$KUBE_RUN/certs" --insecure-port=0 --token-auth-file="$KUBE_RUN/tokens.csv" \
    --authorization-mode=RBAC --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$KUBE_RUN/sa.pub" --service-account-signing-key-file="$KUBE_RUN/sa.key" \
    --service-cluster-ip-range=10.96.0.0/24 --enable-admission-plugins=NamespaceLifecycle,ServiceAccount
  wait_for "kube-apiserver" 90 apiserver_ready || peer_failed "kube (kube-apiserver)" "$PEERS_RUN/kube-apiserver.log" "$API_PORT"
  # nodelifecycle is off: tests register fake nodes without heartbeats, which would go NotReady.
  start_bg kube-controller-manager "$KUBE_BIN/kube-controller-manager" --kubeconfig="$KUBE_RUN/kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=0 --port=0 \
    --controllers='*,-nodelifecycle' --service-account-private-key-file="$KUBE_RUN/sa.key"
  # Ready once its serviceaccount controller has created the default namespace's account.
  wait_for "kube-controller-manager" 60 curl -skf --max-time 2 -H "Authorization: Bearer $ADMIN_TOKEN" \
    "https://127.0.0.1:$API_PORT/api/v1/namespaces/default/serviceaccounts/default" ||
    peer_failed "kube (kube-controller-manager)" "$PEERS_RUN/kube-controller-manager.log"
  echo "export POOLPILOT_TEST_KUBECONFIG=$KUBE_RUN/kubeconfig"
  echo "export POOLPILOT_TEST_KUBE_SERVER=https://127.0.0.1:$API_PORT"
  echo "export POOLPILOT_TEST_KUBE_ADMIN_TOKEN=$ADMIN_TOKEN"
  echo "export POOLPILOT_TEST_KUBE_RESTRICTED_TOKEN=$RESTRICTED_TOKEN"
}

stop_all_quietly() {
  stop_pid kube-controller-manager 10
  stop_pid kube-apiserver 15
  stop_pid kube-etcd 10
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_all_quietly ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
