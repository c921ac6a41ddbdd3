# Ruby side of the enqueue benchmark: Sidekiq::Client.push_bulk of N MailSenderJobs (1,000 per
# LPUSH, Sidekiq 6.4's default batch_size), timed inside the process after connecting, like
# mail-bench push-bulk. Prints one JSON line.
require "sidekiq"
require "json"

Redis.silence_deprecations = true
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL"), size: 1 } }

n = Integer(ARGV.fetch(0))
Sidekiq.redis(&:ping)

cpu = -> { Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) }
wall = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
t0 = wall.call
c0 = cpu.call
args = (0...n).map { |i| [{ "to" => "user#{i}@example.test", "name" => "User #{i}", "simulate_error" => false }] }
jids = Sidekiq::Client.push_bulk("class" => "MailSenderJob", "queue" => "default", "retry" => 3, "args" => args)
elapsed = wall.call - t0
cpu_s = cpu.call - c0
raise "pushed #{jids.size} of #{n}" unless jids.size == n

puts JSON.generate(jobs: n, wall_s: elapsed, cpu_s: cpu_s)
