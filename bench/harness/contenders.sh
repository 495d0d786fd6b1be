# The contenders of bench/run.sh: modelgate, nginx and HAProxy in front of
# one stub backend, each with one worker thread, all on 127.0.0.1. Sourced,
# not run.

# Backend ports of the gateway's worker. They lie below the kernel's
# ephemeral range (32768-60999 by default), as the gateway requires.
backend_ports="23000-23999"

# write_gateway_config FILE LISTEN_PORT MAX_HELD DEPLOYMENT_YAML writes a
# gateway config whose deployments (given as YAML list items) use the stub.
write_gateway_config() {
  local file="$1" port="$2" max_held="$3" deployments="$4"
  cat >"$file" <<EOF
gateway:
  listen: 127.0.0.1:$port
  io_threads: 1
  max_idle_upstream_connections: $pool_size
  max_held_requests_per_deployment: $max_held
  hold_timeout: 5m
  log_dir: $work_dir/instance-logs

workers:
  - name: local
    runtime: process
    frameworks: [cpu]
    ports: $backend_ports

backends:
  - backend_name: stub
    health_check_path: /v1/models
    default_run_command: "'$stub_bin' --port {{port}} --model {{model_name}}"

deployments:
$deployments
EOF
}

# start_gateway NAME CONFIG LOG_LEVEL PORT starts a gateway, waits for its
# /health and sets `last_pid`.
start_gateway() {
  local name="$1" config="$2" level="$3" port="$4"
  "$gateway_bin" validate --config "$config" >/dev/null ||
    fail "the generated config $config is invalid"
  start_process "$work_dir/$name.log" "$gateway_bin" --config "$config" --log-level "$level"
  local pid="$last_pid"
  wait_for "$name on port $port" 20 curl -sf "http://127.0.0.1:$port/health"
  last_pid="$pid"
}

write_nginx_config() {
  local file="$1" port="$2" upstream_port="$3"
  mkdir -p "$work_dir/nginx"
  cat >"$file" <<EOF
worker_processes 1;
worker_rlimit_nofile $open_files;
error_log $work_dir/nginx/error.log warn;
pid $work_dir/nginx/nginx.pid;

events {
  worker_connections $((open_files - 100));
}

http {
  access_log off;
  # nginx closes a keep-alive connection after 1000 requests by default;
  # modelgate and HAProxy do not.
  keepalive_requests 1000000;

  upstream stub {
    server 127.0.0.1:$upstream_port;
    keepalive $pool_size;
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://stub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
}

write_haproxy_config() {
  local file="$1" port="$2" no_delay_port="$3" upstream_port="$4"
  # Each proxied connection takes two descriptors.
  cat >"$file" <<EOF
global
  nbthread 1
  maxconn $(((open_files - 200) / 2))

defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 75s
  http-reuse always

frontend bench
  bind 127.0.0.1:$port
  default_backend stub

# HAProxy 2.6 sends streamed bodies with MSG_MORE unless this option is set,
# so that the kernel holds back server-sent events of a short stream until
# it ends. Scenario 2 measures both frontends.
frontend bench_no_delay
  bind 127.0.0.1:$no_delay_port
  option http-no-delay
  default_backend stub

backend stub
  server stub 127.0.0.1:$upstream_port
EOF
}

# start_proxies UPSTREAM_PORT starts nginx and HAProxy in front of the stub
# and sets nginx_pid, nginx_port, haproxy_pid, haproxy_port and
# haproxy_no_delay_port.
start_proxies() {
  local upstream_port="$1" ports
  ports=($(free_ports 3))
  nginx_port="${ports[0]}"
  haproxy_port="${ports[1]}"
  haproxy_no_delay_port="${ports[2]}"

  write_nginx_config "$work_dir/nginx.conf" "$nginx_port" "$upstream_port"
  start_process "$work_dir/nginx.log" "$nginx_bin" -c "$work_dir/nginx.conf" \
    -p "$work_dir/nginx/" -g "daemon off;"
  nginx_pid="$last_pid"

  write_haproxy_config "$work_dir/haproxy.cfg" "$haproxy_port" "$haproxy_no_delay_port" \
    "$upstream_port"
  start_process "$work_dir/haproxy.log" "$haproxy_bin" -f "$work_dir/haproxy.cfg" -db
  haproxy_pid="$last_pid"

  wait_for "nginx on port $nginx_port" 20 curl -sf "http://127.0.0.1:$nginx_port/health"
  wait_for "HAProxy on port $haproxy_port" 20 curl -sf "http://127.0.0.1:$haproxy_port/health"
}

# contender_port NAME prints the port that the load generator targets.
contender_port() {
  case "$1" in
    direct) printf '%s\n' "$stub_port" ;;
    modelgate) printf '%s\n' "$gateway_port" ;;
    nginx) printf '%s\n' "$nginx_port" ;;
    haproxy) printf '%s\n' "$haproxy_port" ;;
    haproxy-no-delay) printf '%s\n' "$haproxy_no_delay_port" ;;
  esac
}

# contender_pids NAME prints the processes whose CPU time and memory count
# for the contender: the stub for direct, the gateway and its process guard
# (not the stub it started), nginx's master and worker, HAProxy's process.
contender_pids() {
  local pid
  case "$1" in
    direct) printf '%s\n' "$stub_pid" ;;
    modelgate)
      printf '%s\n' "$gateway_pid"
      for pid in $(child_pids "$gateway_pid"); do
        if [[ "$pid" != "$stub_pid" ]]; then
          printf '%s\n' "$pid"
        fi
      done
      ;;
    nginx)
      printf '%s\n' "$nginx_pid"
      child_pids "$nginx_pid"
      ;;
    haproxy | haproxy-no-delay) printf '%s\n' "$haproxy_pid" ;;
  esac
}
