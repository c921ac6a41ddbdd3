#!/usr/bin/env bash
# 学習シナリオ実行スクリプト（手順の表示と、状態確認コマンドの実行）。
#   ops/scripts/learning-scenarios.sh [sidekiq|hpa|argocd|unleash|rollouts]
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

N=$NAMESPACE

info "=== 学習シナリオ実行スクリプト ==="
info ""

case "${1:-}" in
  sidekiq)
    info "=== Sidekiq学習シナリオ ==="
    info "1. Web画面にアクセス: kubectl port-forward svc/mail-web -n ${N} 3000:80 3001:3001（3001 は Sidekiq 管理画面専用のオリジン）"
    info "2. http://localhost:3000 でメール送信テスト（admin / admin）"
    info "3. http://localhost:3000/sidekiq でSidekiq管理画面確認（Ruby の Sidekiq Web をそのまま使用）"
    info "4. 1000件送信ボタンでキュー確認（Queues / Busy 画面、Rust ワーカーも Busy に表示されます）"
    info "5. エラーシミュレーションで失敗ジョブ確認 → Retries から再試行、Dead から復活"
    info "6. 送信されたメール: kubectl port-forward svc/mailcatcher -n ${N} 1080:1080 → http://localhost:1080"
    info "7. Busy 画面の Quiet / Stop ボタン: ワーカーが新規取得を止める / 終了する様子を確認"
    info ""
    info "ログ確認:"
    info "   kubectl logs deployment/mail-sidekiq -n ${N} -f"
    ;;
  hpa)
    info "=== HPA学習シナリオ ==="
    info "1. 現在のPod数確認:"
    run kubectl get pods -n "$N" -l app=mail-sidekiq
    info ""
    info "2. HPA状況確認:"
    run kubectl get hpa mail-sidekiq-hpa -n "$N"
    info ""
    info "3. CPU使用率監視（metrics-server が必要: minikube addons enable metrics-server）:"
    info "   kubectl top pods -n ${N} -l app=mail-sidekiq"
    info "   kubectl get hpa mail-sidekiq-hpa -n ${N} -w"
    info ""
    info "4. 10000件送信ボタンを押し、Pod数の変化を観察"
    info ""
    info "ポイント: 1 万件は数秒で送り終わります。CPU は request (100m) の数倍まで上がりますが、"
    info "   metrics-server は 15 秒平均、HPA は 15 秒ごと、しかもスケールアップは 60 秒間ずっと"
    info "   高い提案が続いたときだけなので、Pod が増える前にキューは空になります。"
    info "   スケールさせるには mail-config に MAIL_CPU_MS=10 などを入れて 1 通あたりの CPU を増やし、"
    info "   1 分以上続く量を送ります（docs/operations.md §3）。ローカルでは ops/autoscale-drill で同じ HPA を再現できます。"
    info "   Busy 画面の CPU は 1 コアに対する %、kubectl get hpa は request に対する % です（100m なら 10 倍違う）。"
    info "   キューの長さでスケールする方法は prod overlay（External metric）と overlays/dev-keda（KEDA）を参照。"
    info "   キュー長の確認: kubectl exec -n ${N} deploy/redis -- redis-cli llen queue:default"
    info "   prod の External metric 確認:"
    info "   kubectl get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/mail-app-prod/sidekiq_queue_enqueued_jobs"
    ;;
  argocd)
    info "=== Argo CD学習シナリオ ==="
    info "GUI操作:"
    info "1. kubectl port-forward svc/argocd-server -n argocd 8080:443"
    info "2. https://localhost:8080 でGUI確認（admin / setup-argocd.sh が表示したパスワード）"
    info ""
    info "CLI操作:"
    info "1. ログイン: argocd login localhost:8080 --username admin --insecure"
    info "2. アプリ一覧: argocd app list"
    info "3. 同期実行: argocd app sync mail-app"
    info "4. 状況確認: argocd app get mail-app"
    info "5. 履歴: argocd app history mail-app"
    info ""
    info "GitOps実践:"
    info "1. ops/k8s/base/hpa.yaml の maxReplicas などを変更して commit & push → 自動同期を確認"
    info "2. kubectl で直接変更（例: kubectl scale deploy/mail-web -n ${N} --replicas=0）→ selfHeal で戻る"
    info "3. ロールバック: 自動同期中は argocd app rollback が拒否されます。"
    info "   argocd app set mail-app --sync-policy none → argocd app rollback mail-app <ID>"
    info "   → git revert で Git を直す → argocd app set mail-app --sync-policy automated --self-heal --auto-prune"
    info ""
    info "現在の状態:"
    run kubectl get applications -n argocd
    ;;
  unleash)
    info "=== Unleash学習シナリオ ==="
    info "0. 準備: ops/run（ネイティブ、Unleash は ops/unleash/serve で起動）/ docker compose up -d /"
    info "   k8s: kubectl port-forward svc/unleash -n ${N} 4242:4242 → ops/unleash/flags（フラグ作成、何度でも可）"
    info "1. http://localhost:4242 にログイン（admin / unleash4all）→ project default に 3 つのフラグ"
    info "   - bulk_send_feature    (release)     ON : バルク送信のキルスイッチ"
    info "   - send_strategy        (experiment)  ON : バリアント default / priority 50:50（priority は high キュー）"
    info "   - mail_delivery_paused (kill-switch) OFF: ON で全ワーカーが取得を停止（ジョブはキューに残る）"
    info "   Applications に mail-worker-k8s（web と各ワーカーのインスタンス）が登録されていることも確認"
    info "2. キルスイッチ: bulk_send_feature を development で OFF"
    info "   → 15秒以内（SDK の取得間隔）に、再読み込みした画面の送信ボタンが無効になり"
    info "     「バルク送信機能は現在無効です」と表示。送信しても何もキューに入らない。ON に戻す"
    info "3. 段階的リリース: bulk_send_feature の戦略の rollout を 50% に"
    info "   → ブラウザ（mail_web_visitor クッキー）ごとに結果が固定。シークレットウィンドウは別の訪問者"
    info "4. A/B テスト: 画面の「あなたのバリアント: …（送信先キュー: …）」を確認"
    info "   send_strategy の戦略のバリアントを priority 100% にすると、次の送信は"
    info "   「…（キュー: high）」となり Sidekiq 管理画面の Queues で high に入る"
    info "5. A/B テスト結果: 送信履歴の下の表（バリアントごとの送信回数・メール数・平均完了時間・件/秒・失敗率）"
    info "   差を見るには default キューを混ませる: 手順6で一時停止 → default の訪問者で10000件送信"
    info "   → 別ブラウザ（または priority 100%）で1000件送信 → 再開。high は2:1で優先され先に完了する"
    info "6. 配信の一時停止: mail_delivery_paused を ON"
    info "   → ワーカー欄と Sidekiq の Busy 画面で静止中（quiet）、キューは増えるだけ、"
    info "     curl -s localhost:9394/health/ready は status: paused。OFF で全件が1回ずつ配信される"
    info "7. Unleash 停止: ops/unleash/serve を Ctrl-C / docker compose stop unleash /"
    info "   kubectl scale deploy/unleash -n ${N} --replicas=0"
    info "   → 画面に「フラグ: 既定値で動作中（Unleash に接続できません）」、送信可・default キュー・一時停止なし"
    info "   起動し直すと15秒以内にバナーが消え、フラグの値が戻る"
    info ""
    info "SDK が受け取る内容:"
    info "   curl -s http://localhost:4242/api/client/features -H 'Authorization: default:development.unleash-insecure-api-token'"
    info "注意: Unleash は PostgreSQL 専用です（設計書の SQLite 設定では起動しません）。詳しくは docs/operations.md §5"
    ;;
  rollouts)
    info "=== Argo Rollouts学習シナリオ ==="
    info "0. 準備: ops/scripts/setup-rollouts.sh && ops/scripts/deploy-rollout.sh"
    info "1. Dashboard起動: kubectl argo rollouts dashboard -n ${N}"
    info "2. http://localhost:3100 でRollouts管理画面確認"
    info "3. カナリアデプロイ実行: ops/scripts/rollout-scenarios.sh canary"
    info "4. ロールバック操作: ops/scripts/rollout-scenarios.sh rollback"
    info "5. 詳細シナリオ: ops/scripts/rollout-scenarios.sh [canary|bluegreen|rollback|analysis]"
    ;;
  *)
    info "使用方法: $0 [sidekiq|hpa|argocd|unleash|rollouts]"
    info ""
    info "利用可能なシナリオ:"
    info "  sidekiq  - Sidekiqキュー管理学習"
    info "  hpa      - HPA自動スケーリング学習"
    info "  argocd   - Argo CD GUI/CLI操作学習"
    info "  unleash  - Unleashフィーチャーフラグ学習"
    info "  rollouts - Argo Rolloutsデプロイ戦略学習"
    [ -z "${1:-}" ] || exit 2
    ;;
esac
