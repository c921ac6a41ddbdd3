#!/usr/bin/env bash
# mail-web の Rollout（カナリア）をデプロイする。dev 環境（deploy-app.sh）の後に実行。
#   ops/scripts/deploy-rollout.sh             # ops/k8s/rollouts（分析なし）
#   ANALYSIS=1 ops/scripts/deploy-rollout.sh  # ops/k8s/rollouts-analysis（Prometheus が必要）
#
# 設計書どおりに Deployment mail-web を削除することはしない: Argo CD の selfHeal が数秒で
# 復元するため。Rollout は別ラベル (app=mail-web-rollout) で横に並べて動かす。
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

require kubectl "https://kubernetes.io/docs/tasks/tools/ を参照"
kubectl get crd rollouts.argoproj.io >/dev/null 2>&1 \
  || die "Argo Rollouts がありません。先に ops/scripts/setup-rollouts.sh を実行してください"
kubectl -n "$NAMESPACE" get pvc mail-web-data >/dev/null 2>&1 \
  || die "PVC mail-web-data がありません。先に ops/scripts/deploy-app.sh で dev 環境をデプロイしてください"

DIR=ops/k8s/rollouts
[ "${ANALYSIS:-0}" = 1 ] && DIR=ops/k8s/rollouts-analysis

info "=== Rollout デプロイ開始（${DIR}）==="
kubectl apply -k "$DIR"

info "=== Rollout 状況確認 ==="
if kubectl argo rollouts version >/dev/null 2>&1; then
  kubectl argo rollouts status mail-web-rollout -n "$NAMESPACE" --timeout 300s || warn "まだ Healthy ではありません"
  run kubectl argo rollouts get rollout mail-web-rollout -n "$NAMESPACE"
else
  warn "kubectl argo rollouts プラグインがありません（ops/scripts/setup-rollouts.sh）"
  run kubectl get rollout mail-web-rollout -n "$NAMESPACE"
fi

info ""
info "=== 管理コマンド ==="
info "状況確認:     kubectl argo rollouts get rollout mail-web-rollout -n ${NAMESPACE} --watch"
info "手動進行:     kubectl argo rollouts promote mail-web-rollout -n ${NAMESPACE}"
info "中止:         kubectl argo rollouts abort mail-web-rollout -n ${NAMESPACE}"
info "ロールバック: kubectl argo rollouts undo mail-web-rollout -n ${NAMESPACE}"
info "アクセス:     kubectl port-forward svc/mail-web-stable -n ${NAMESPACE} 3001:80 → http://localhost:3001"
info "Dashboard:    kubectl argo rollouts dashboard -n ${NAMESPACE}  → http://localhost:3100"
info "シナリオ:     ops/scripts/rollout-scenarios.sh [canary|bluegreen|rollback|analysis]"
info ""
info "=== デプロイ完了 ==="
