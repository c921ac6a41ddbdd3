# shellcheck shell=bash
# Shared helpers for ops/scripts/*.sh (sourced, not executed).

# Repository root, whatever the caller's working directory.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export REPO_ROOT

NAMESPACE=${NAMESPACE:-mail-app}
# Where the scripts install CLIs: no sudo; put it on PATH (kubectl finds plugins there too).
INSTALL_DIR=${INSTALL_DIR:-$HOME/.local/bin}

info() { printf '%s\n' "$*"; }
warn() { printf '警告: %s\n' "$*" >&2; }
die() { printf 'エラー: %s\n' "$*" >&2; exit 1; }

# run CMD...: show the command, run it, and keep going if it fails (for read-only status
# commands in the learning scenarios, where a missing cluster should not abort the guide).
run() {
  printf '$ %s\n' "$*"
  "$@" || warn "コマンドが失敗しました（クラスタへの接続と、前の手順が済んでいるかを確認してください）"
}

require() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' が見つかりません: $2"
}

# linux-amd64 / linux-arm64 / darwin-arm64 ... as used by the Argo release assets
os_arch() {
  local os arch
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "未対応のアーキテクチャです: $(uname -m)" ;;
  esac
  printf '%s-%s' "$os" "$arch"
}

# install_binary URL NAME: download a pinned release binary into $INSTALL_DIR (no sudo).
install_binary() {
  local url=$1 name=$2 tmp
  mkdir -p "$INSTALL_DIR"
  tmp=$(mktemp)
  info "ダウンロード: $url"
  curl -fsSL -o "$tmp" "$url" || { rm -f "$tmp"; die "ダウンロードに失敗しました: $url"; }
  install -m 0755 "$tmp" "$INSTALL_DIR/$name"
  rm -f "$tmp"
  case ":$PATH:" in
    *":$INSTALL_DIR:"*) ;;
    *) warn "$INSTALL_DIR が PATH にありません: export PATH=\"$INSTALL_DIR:\$PATH\"" ;;
  esac
}

# cluster_kind: minikube | kind | other, from the current kubectl context
cluster_kind() {
  local ctx
  ctx=$(kubectl config current-context 2>/dev/null || true)
  case "$ctx" in
    minikube) echo minikube ;;
    kind-*) echo kind ;;
    *) echo other ;;
  esac
}
