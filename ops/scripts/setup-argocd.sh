#!/usr/bin/env bash
# Argo CD をクラスタにインストールし、CLI を入れ、初期パスワードを表示する。
#   ops/scripts/setup-argocd.sh
#   ARGOCD_VERSION=v3.5.1 ops/scripts/setup-argocd.sh   # バージョン固定（latest は使わない）
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ARGOCD_VERSION=${ARGOCD_VERSION:-v3.5.1}
require kubectl "https://kubernetes.io/docs/tasks/tools/ を参照"
require curl "apt-get install curl"

info "=== Argo CD ${ARGOCD_VERSION} セットアップ開始 ==="
kubectl create namespace argocd --dry-run=client -o yaml | kubectl apply -f -

# CRD が大きいため server-side apply（client-side apply は annotation のサイズ上限に当たる）
kubectl apply -n argocd --server-side --force-conflicts \
  -f "https://raw.githubusercontent.com/argoproj/argo-cd/${ARGOCD_VERSION}/manifests/install.yaml"

info "Argo CD Server の起動を待機中..."
kubectl wait --for=condition=available --timeout=300s deployment/argocd-server -n argocd

if ! command -v argocd >/dev/null 2>&1; then
  info "=== Argo CD CLI ${ARGOCD_VERSION} を ${INSTALL_DIR} にインストール（sudo 不要）==="
  install_binary "https://github.com/argoproj/argo-cd/releases/download/${ARGOCD_VERSION}/argocd-$(os_arch)" argocd
fi

info ""
info "=== Argo CD 初期設定情報 ==="
info "Username: admin"
printf 'Password: '
kubectl -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d
info ""
info ""
info "=== アクセス方法 ==="
info "GUI: kubectl port-forward svc/argocd-server -n argocd 8080:443"
info "URL: https://localhost:8080  （自己署名証明書の警告は想定どおり）"
info "CLI: argocd login localhost:8080 --username admin --insecure"
info ""
info "次の手順: ops/scripts/deploy-app.sh"
info "=== セットアップ完了 ==="
