# The stock Sidekiq Web UI as a standalone Rack app, mounted at /sidekiq.
#
# Runs unchanged with Debian's ruby-sidekiq 6.4.1 + rack 2.2 (`puma config.ru`, used by the
# native run script and the tests) and with Sidekiq 8.1 + rack 3 (the Dockerfile beside it).
# Links are built from SCRIPT_NAME, so a reverse proxy must keep the /sidekiq prefix.
require "rack"
begin
  require "rack/session" # rack 3 / Sidekiq 8 ship sessions as a separate gem
rescue LoadError
  # rack 2.2 has Rack::Session::Cookie built in
end
require "securerandom"
require "sidekiq"
require "sidekiq/web"

Sidekiq.configure_client do |c|
  c.redis = { url: ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379/0"), size: 2 }
end

# Every replica must share the secret or sessions (and CSRF tokens) break between them.
secret = ENV["SESSION_SECRET"].to_s
secret = SecureRandom.hex(32) if secret.length < 64

map "/health" do
  run ->(_env) { [200, { "content-type" => "text/plain" }, ["ok"]] }
end

map "/sidekiq" do
  use Rack::Session::Cookie, secret: secret, same_site: true, max_age: 86_400
  if ENV["SIDEKIQ_USERNAME"].to_s != ""
    use Rack::Auth::Basic, "Sidekiq" do |u, p|
      Rack::Utils.secure_compare(u, ENV.fetch("SIDEKIQ_USERNAME")) &
        Rack::Utils.secure_compare(p, ENV.fetch("SIDEKIQ_PASSWORD", ""))
    end
  end
  run Sidekiq::Web
end
