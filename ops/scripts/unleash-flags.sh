#!/usr/bin/env bash
# Unleash のフィーチャーフラグを管理 API で作成する（何度実行しても既存のフラグは変更しない）。
# 本体は ops/unleash/flags（ops/run とテストも同じスクリプトを使う）。
#   ops/scripts/unleash-flags.sh
#   UNLEASH_URL=http://localhost:4242 ops/scripts/unleash-flags.sh
# k8s の場合は先に: kubectl port-forward svc/unleash -n mail-app 4242:4242
#
# 作成するフラグ（環境 development）:
#   bulk_send_feature     release      ON   バルク送信のキルスイッチ（OFF で送信不可・ボタン無効）
#   send_strategy         experiment   ON   バリアント default / priority（50:50、訪問者ごとに固定）
#                                           priority のとき送信ジョブを high キューに投入する
#   mail_delivery_paused  kill-switch  OFF  ON で全ワーカーが取得を止める（ジョブはキューに残る）
set -euo pipefail
exec "$(dirname "$0")/../unleash/flags" "$@"
