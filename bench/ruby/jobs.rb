# Ruby peer for bench/run: the seed's jobs on Debian's Sidekiq (6.4.1 native, 7.3 and 8.1 in
# their roots) and the `mail` gem. The same file runs on all three.
#
# MailSenderJob mirrors what the seed's Rails app did through ActionMailer: render a text and
# an HTML body (ERB, same text as templates/emails/*.jinja), build a multipart/alternative
# message with the subject テスト送信メール and deliver it over SMTP, opening one connection
# per message (ActionMailer's :smtp delivery method does exactly that).
# NoopJob has an empty perform: it measures the queue machinery only.
require "sidekiq"
require "mail"
require "erb"

# redis-rb 4.8 (Sidekiq 6.4) prints a deprecation warning on every BRPOP; silence it so the
# peer is not slowed down by writing warnings. Sidekiq 7+ uses redis-client instead.
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

Sidekiq.configure_server do |config|
  config.redis = { url: ENV.fetch("REDIS_URL") }
end

Mail.defaults do
  delivery_method :smtp,
                  address: ENV.fetch("SMTP_HOST", "127.0.0.1"),
                  port: Integer(ENV.fetch("SMTP_PORT")),
                  enable_starttls_auto: false,
                  openssl_verify_mode: "none"
end

SUBJECT = "テスト送信メール"

TEXT_TEMPLATE = ERB.new(<<~TEXT)
  <%= subject %>

  こんにちは、<%= name %>さん

  これはK8S + Sidekiq学習用のテストメールです。
  送信時刻: <%= sent_at %>
TEXT

HTML_TEMPLATE = ERB.new(<<~HTML)
  <!DOCTYPE html>
  <html lang="ja">
    <head>
      <meta charset="utf-8">
      <style>
        body { font-family: Arial, sans-serif; margin: 20px; }
        .header { background-color: #f0f0f0; padding: 10px; }
        .content { margin: 20px 0; }
      </style>
    </head>
    <body>
      <div class="header">
        <h2><%= h subject %></h2>
      </div>
      <div class="content">
        <p>こんにちは、<%= h name %>さん</p>
        <p>これはK8S + Sidekiq学習用のテストメールです。</p>
        <p>送信時刻: <%= h sent_at %></p>
      </div>
    </body>
  </html>
HTML

# Bindings for the templates (ActionView's `h` is ERB::Util.html_escape).
class MailView
  include ERB::Util
  attr_reader :subject, :name, :sent_at

  def initialize(subject, name, sent_at)
    @subject = subject
    @name = name
    @sent_at = sent_at
  end

  def render(template)
    template.result(binding)
  end
end

class MailSenderJob
  include Sidekiq::Job
  sidekiq_options retry: 3

  def perform(args)
    to = args.fetch("to")
    name = args["name"].to_s.strip.empty? ? to : args["name"]
    view = MailView.new(SUBJECT, name, Time.now.utc.strftime("%Y-%m-%d %H:%M:%S UTC"))
    text = view.render(TEXT_TEMPLATE)
    html = view.render(HTML_TEMPLATE)
    mail = Mail.new do
      from    ENV.fetch("MAIL_FROM", "test@example.com")
      to      to
      subject SUBJECT
      text_part do
        content_type "text/plain; charset=UTF-8"
        body text
      end
      html_part do
        content_type "text/html; charset=UTF-8"
        body html
      end
    end
    mail.deliver!
  end
end

class NoopJob
  include Sidekiq::Job

  def perform(*); end
end
