#!/usr/bin/env bash
# Argo Rollouts コントローラと kubectl プラグインをインストールする。
#   ops/scripts/setup-rollouts.sh
#   ROLLOUTS_VERSION=v1.9.1 ops/scripts/setup-rollouts.sh   # バージョン固定（latest は使わない）
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ROLLOUTS_VERSION=${ROLLOUTS_VERSION:-v1.9.1}
require kubectl "https://kubernetes.io/docs/tasks/tools/ を参照"
require curl "apt-get install curl"

info "=== Argo Rollouts ${ROLLOUTS_VERSION} セットアップ開始 ==="
kubectl create namespace argo-rollouts --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n argo-rollouts --server-side --force-conflicts \
  -f "https://github.com/argoproj/argo-rollouts/releases/download/${ROLLOUTS_VERSION}/install.yaml"

info "Argo Rollouts コントローラの起動を待機中..."
# Deployment 名は argo-rollouts（argo-rollouts-controller ではない）
kubectl wait --for=condition=available --timeout=300s deployment/argo-rollouts -n argo-rollouts

if ! kubectl argo rollouts version >/dev/null 2>&1; then
  info "=== kubectl プラグイン ${ROLLOUTS_VERSION} を ${INSTALL_DIR} にインストール（sudo 不要）==="
  install_binary \
    "https://github.com/argoproj/argo-rollouts/releases/download/${ROLLOUTS_VERSION}/kubectl-argo-rollouts-$(os_arch)" \
    kubectl-argo-rollouts
fi

info ""
info "=== Rollouts Dashboard ==="
info "起動: kubectl argo rollouts dashboard -n ${NAMESPACE}"
info "URL:  http://localhost:3100"
info ""
info "次の手順: ops/scripts/deploy-rollout.sh"
info "=== セットアップ完了 ==="
