# The stock Sidekiq Web UI as a standalone Rack app, mounted at /sidekiq.
#
# Runs unchanged with Debian's ruby-sidekiq 6.4.1 + rack 2.2, 7.3 + rack 3.1 (trixie) and
# 8.1 + rack 3.2 (sid) (`serve` beside this file, the tests) and with the rubygems Sidekiq 8.1
# of the Dockerfile. Links are built from SCRIPT_NAME, so a reverse proxy must keep the
# /sidekiq prefix.
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

# Debian strips web/assets/javascripts/application.js (it embeds third-party minified code)
# and dashboard.js from every ruby-sidekiq package, which leaves the admin without
# confirmations, live polling, relative times and Dashboard charts. javascripts/ beside this
# file holds our own compatible versions; each is served only where the installed gem lacks
# that file, so a complete gem (the Docker image) keeps its own.
class MissingSidekiqScripts
  def initialize(app, dir)
    @app = app
    gem_js = File.join(Sidekiq::Web::ASSETS, "javascripts")
    @files = Dir[File.join(dir, "*.js")].each_with_object({}) do |path, files|
      name = File.basename(path)
      files["/javascripts/#{name}"] = File.binread(path) unless File.exist?(File.join(gem_js, name))
    end
  end

  def call(env)
    body = @files[env["PATH_INFO"]]
    return @app.call(env) unless body && %w[GET HEAD].include?(env["REQUEST_METHOD"])

    headers = { "content-type" => "text/javascript; charset=utf-8",
                "content-length" => body.bytesize.to_s, "cache-control" => "no-cache" }
    [200, headers, env["REQUEST_METHOD"] == "HEAD" ? [] : [body]]
  end
end

map "/health" do
  run ->(_env) { [200, { "content-type" => "text/plain" }, ["ok"]] }
end

map "/sidekiq" do
  use Rack::Session::Cookie, secret: secret, same_site: true, max_age: 86_400
  use MissingSidekiqScripts, File.join(__dir__, "javascripts")
  if ENV["SIDEKIQ_USERNAME"].to_s != ""
    use Rack::Auth::Basic, "Sidekiq" do |u, p|
      Rack::Utils.secure_compare(u, ENV.fetch("SIDEKIQ_USERNAME")) &
        Rack::Utils.secure_compare(p, ENV.fetch("SIDEKIQ_PASSWORD", ""))
    end
  end
  run Sidekiq::Web
end
