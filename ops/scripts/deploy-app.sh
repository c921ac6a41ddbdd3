#!/usr/bin/env bash
# イメージをビルドしてクラスタ（minikube / kind）に読み込み、dev 環境をデプロイする。
#   ops/scripts/deploy-app.sh            # Argo CD Application (argocd/application.yaml) を適用
#   ops/scripts/deploy-app.sh kubectl    # Argo CD を使わず kubectl apply -k で直接適用
# 環境変数:
#   IMAGE_TAG   ops/k8s/overlays/dev/kustomization.yaml の newTag と同じ値（既定 0.1.0）
#   REPO_URL    Argo CD が clone するリポジトリ（既定: git remote origin）
#   SKIP_BUILD=1  ビルドと読み込みを省略
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

MODE=${1:-argocd}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
OVERLAY=ops/k8s/overlays/dev
IMAGES=("mail-web:${IMAGE_TAG}" "mail-worker:${IMAGE_TAG}" "sidekiq-web:${IMAGE_TAG}")

require kubectl "https://kubernetes.io/docs/tasks/tools/ を参照"
case "$MODE" in argocd | kubectl) ;; *) die "使用方法: $0 [argocd|kubectl]" ;; esac

info "=== アプリケーションデプロイ開始（${MODE}）==="

if ! grep -q "newTag: ${IMAGE_TAG}\$" "$OVERLAY/kustomization.yaml"; then
  warn "IMAGE_TAG=${IMAGE_TAG} が ${OVERLAY}/kustomization.yaml の newTag と一致しません"
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  require docker "Docker（または互換エンジン）が必要です。SKIP_BUILD=1 で省略できます"
  info "Docker イメージをビルド中...（latest タグは使いません）"
  docker build -f Dockerfile.web -t "mail-web:${IMAGE_TAG}" .
  docker build -f Dockerfile.worker -t "mail-worker:${IMAGE_TAG}" .
  docker build -t "sidekiq-web:${IMAGE_TAG}" ops/sidekiq-web

  case "$(cluster_kind)" in
    minikube)
      info "minikube にイメージを読み込み中..."
      for image in "${IMAGES[@]}"; do minikube image load "$image"; done
      ;;
    kind)
      ctx=$(kubectl config current-context)
      info "kind (${ctx#kind-}) にイメージを読み込み中..."
      for image in "${IMAGES[@]}"; do kind load docker-image "$image" --name "${ctx#kind-}"; done
      ;;
    *)
      warn "minikube / kind 以外のクラスタです。イメージをレジストリに push し、overlay の newName を変更してください"
      ;;
  esac
fi

if [ "$MODE" = kubectl ]; then
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -k "$OVERLAY"
else
  kubectl get namespace argocd >/dev/null 2>&1 || die "Argo CD がありません。先に ops/scripts/setup-argocd.sh を実行してください"
  REPO_URL=${REPO_URL:-$(git remote get-url origin 2>/dev/null || true)}
  [ -n "$REPO_URL" ] || die "REPO_URL を指定してください（Argo CD が clone できる URL。変更は push 済みであること）"
  info "Argo CD Application を作成中...（repoURL: ${REPO_URL}）"
  sed "s#https://github.com/your-username/mail-worker-k8s.git#${REPO_URL}#" argocd/application.yaml | kubectl apply -f -
  info "アプリケーションの同期を待機中..."
  kubectl -n argocd wait application/mail-app --for=jsonpath='{.status.sync.status}'=Synced --timeout=300s \
    || warn "まだ Synced ではありません: argocd app get mail-app で確認してください"
fi

info "Pod の起動を待機中..."
for d in redis mailcatcher sidekiq-web mail-web mail-sidekiq; do
  kubectl -n "$NAMESPACE" rollout status "deployment/$d" --timeout=300s || warn "deployment/$d が Ready になっていません"
done

info ""
info "=== デプロイ状況確認 ==="
run kubectl get pods -n "$NAMESPACE"
run kubectl get svc -n "$NAMESPACE"
run kubectl get hpa -n "$NAMESPACE"

info ""
info "=== アクセス情報 ==="
info "Web App:     kubectl port-forward svc/mail-web -n ${NAMESPACE} 3000:80 3001:3001 → http://localhost:3000 (/sidekiq → :3001)"
info "Sidekiq:     http://localhost:3000/sidekiq （mail-web 経由）"
info "MailCatcher: kubectl port-forward svc/mailcatcher -n ${NAMESPACE} 1080:1080 → http://localhost:1080 (Mailpit)"
info "Unleash:     kubectl port-forward svc/unleash -n ${NAMESPACE} 4242:4242     → http://localhost:4242"
info "ログイン:     Web admin/admin, Unleash admin/unleash4all（開発用の値です）"
info ""
info "=== デプロイ完了 ==="
