#!/usr/bin/env bash
# Argo Rollouts 学習シナリオ（手順の表示と、状態確認コマンドの実行）。
#   ops/scripts/rollout-scenarios.sh [canary|bluegreen|rollback|analysis]
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

R=mail-web-rollout
N=$NAMESPACE
PROMETHEUS_CHART_VERSION=${PROMETHEUS_CHART_VERSION:-<helm search repo prometheus-community/prometheus --versions で確認した版>}

info "=== Rollout 学習シナリオ実行スクリプト ==="
info ""

case "${1:-}" in
  canary)
    info "=== カナリアデプロイ学習シナリオ ==="
    info "手順: setWeight 20 → 30秒 → 50 → 30秒 → 80 → 30秒 → 100（トラフィックルーターなしのため"
    info "      重みはレプリカ数の比で近似: 3 レプリカの 20% = カナリア 1 Pod）"
    info ""
    info "1. 新バージョンを用意する（どちらか）:"
    info "   a) 新しいイメージ:"
    info "      docker build -f Dockerfile.web -t mail-web:0.2.0 ."
    info "      minikube image load mail-web:0.2.0      # kind: kind load docker-image mail-web:0.2.0"
    info "      kubectl argo rollouts set image ${R} web=mail-web:0.2.0 -n ${N}"
    info "   b) イメージを作らずに Pod テンプレートだけ変える:"
    info "      kubectl patch rollout ${R} -n ${N} --type merge \\"
    info "        -p '{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"mail-app/revision\":\"v2\"}}}}}'"
    info ""
    info "2. 段階的デプロイを監視:"
    info "   kubectl argo rollouts get rollout ${R} -n ${N} --watch"
    info ""
    info "3. 待たずに進める / 中止する:"
    info "   kubectl argo rollouts promote ${R} -n ${N}"
    info "   kubectl argo rollouts abort ${R} -n ${N}     # カナリアを 0 に戻す（stable はそのまま）"
    info ""
    info "現在の状態:"
    run kubectl argo rollouts get rollout "$R" -n "$N"
    ;;
  bluegreen)
    info "=== ブルー/グリーンデプロイ学習シナリオ ==="
    info "1. 戦略を blueGreen に切り替える（active = mail-web-stable, preview = mail-web-canary）:"
    info "   kubectl patch rollout ${R} -n ${N} --type merge -p '{\"spec\":{\"strategy\":{\"canary\":null,"
    info "     \"blueGreen\":{\"activeService\":\"mail-web-stable\",\"previewService\":\"mail-web-canary\","
    info "     \"autoPromotionEnabled\":false}}}}'"
    info ""
    info "2. 新バージョンをデプロイ（canary シナリオの手順 1 と同じ）:"
    info "   kubectl argo rollouts set image ${R} web=mail-web:0.3.0 -n ${N}"
    info ""
    info "3. プレビュー（グリーン）を確認:"
    info "   kubectl port-forward svc/mail-web-canary -n ${N} 3002:80   → http://localhost:3002"
    info ""
    info "4. 本番切り替え:"
    info "   kubectl argo rollouts promote ${R} -n ${N}"
    info ""
    info "5. カナリア戦略に戻す: kubectl apply -k ops/k8s/rollouts"
    ;;
  rollback)
    info "=== ロールバック学習シナリオ ==="
    info "1. 現在のリビジョン確認（get rollout がリビジョン一覧を表示します）:"
    run kubectl argo rollouts get rollout "$R" -n "$N"
    info ""
    info "2. 直前のバージョンにロールバック（新しいリビジョンとしてカナリア手順で戻る）:"
    info "   kubectl argo rollouts undo ${R} -n ${N}"
    info ""
    info "3. 特定リビジョンにロールバック:"
    info "   kubectl argo rollouts undo ${R} --to-revision=1 -n ${N}"
    info ""
    info "4. 進行中のカナリアを即座に止める: kubectl argo rollouts abort ${R} -n ${N}"
    info ""
    info "参考: Argo CD 側のロールバック（argocd app rollback mail-app）は自動同期が有効だと"
    info "      拒否されます。先に argocd app set mail-app --sync-policy none。GitOps では git revert が基本です。"
    ;;
  analysis)
    info "=== 自動分析学習シナリオ ==="
    info "1. Prometheus をインストール（Service のアノテーションを scrape するコミュニティ版チャート）:"
    info "   helm repo add prometheus-community https://prometheus-community.github.io/helm-charts"
    info "   helm install prometheus prometheus-community/prometheus -n monitoring --create-namespace \\"
    info "     --version ${PROMETHEUS_CHART_VERSION}"
    info "   （アドレスが違う場合は ops/k8s/rollouts/analysis-template.yaml の prometheus-address を変更）"
    info ""
    info "2. 分析付き Rollout を適用:"
    info "   ANALYSIS=1 ops/scripts/deploy-rollout.sh"
    info ""
    info "3. トラフィックを流す（別ターミナル、回数と時間に上限あり）:"
    info "   kubectl port-forward svc/mail-web-canary -n ${N} 3002:80 &"
    info "   for i in \$(seq 1 600); do curl -s -o /dev/null -u admin:admin http://localhost:3002/; sleep 0.5; done"
    info ""
    info "4. カナリアを開始（canary シナリオの手順 1）し、AnalysisRun を観察:"
    info "   kubectl get analysisrun -n ${N} -w"
    info "   kubectl argo rollouts get rollout ${R} -n ${N} --watch"
    info ""
    info "5. 失敗させてみる: 成功条件を満たせない閾値にすると自動で中止（abort）されます"
    info "   kubectl patch analysistemplate success-rate -n ${N} --type json -p \\"
    info "     '[{\"op\":\"replace\",\"path\":\"/spec/metrics/0/successCondition\",\"value\":\"len(result) > 0 && result[0] > 1.0\"}]'"
    info "   元に戻す: kubectl apply -k ops/k8s/rollouts-analysis"
    info ""
    info "現在の AnalysisTemplate / AnalysisRun:"
    run kubectl get analysistemplate,analysisrun -n "$N"
    ;;
  *)
    info "使用方法: $0 [canary|bluegreen|rollback|analysis]"
    info ""
    info "利用可能なシナリオ:"
    info "  canary    - カナリアデプロイメント学習"
    info "  bluegreen - ブルー/グリーンデプロイメント学習"
    info "  rollback  - ロールバック操作学習"
    info "  analysis  - 自動分析・ロールバック学習"
    [ -z "${1:-}" ] || exit 2
    ;;
esac
