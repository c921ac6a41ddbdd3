#!/usr/bin/env bash
# Unleash のフィーチャーフラグを管理 API で作成する（何度実行しても同じ結果になる）。
#   ops/scripts/unleash-flags.sh
#   UNLEASH_URL=http://localhost:4242 ops/scripts/unleash-flags.sh
# k8s の場合は先に: kubectl port-forward svc/unleash -n mail-app 4242:4242
#
# 作成するフラグ（環境 development で有効化）:
#   bulk-send-10000  release     10000件送信ボタンを表示する
#   send_strategy    experiment  バリアント default / priority（50:50, userId でスティッキー）
#                                priority のとき送信ジョブを high キューに投入する
set -euo pipefail
# shellcheck source=ops/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

UNLEASH_URL=${UNLEASH_URL:-http://localhost:4242}
# compose と k8s の mail-secrets に入っている開発用の管理トークン（初回起動時に作成される）
UNLEASH_ADMIN_TOKEN=${UNLEASH_ADMIN_TOKEN:-*:*.unleash-insecure-admin-api-token}
PROJECT=${UNLEASH_PROJECT:-default}
ENVIRONMENT=${UNLEASH_ENVIRONMENT:-development}

require curl "apt-get install curl"

API="$UNLEASH_URL/api/admin/projects/$PROJECT/features"

# api METHOD PATH [JSON]: prints the body; returns non-zero on HTTP >= 400 (409 is reported).
api() {
  local method=$1 url=$2 body=${3:-} out code
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$url" \
    -H "Authorization: $UNLEASH_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    ${body:+--data "$body"}) || { rm -f "$out"; die "Unleash に接続できません: $UNLEASH_URL"; }
  cat "$out"; rm -f "$out"
  [ "$code" -lt 400 ] && return 0
  [ "$code" = 409 ] && return 9
  printf '\n(HTTP %s: %s %s)\n' "$code" "$method" "$url" >&2
  return 1
}

create_flag() {
  local name=$1 type=$2 description=$3 rc=0
  api POST "$API" "{\"name\":\"$name\",\"type\":\"$type\",\"description\":\"$description\"}" >/dev/null || rc=$?
  case $rc in
    0) info "作成: $name ($type)" ;;
    9) info "既存: $name" ;;
    *) die "フラグ $name を作成できませんでした" ;;
  esac
}

# add_strategy NAME JSON: only when the flag has no strategy in $ENVIRONMENT yet.
add_strategy() {
  local name=$1 json=$2 current
  current=$(api GET "$API/$name/environments/$ENVIRONMENT/strategies") || die "戦略を取得できませんでした: $name"
  if [ "$(printf '%s' "$current" | tr -d '[:space:]')" = "[]" ]; then
    api POST "$API/$name/environments/$ENVIRONMENT/strategies" "$json" >/dev/null || die "戦略を追加できませんでした: $name"
    info "戦略追加: $name ($ENVIRONMENT)"
  else
    info "戦略あり: $name ($ENVIRONMENT) — 変更しません"
  fi
}

enable_flag() {
  api POST "$API/$1/environments/$ENVIRONMENT/on" >/dev/null || die "有効化できませんでした: $1"
  info "有効化: $1 ($ENVIRONMENT)"
}

info "=== Unleash フラグ作成: $UNLEASH_URL (project=$PROJECT, environment=$ENVIRONMENT) ==="
curl -fsS "$UNLEASH_URL/health" >/dev/null || die "Unleash が応答しません: $UNLEASH_URL/health"

create_flag bulk-send-10000 release "10000件送信ボタンを有効にする"
add_strategy bulk-send-10000 \
  '{"name":"flexibleRollout","parameters":{"rollout":"100","stickiness":"default","groupId":"bulk-send-10000"}}'
enable_flag bulk-send-10000

create_flag send_strategy experiment "送信キューの A/B テスト: default / priority (high キュー)"
add_strategy send_strategy \
  '{"name":"flexibleRollout","parameters":{"rollout":"100","stickiness":"default","groupId":"send_strategy"},
    "variants":[
      {"name":"default","weight":500,"weightType":"variable","stickiness":"default"},
      {"name":"priority","weight":500,"weightType":"variable","stickiness":"default"}]}'
enable_flag send_strategy

info ""
info "SDK から見える内容（バックエンドトークン）:"
info "  curl -s $UNLEASH_URL/api/client/features -H 'Authorization: default:development.unleash-insecure-api-token'"
info "=== 完了 ==="
